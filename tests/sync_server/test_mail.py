"""Receipts by email, relayed through HQ: a real server (uvicorn) and a real SMTP sink.

A till pushes a sale, its customer patch and a ``receipt_email`` op; HQ queues the mail in the
same transaction and its mail worker sends it. What the sink received is parsed back with the
``email`` package: both parts, the lines, totals and suggestions, a receipt link that works,
the headers, marketing only with consent. A dead mail server never blocks a sale or loses a mail,
and a mail goes out once however often its op or its delivery is retried.

The worker itself (claims, leases, backoff, refusals) is tested directly against the database on
both engines, with a recording mailer.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hardware_sim.smtp import SmtpSink
from shared.catalogue import Store
from shared.errors import MailError
from shared.money import Money
from shared.protocol import ReceiptEmail
from shared.receipt import ReceiptSuggestion, receipt_from_sale
from shared.sale import Sale
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import consent_events, mail_queue, orders, products, stores
from sync_server.main import create_app
from sync_server.services import mailer
from sync_server.services.mailer import MailRefused, receipt_row, retry_delay_s, send_due
from tests.shared.factories import make_line, make_sale
from tests.support.server import (
    ADMIN_TOKEN,
    Hq,
    TillClient,
    count_rows,
    new_op,
    running_server,
    sale_op,
    till_local,
    wait_for,
)

STORE = Store(
    store_id="S001",
    name="Omnitill Berlin Mitte",
    city="Berlin",
    locale="de",
    timezone="Europe/Berlin",
)
MAIL_FROM = "Omnitill Berlin <receipts@shop.example>"
AT = datetime(2026, 11, 23, 9, 31, tzinfo=UTC)


#: Engine-independent behaviour runs on SQLite only; what differs by engine (claiming rows,
#: the full round trip) runs on both.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def euro(minor: int) -> str:
    return Money(minor, "EUR").format("de")


def mail_settings(db_url: str, smtp_port: int, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "db_url": db_url,
        "admin_token": ADMIN_TOKEN,
        "card_worker_interval_s": 0.05,
        "mail_enabled": True,
        "mail_from": MAIL_FROM,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "smtp_timeout_s": 5,
        "mail_worker_interval_s": 0.05,
        "mail_retry_initial_s": 0.2,
        "mail_retry_max_s": 0.4,
    }
    values.update(over)
    return Settings(**values)


@dataclass
class MailHq:
    hq: Hq
    settings: Settings
    sink: SmtpSink
    till: TillClient

    @property
    def base_url(self) -> str:
        return self.hq.base_url

    def wait_for_mail(self, count: int = 1, timeout: float = 15.0) -> list[EmailMessage]:
        wait_for(lambda: len(self.sink.paths()) >= count, timeout=timeout, what=f"{count} mails")
        return self.sink.messages()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    running = SmtpSink(out_dir=tmp_path / "mail").start()
    yield running
    running.stop()


@pytest.fixture
def mail_hq(db: Database, db_url: str, sink: SmtpSink) -> Iterator[MailHq]:
    settings = mail_settings(db_url, sink.port)
    seed_store(db)
    with running_server(create_app(settings, db=db)) as base_url:
        settings.public_url = base_url  # links in mails point at this server
        hq = Hq(base_url=base_url, db=db)
        try:
            yield MailHq(hq=hq, settings=settings, sink=sink, till=hq.enroll())
        finally:
            hq.close()


def seed_store(db: Database) -> None:
    """The store's settings and two products HQ could advertise."""
    now = datetime.now(UTC)
    with db.write() as conn:
        conn.execute(
            stores.insert().values(store_id="S001", data=STORE.model_dump_json(), updated_at=now)
        )
        conn.execute(
            products.insert(),
            [
                {
                    "sku": sku,
                    "category": "Accessories",
                    "data": json.dumps({"sku": sku, "name": name, "price_minor": price}),
                    "updated_at": now,
                }
                for sku, name, price in (
                    ("ACC-SCARF", "Wool Scarf Grey", 2499),
                    ("ACC-GLOVES", "Leather Gloves", 3999),
                )
            ],
        )


def shop_sale(**over: Any) -> Sale:
    lines = (
        make_line(
            1,
            sku="APP-TSHIRT",
            name="Blue T-Shirt",
            unit_price_minor=1999,
            amount_minor=1999,
            tax_minor=319,
        ),
        make_line(
            2,
            sku="GRO-APPLES",
            name="Äpfel Elstar 1 kg",
            unit_price_minor=299,
            amount_minor=299,
            tax_minor=20,
        ),
    )
    return make_sale(lines, created_at=AT - timedelta(minutes=1), **over)


