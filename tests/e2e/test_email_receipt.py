"""A receipt by email from the counter to the inbox: a real till, a real HQ, a real SMTP sink.

The till sells, the cashier asks for the receipt by email, the sync worker pushes the ops, HQ's
mail worker sends the mail, the sink keeps it. With the network and the mail server down at the
time of the sale, the sale completes at once and the mail still arrives exactly once when both
are back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.support.till as till_support
from edge_agent.config import TillSettings
from edge_agent.store import LocalStore
from edge_agent.till import Till
from hardware_sim.smtp import SmtpSink
from shared.receipt import Receipt
from sync_server.db.engine import Database
from tests.edge_agent import factories as f
from tests.support.server import wait_for
from tests.support.till import STORE, TILL, RestartableHq, mailing_hq_settings


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    running = SmtpSink(out_dir=tmp_path / "mail").start()
    yield running
    running.stop()


@pytest.fixture
def hq(tmp_path: Path, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableHq]:
    """HQ with mail on, sending to the sink; not started (``hq.start()``)."""
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    db = Database(url)
    db.migrate()
    server = RestartableHq(url, db)
    settings = mailing_hq_settings(url, public_url=server.base_url, smtp_port=sink.port)
    monkeypatch.setattr(till_support, "hq_settings", lambda _url: settings)
    try:
        yield server
    finally:
        server.stop()
        db.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    template = f.build_template(tmp_path / "template", f.grocery_changes())
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


def a_till(store: LocalStore, hq: RestartableHq, tmp_path: Path) -> Till:
    settings = TillSettings(
        db_path=tmp_path / "till.sqlite",
        store_id=STORE,
        till_id=TILL,
        suggestions=3,
        push_interval_s=0.2,
        pull_interval_s=0.5,
    )
    client = hq.client(hq.enroll(), timeout=2.0)
    return Till(settings=settings, store=store, client=client, own_client=True)


def sell_and_email(till: Till, address: str, **kwargs: Any) -> tuple[str, str]:
    assert f.BREAD.ean is not None
    till.handle_scan(f.BREAD.ean)
    done = till.handle_scan("CMD-PAY-CASH")
    assert done.kind == "sale_complete", done.message
    event = till.email_receipt(address, consent_marketing=False, **kwargs)
    assert event.kind == "email_queued", event.message
    return str(done.data["receipt_number"]), str(done.data["sale_id"])


def printed(store: LocalStore, sale_id: str) -> Receipt:
    row = store.query_one("SELECT document FROM print_jobs WHERE sale_id = ?", (sale_id,))
    assert row is not None
    return Receipt.model_validate_json(row[0])


def test_from_the_counter_to_the_inbox(
    store: LocalStore, hq: RestartableHq, sink: SmtpSink, tmp_path: Path
) -> None:
    hq.start()
    with a_till(store, hq, tmp_path) as till:
        till.start()
        number, sale_id = sell_and_email(till, "Maria@Example.com")
        wait_for(lambda: sink.paths(), timeout=20, what="the receipt mail")
        [message] = sink.messages()
    assert message["To"] == "maria@example.com"
    assert message["Subject"] == f"Your receipt {number} from {f.make_shop().name}"
    text = message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    suggestions = printed(store, sale_id).suggestions
    assert suggestions  # the till suggested something for the bread
    for suggestion in suggestions:
        assert suggestion.name in content  # the same suggestions as on paper
    assert f"{hq.base_url}/r/{sale_id}" in content


def test_network_and_mail_server_down_at_the_sale(
    store: LocalStore, hq: RestartableHq, sink: SmtpSink, tmp_path: Path
) -> None:
    sink.stop()  # the mail server is down, and HQ is not running yet: the till is offline
    with a_till(store, hq, tmp_path) as till:
        till.start()
        started = time.monotonic()
        sell_and_email(till, "maria@example.com")
        assert time.monotonic() - started < 2  # the sale never waits for either
        assert till.status().sync.pending_ops == 3  # sale, customer patch, receipt email
        hq.start()  # the network is back
        wait_for(lambda: till.status().sync.pending_ops == 0, timeout=20, what="the push")
        time.sleep(0.5)
        assert sink.paths() == []
        sink.start()  # the mail server is back
        wait_for(lambda: sink.paths(), timeout=20, what="the receipt mail")
        time.sleep(0.6)
    assert len(sink.paths()) == 1