def receipt_email(
    sale: Sale, *, address: str, consent: bool, customer: uuid.UUID | None, **over: Any
) -> ReceiptEmail:
    receipt = receipt_from_sale(
        sale,
        STORE,
        suggestions=(
            ReceiptSuggestion(
                sku="APP-SOCKS",
                name="Sneaker Socks 3-Pack",
                price_minor=999,
                because_of="Blue T-Shirt",
            ),
        ),
    )
    values: dict[str, Any] = {
        "email_id": uuid.uuid4(),
        "sale_id": sale.sale_id,
        "address": address,
        "consent_marketing": consent,
        "receipt": receipt,
        "customer_id": customer,
        "at": AT,
    }
    values.update(over)
    return ReceiptEmail(**values)


def patch_for(profile: uuid.UUID, address: str, consent: bool) -> dict[str, Any]:
    """What the till sends with the mail: the address and the consent answer."""
    return {
        "identifiers": [till_local(profile), {"kind": "email", "value": address}],
        "consent_events": [
            {"channel": "marketing_email", "granted": consent, "at": AT.isoformat()}
        ],
    }


def push_receipt_mail(
    till: TillClient, *, address: str, consent: bool, sale: Sale | None = None
) -> tuple[Sale, ReceiptEmail]:
    """Sale, customer patch and receipt_email, in the till's outbox order; all applied."""
    sale = sale or shop_sale(receipt_number=f"S001-T1-{till.next_seq:06d}")
    profile = uuid.uuid4()
    mail = receipt_email(sale, address=address, consent=consent, customer=profile)
    ops = [
        sale_op(sale, till.take_seq()),
        new_op("customer_patch", patch_for(profile, address, consent), till.take_seq()),
        mail_op(mail, till.take_seq()),
    ]
    assert [r["status"] for r in till.push_ok(ops)] == ["applied"] * 3
    return sale, mail


def mail_op(mail: ReceiptEmail, seq: int, op_id: uuid.UUID | None = None) -> Any:
    return new_op("receipt_email", mail.model_dump(mode="json", by_alias=True), seq, op_id)


def bestsellers(till: TillClient) -> None:
    """An earlier sale of the products HQ may advertise."""
    lines = (
        make_line(
            1,
            sku="ACC-SCARF",
            name="Wool Scarf Grey",
            quantity=3,
            unit_price_minor=2499,
            amount_minor=7497,
            tax_minor=1197,
        ),
        make_line(
            2,
            sku="ACC-GLOVES",
            name="Leather Gloves",
            unit_price_minor=3999,
            amount_minor=3999,
            tax_minor=638,
        ),
    )
    sale = make_sale(lines, created_at=AT - timedelta(days=2), receipt_number="S001-T1-000099")
    assert till.push_ok([sale_op(sale, till.take_seq())])[0]["status"] == "applied"


def queue_row(db: Database, email_id: uuid.UUID) -> Any:
    with db.read() as conn:
        return conn.execute(sa.select(mail_queue).where(mail_queue.c.email_id == email_id)).one()


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


# ---------------------------------------------------------------------------------------------
# Through a real server


def test_the_mail_has_both_parts_the_receipt_and_correct_headers(mail_hq: MailHq) -> None:
    bestsellers(mail_hq.till)
    sale, mail = push_receipt_mail(mail_hq.till, address="Maria.Rossi@Example.com", consent=True)

    [message] = mail_hq.wait_for_mail()
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == MAIL_FROM
    assert message["To"] == "maria.rossi@example.com"
    assert message["Subject"] == f"Your receipt {sale.receipt_number} from Omnitill Berlin Mitte"
    assert message["Message-ID"] == f"<{mail.email_id}@omnitill>"
    assert parsedate_to_datetime(str(message["Date"])) == AT
    link = f"{mail_hq.base_url}/r/{sale.sale_id}"
    unsubscribe = f"{mail_hq.base_url}/unsubscribe/{mail.email_id}"
    # Folded onto its own line (the URL is longer than a header line): compare unfolded.
    assert str(message["List-Unsubscribe"]).strip() == f"<{unsubscribe}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    for part in parts(message):
        for words in (
            "Blue T-Shirt",
            "Äpfel Elstar 1 kg",
            euro(1999),
            euro(299),
            euro(2298),  # the total
            "23 Nov 2026, 10:30",  # 09:30 UTC in Berlin
            "Customers who bought Blue T-Shirt also bought",
            "Sneaker Socks 3-Pack",
            euro(999),
            "You might also like",  # the consented marketing block, from HQ's bestsellers
            "Wool Scarf Grey",
            euro(2499),
            "Leather Gloves",
            link,
            unsubscribe,
        ):
            assert words in part, words
    text, html = parts(message)
    assert "Blue T-Shirt" not in text.split("You might also like")[1]  # never what was bought
    assert "max-width:600px" in html
    assert text.splitlines()[0] == "Omnitill Berlin Mitte, Berlin"

    page = httpx.get(link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Blue T-Shirt" in page.text and euro(2298) in page.text
    assert "Omnitill Berlin Mitte" in page.text
    assert httpx.get(f"{mail_hq.base_url}/r/{uuid.uuid4()}").status_code == 404

    row = queue_row(mail_hq.hq.db, mail.email_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None


@SQLITE_ONLY
def test_no_marketing_and_no_unsubscribe_without_consent(mail_hq: MailHq) -> None:
    bestsellers(mail_hq.till)
    push_receipt_mail(mail_hq.till, address="anna@example.com", consent=False)
    [message] = mail_hq.wait_for_mail()
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    for part in parts(message):
        assert "Sneaker Socks 3-Pack" in part  # suggestions are the receipt, for everyone
        assert "You might also like" not in part and "Wool Scarf Grey" not in part
        assert "/unsubscribe/" not in part


@SQLITE_ONLY
def test_unsubscribing_is_held_at_hq_and_wins_over_the_till(mail_hq: MailHq) -> None:
    bestsellers(mail_hq.till)
    address = "maria@example.com"
    sale, mail = push_receipt_mail(mail_hq.till, address=address, consent=True)
    [first] = mail_hq.wait_for_mail()
    url = str(first["List-Unsubscribe"]).strip().strip("<>")
    assert httpx.get(url).status_code == 200  # a link checker's GET changes nothing
    with mail_hq.hq.db.read() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(consent_events.c.granted.is_(False))
            ).scalar_one()
            == 0
        )
    done = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "unsubscribed" in done.text

    # The next receipt: the till's op still says "consent" (an old answer), HQ knows better.
    profile = mail.customer_id
    assert profile is not None
    again = receipt_email(sale, address=address, consent=True, customer=profile)
    till = mail_hq.till
    assert till.push_ok([mail_op(again, till.take_seq())])[0]["status"] == "applied"
    second = mail_hq.wait_for_mail(2)[1]
    assert second["Message-ID"] == f"<{again.email_id}@omnitill>"
    assert second["List-Unsubscribe"] is None
    assert all("You might also like" not in p for p in parts(second))


@SQLITE_ONLY
def test_mail_server_down_the_sale_completes_and_the_mail_goes_out_once(
    mail_hq: MailHq,
) -> None:
    mail_hq.sink.stop()  # the mail server is down
    _, mail = push_receipt_mail(mail_hq.till, address="maria@example.com", consent=False)
    assert count_rows(mail_hq.hq.db, orders) == 1  # the sale is in

    def failed_twice() -> bool:
        row = queue_row(mail_hq.hq.db, mail.email_id)
        return bool(row.attempts >= 2 and row.status == "pending")

    wait_for(failed_twice, timeout=10, what="two failed attempts")
    row = queue_row(mail_hq.hq.db, mail.email_id)
    assert "cannot be reached" in row.last_error

    mail_hq.sink.start()  # back, on the same port
    [message] = mail_hq.wait_for_mail()
    assert message["Message-ID"] == f"<{mail.email_id}@omnitill>"
    time.sleep(0.6)  # several retry intervals: nothing more may arrive
    assert len(mail_hq.sink.paths()) == 1
    row = queue_row(mail_hq.hq.db, mail.email_id)
    assert row.status == "sent" and row.attempts >= 3


@SQLITE_ONLY
def test_a_server_answering_451_is_retried_until_it_accepts(mail_hq: MailHq) -> None:
    mail_hq.sink.reject = True
    _, mail = push_receipt_mail(mail_hq.till, address="maria@example.com", consent=False)
    wait_for(
        lambda: queue_row(mail_hq.hq.db, mail.email_id).attempts >= 2,
        timeout=10,
        what="retries",
    )
    assert "451" in queue_row(mail_hq.hq.db, mail.email_id).last_error
    assert mail_hq.sink.paths() == []
    mail_hq.sink.reject = False
    mail_hq.wait_for_mail()
    time.sleep(0.5)
    assert len(mail_hq.sink.paths()) == 1


@SQLITE_ONLY
def test_the_same_op_pushed_twice_is_one_mail(mail_hq: MailHq) -> None:
    till = mail_hq.till
    sale = shop_sale()
    mail = receipt_email(sale, address="maria@example.com", consent=False, customer=None)
    op_id = uuid.uuid4()
    first = [sale_op(sale, till.take_seq()), mail_op(mail, till.take_seq(), op_id)]
    assert [r["status"] for r in till.push_ok(first)] == ["applied", "applied"]
    # The ack was lost: the till sends the very same op again.
    assert till.push_ok([first[1]])[0]["status"] == "duplicate"
    # A till restored from a copy of its outbox re-queues the request under a new op.
    assert till.push_ok([mail_op(mail, till.take_seq())])[0]["status"] == "applied"
    assert count_rows(mail_hq.hq.db, mail_queue) == 1
    mail_hq.wait_for_mail()
    time.sleep(0.5)
    assert len(mail_hq.sink.paths()) == 1


@SQLITE_ONLY
def test_a_receipt_email_from_another_store_is_rejected(mail_hq: MailHq) -> None:
    till = mail_hq.till
    sale = shop_sale()
    foreign = receipt_email(sale, address="maria@example.com", consent=False, customer=None)
    foreign = foreign.model_copy(
        update={"receipt": foreign.receipt.model_copy(update={"till_id": "S002-T1"})}
    )
    [verdict] = till.push_ok([mail_op(foreign, till.take_seq())])
    assert verdict["status"] == "rejected"
    assert "S002-T1" in verdict["error"]
    assert count_rows(mail_hq.hq.db, mail_queue) == 0


@SQLITE_ONLY
def test_the_worker_logs_in_when_smtp_auth_is_set(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    with SmtpSink(out_dir=tmp_path / "auth", username="hq", password="pw-0123") as sink:
        [email_id] = queue(db, 1)
        wrong = mail_settings(db_url, sink.port, smtp_username="hq", smtp_password="nope")
        assert send_due(db, wrong) is False
        assert "refused the login of 'hq'" in queue_row(db, email_id).last_error
        right = mail_settings(db_url, sink.port, smtp_username="hq", smtp_password="pw-0123")
        send_due(db, right, clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
        [message] = sink.messages()
        assert message["Message-ID"] == f"<{email_id}@omnitill>"


@SQLITE_ONLY
def test_with_mail_disabled_the_mail_waits_in_the_queue(
    db: Database, db_url: str, sink: SmtpSink
) -> None:
    settings = mail_settings(db_url, sink.port, mail_enabled=False)
    with running_server(create_app(settings, db=db)) as base_url:
        hq = Hq(base_url=base_url, db=db)
        try:
            _, mail = push_receipt_mail(hq.enroll(), address="maria@example.com", consent=False)
            time.sleep(0.3)
        finally:
            hq.close()
    assert sink.paths() == []
    assert queue_row(db, mail.email_id).status == "pending"


# ---------------------------------------------------------------------------------------------
# The worker against the database (both engines)


class Recorder:
    """A mailer that keeps what it was given, and fails as told."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.sent: list[EmailMessage] = []
        self.fail = fail or {}
        self.lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        problem = self.fail.get(str(message["To"]))
        if problem is not None:
            raise problem
        with self.lock:
            self.sent.append(message)


def queue(db: Database, count: int, *, address: str = "maria@example.com") -> list[uuid.UUID]:
    sale = shop_sale()
    mails = [
        receipt_email(sale, address=address.replace("@", f"+{i}@"), consent=False, customer=None)
        for i in range(count)
    ]
    with db.write() as conn:
        conn.execute(mail_queue.insert(), [receipt_row(m, now=AT) for m in mails])
    return [m.email_id for m in mails]


def worker_settings(db_url: str) -> Settings:
    return mail_settings(db_url, 1, mail_retry_initial_s=30, mail_retry_max_s=3600)


def test_concurrent_workers_send_every_mail_exactly_once(db: Database, db_url: str) -> None:
    ids = queue(db, 40)
    recorder = Recorder()
    settings = worker_settings(db_url)

    def work() -> None:
        while send_due(db, settings, recorder, limit=3):
            pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    sent = sorted(str(m["Message-ID"]) for m in recorder.sent)
    assert sent == sorted(f"<{i}@omnitill>" for i in ids)
    with db.read() as conn:
        rows = conn.execute(sa.select(mail_queue.c.status, mail_queue.c.attempts)).all()
    assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}


@SQLITE_ONLY
def test_a_refused_recipient_fails_at_once_and_the_batch_goes_on(db: Database, db_url: str) -> None:
    ids = queue(db, 3)
    bad = "maria+1@example.com"
    recorder = Recorder({bad: MailRefused("550 5.1.1 no such user")})
    send_due(db, worker_settings(db_url), recorder)
    assert len(recorder.sent) == 2
    row = queue_row(db, ids[1])
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "550 5.1.1 no such user")


def test_a_dead_server_backs_off_and_untried_mail_keeps_its_attempts(
    db: Database, db_url: str
) -> None:
    ids = queue(db, 3)
    settings = worker_settings(db_url)
    now = AT + timedelta(minutes=5)
    down = Recorder({f"maria+{i}@example.com": MailError("connection refused") for i in range(3)})

    assert send_due(db, settings, down, clock=lambda: now) is False
    rows = sorted((queue_row(db, i) for i in ids), key=lambda r: -r.attempts)
    assert [r.attempts for r in rows] == [1, 0, 0]  # one tried; the others put back untried
    assert {r.next_attempt_at for r in rows} == {now + timedelta(seconds=30)}
    assert rows[0].last_error == "connection refused" and rows[1].last_error is None
    tried = rows[0].email_id

    # Not due yet: nothing is tried.
    assert send_due(db, settings, down, clock=lambda: now + timedelta(seconds=29)) is False
    assert sorted(queue_row(db, i).attempts for i in ids) == [0, 0, 1]
    # Due: the next failure waits twice as long.
    later = now + timedelta(seconds=30)
    send_due(db, settings, down, clock=lambda: later)
    assert queue_row(db, tried).next_attempt_at == later + timedelta(seconds=60)

    up = Recorder()
    send_due(db, settings, up, clock=lambda: later + timedelta(seconds=60))
    assert len(up.sent) == 3
    assert {queue_row(db, i).status for i in ids} == {"sent"}


@SQLITE_ONLY
def test_a_mail_that_cannot_be_built_does_not_hold_up_the_others(db: Database, db_url: str) -> None:
    broken, *fine = queue(db, 3)
    with db.write() as conn:
        conn.execute(
            mail_queue.update().where(mail_queue.c.email_id == broken).values(payload="{}")
        )
    recorder = Recorder()
    send_due(db, worker_settings(db_url), recorder, clock=lambda: AT)
    assert sorted(str(m["Message-ID"]) for m in recorder.sent) == sorted(
        f"<{i}@omnitill>" for i in fine
    )
    row = queue_row(db, broken)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("ValidationError")
    assert row.next_attempt_at == AT + timedelta(seconds=30)


@SQLITE_ONLY
def test_after_the_last_attempt_a_mail_is_failed_and_kept(db: Database, db_url: str) -> None:
    [email_id] = queue(db, 1)
    settings = worker_settings(db_url).model_copy(update={"mail_max_attempts": 2})
    down = Recorder({"maria+0@example.com": MailError("timed out")})
    for hours in range(3):
        at = AT + timedelta(hours=2 * hours)
        send_due(db, settings, down, clock=lambda at=at: at)  # type: ignore[misc]
    row = queue_row(db, email_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 2, "timed out")


@SQLITE_ONLY
def test_a_crashed_sender_s_lease_expires_and_the_mail_is_sent_with_the_same_id(
    db: Database, db_url: str
) -> None:
    [email_id] = queue(db, 1)
    settings = worker_settings(db_url)

    class Crash(BaseException):
        pass

    class Crashing:
        def send(self, message: EmailMessage) -> None:
            raise Crash  # the process dies between claim and mark

    with contextlib.suppress(Crash):
        send_due(db, settings, Crashing(), clock=lambda: AT)
    recorder = Recorder()
    send_due(db, settings, recorder, clock=lambda: AT + timedelta(seconds=30))
    assert recorder.sent == []  # still leased to the crashed process
    send_due(db, settings, recorder, clock=lambda: AT + timedelta(hours=1))
    [message] = recorder.sent
    assert message["Message-ID"] == f"<{email_id}@omnitill>"
    assert queue_row(db, email_id).attempts == 2


@SQLITE_ONLY
def test_a_retry_is_the_very_same_message(db: Database, db_url: str) -> None:
    [email_id] = queue(db, 1)
    settings = worker_settings(db_url)
    payload = queue_row(db, email_id).payload
    first = mailer.message_for(db, settings, payload).as_bytes()
    again = mailer.message_for(db, settings, payload).as_bytes()
    assert first == again


def test_retry_delays_double_up_to_the_cap() -> None:
    delays = [retry_delay_s(n, initial_s=30, max_s=3600) for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay_s(10_000, initial_s=30, max_s=3600) == 3600
