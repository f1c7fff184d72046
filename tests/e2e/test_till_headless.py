"""The headless till as a real process against a real HQ under uvicorn.

The till runs as ``python -m omnitill till --headless`` and is fed scans through standard input
(or a serial scanner on a pty); HQ runs in this process on a loopback port and can be stopped
and started again on the same port. Faults are real: HQ down, SIGKILL right after a sale,
SIGKILL in the middle of a pull, garbage on the serial line.
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from edge_agent import feed
from edge_agent.store import LocalStore
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number
from shared.protocol import MAX_PULL_LIMIT
from sync_server.db.engine import Database
from sync_server.services import feed as hq_feed
from tests.edge_agent import factories as f
from tests.support.server import wait_for
from tests.support.till import STORE, TILL, RestartableHq, hq_orders

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and ptys")

ROOT = Path(__file__).resolve().parents[2]
ITEMS = (f.TSHIRT, f.JEANS, f.MILK)
LINE_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------------------------------
# HQ


@pytest.fixture
def hq_down(tmp_path: Path) -> Iterator[RestartableHq]:
    """A migrated HQ database with a server that is NOT running yet (start it with .start())."""
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    db = Database(url)
    db.migrate()
    server = RestartableHq(url, db)
    try:
        yield server
    finally:
        server.stop()
        db.dispose()


@pytest.fixture
def hq(hq_down: RestartableHq) -> RestartableHq:
    hq_down.start()
    return hq_down


def put_products(hq: RestartableHq, changes: list[dict[str, Any]]) -> None:
    """Put products on HQ's change feed, as an import does."""
    import json

    with hq.db.write() as conn:
        hq_feed.record_changes(
            conn,
            [
                {"entity": c["entity"], "key": c["key"], "data": json.dumps(c["data"])}
                for c in changes
            ],
        )


def item_changes() -> list[dict[str, Any]]:
    return [
        f.product_change(i.sku, i.name, i.price_minor, gtins=[i.ean or ""], tax_rate=i.tax_rate)
        for i in ITEMS
    ]


# ---------------------------------------------------------------------------------------------
# The till process


def till_rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Rows read straight from a till's database file (running or killed)."""
    conn = sqlite3.connect(str(db), timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def till_knows(db: Path, ean: str) -> bool:
    if not db.exists():
        return False
    try:
        return bool(till_rows(db, "SELECT 1 FROM barcodes WHERE gtin = ?", (ean.zfill(14),)))
    except sqlite3.OperationalError:  # created, not migrated yet
        return False


class HeadlessTill:
    """``omnitill till --headless`` as a child process; stdout read line by line."""

    count = 0

    def __init__(
        self,
        workdir: Path,
        *,
        server_url: str,
        token: str,
        db: Path,
        args: tuple[str, ...] = ("--stdin",),
    ) -> None:
        HeadlessTill.count += 1
        self.db = db
        self.log_path = workdir / f"till-{HeadlessTill.count}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITILL_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["OMNITILL_TILL_CONFIG"] = str(workdir / "no-such-file.toml")
        env["OMNITILL_TILL_PUSH_INTERVAL_S"] = "0.5"
        env["OMNITILL_TILL_PULL_INTERVAL_S"] = "0.5"
        command = [
            sys.executable,
            "-m",
            "omnitill",
            "--log-level",
            "INFO",
            "till",
            "--headless",
            "--server",
            server_url,
            "--token",
            token,
            "--db",
            str(db),
            "--store",
            STORE,
            "--till",
            TILL,
            "--cashier",
            "e2e",
            *args,
        ]
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                cwd=workdir,
                env=env,
            )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
        self._lines.put(None)

    def __enter__(self) -> HeadlessTill:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def send(self, *codes: str | bytes) -> None:
        assert self.process.stdin is not None
        for code in codes:
            data = code if isinstance(code, bytes) else code.encode()
            self.process.stdin.write(data + b"\n")
        self.process.stdin.flush()

    def end_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def expect(self, prefix: str, timeout: float = LINE_TIMEOUT_S) -> str:
        """The next line starting with ``prefix`` (lines before it are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no line starting with {prefix!r} within {timeout} s; stdout so far:\n"
                    + "\n".join(self.seen)
                    + f"\nlog:\n{self.log()}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"the till exited ({self.process.wait()}) before {prefix!r}; stdout:\n"
                    + "\n".join(self.seen)
                    + f"\nlog:\n{self.log()}"
                )
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def sigkill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)


def only_sale_id(db: Path) -> str:
    [(sale_id,)] = till_rows(db, "SELECT sale_id FROM sales")
    return str(sale_id)


def outbox_of(db: Path, sale_id: str) -> list[str]:
    rows = till_rows(
        db,
        "SELECT status FROM outbox WHERE type = 'sale' AND json_extract(payload, '$.sale_id') = ?",
        (sale_id,),
    )
    return [str(r[0]) for r in rows]


def eventually(probe: Callable[[], Any], what: str, timeout: float = 40.0) -> Any:
    return wait_for(probe, timeout=timeout, interval=0.1, what=what)


# ---------------------------------------------------------------------------------------------
# (a) HQ down during the sale


def test_a_sale_made_while_hq_is_down_reaches_it_exactly_once(
    tmp_path: Path, hq_down: RestartableHq
) -> None:
    token = hq_down.enroll()
    put_products(hq_down, item_changes())
    db = tmp_path / "till.db"
    # The till already has its catalogue from an earlier day (with no cursor: it pulls it all
    # again once HQ answers, which is harmless).
    seeded = LocalStore.open(db)
    feed.apply_page(seeded, item_changes(), "seed")
    with seeded.transaction() as conn:
        conn.execute("DELETE FROM sync_state WHERE key = ?", [feed.CURSOR_KEY])
    seeded.close()

    with HeadlessTill(tmp_path, server_url=hq_down.base_url, token=token, db=db) as till:
        till.expect("ready | till S001-T1 | store S001 | HQ http://127.0.0.1:")
        till.send(f.TSHIRT.ean or "", "CMD-PAY-CASH")
        assert till.expect("added ") == (
            "added 1 x Nordkind Organic Cotton T-Shirt Navy €19.99 | total €19.99"
        )
        till.expect("sale complete S001-T1-000001 | total €19.99")
        sale_id = only_sale_id(db)
        assert outbox_of(db, sale_id) == ["pending"]
        assert "Cannot reach HQ" in eventually(
            lambda: "Cannot reach HQ" in till.log() and till.log(), "a failed push"
        )

        hq_down.start()
        eventually(lambda: hq_orders(hq_down.db) == [sale_id], "the sale at HQ")
        eventually(lambda: outbox_of(db, sale_id) == ["done"], "the op marked done")
        time.sleep(1.0)  # a few more push cycles: nothing is sent twice
        assert till.stop() == 0
        assert till.expect("stopped") == "stopped | 0 ops waiting for HQ | 1 print jobs waiting"
    assert hq_orders(hq_down.db) == [sale_id]


# ---------------------------------------------------------------------------------------------
# (b) SIGKILL right after the sale is confirmed


def test_a_till_killed_right_after_a_sale_loses_nothing(tmp_path: Path, hq: RestartableHq) -> None:
    token = hq.enroll()
    put_products(hq, item_changes())
    db = tmp_path / "till.db"
    with HeadlessTill(tmp_path, server_url=hq.base_url, token=token, db=db) as till:
        till.expect("ready |")
        eventually(lambda: till_knows(db, f.JEANS.ean or ""), "the catalogue pulled")
        till.send(f.JEANS.ean or "", "CMD-QTY-2", f.MILK.ean or "", "CMD-PAY-CARD")
        till.expect("sale complete S001-T1-000001 | total €62.57 | paid card €62.57")
        till.sigkill()

    sale_id = only_sale_id(db)
    assert len(outbox_of(db, sale_id)) == 1  # committed with the sale, whatever the push did
    with HeadlessTill(
        tmp_path, server_url=hq.base_url, token=token, db=db, args=("--stdin", "--once")
    ) as again:
        again.end_input()
        assert again.wait() == 0, again.log()
        assert again.expect("stopped") == "stopped | 0 ops waiting for HQ | 1 print jobs waiting"
    assert hq_orders(hq.db) == [sale_id]
    assert outbox_of(db, sale_id) == ["done"]
    assert till_rows(db, "SELECT receipt_number FROM sales") == [("S001-T1-000001",)]


# ---------------------------------------------------------------------------------------------
# (c) SIGKILL between pull pages


PAGE = 20
PRODUCTS = 3000


def hq_feed_keys(hq: RestartableHq, token: str, cursor: str | None) -> list[str]:
    """Product keys HQ still has for the till after ``cursor``, in feed order."""
    keys: list[str] = []
    with hq.client(token) as client:
        while True:
            page = client.pull(cursor, limit=MAX_PULL_LIMIT)
            keys += [c.key for c in page.changes if c.entity == "product"]
            cursor = page.cursor
            if not page.has_more:
                return keys


def test_a_pull_page_and_its_cursor_land_together_or_not_at_all(
    tmp_path: Path, hq: RestartableHq
) -> None:
    token = hq.enroll()
    put_products(
        hq,
        [f.product_change(f"SKU-{n:05d}", f"Item {n}", 100 + n) for n in range(PRODUCTS)],
    )
    everything = hq_feed_keys(hq, token, None)
    assert len(everything) == PRODUCTS
    db = tmp_path / "till.db"
    args = ("--stdin", "--pull-limit", str(PAGE))

    def products() -> int:
        try:
            return int(till_rows(db, "SELECT COUNT(*) FROM products")[0][0])
        except sqlite3.OperationalError:
            return 0

    with HeadlessTill(tmp_path, server_url=hq.base_url, token=token, db=db, args=args) as till:
        eventually(lambda: products() >= 5 * PAGE, "a few pages pulled", timeout=30)
        till.sigkill()

    have = {str(r[0]) for r in till_rows(db, "SELECT sku FROM products")}
    [(cursor,)] = till_rows(db, "SELECT value FROM sync_state WHERE key = ?", (feed.CURSOR_KEY,))
    assert 0 < len(have) < PRODUCTS, "the kill must land in the middle of the pull"
    assert len(have) % PAGE == 0  # whole pages only
    # The cursor says exactly what the till has: what HQ still owes it is everything else.
    owed = hq_feed_keys(hq, token, cursor)
    assert have == set(everything) - set(owed)
    assert everything[: len(have)] == sorted(have)

    with HeadlessTill(
        tmp_path, server_url=hq.base_url, token=token, db=db, args=(*args, "--once")
    ) as again:
        again.end_input()
        assert again.wait() == 0, again.log()
    have = {str(r[0]) for r in till_rows(db, "SELECT sku FROM products")}
    assert have == set(everything)
    [(cursor,)] = till_rows(db, "SELECT value FROM sync_state WHERE key = ?", (feed.CURSOR_KEY,))
    assert hq_feed_keys(hq, token, cursor) == []


# ---------------------------------------------------------------------------------------------
# (d) bad input


def bad_check_digit(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def test_malformed_barcodes_are_messages_and_the_till_sells_on(
    tmp_path: Path, hq: RestartableHq
) -> None:
    token = hq.enroll()
    put_products(hq, item_changes())
    db = tmp_path / "till.db"
    bad_card = bad_check_digit(make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 1234))
    with HeadlessTill(tmp_path, server_url=hq.base_url, token=token, db=db) as till:
        till.expect("ready |")
        eventually(lambda: till_knows(db, f.TSHIRT.ean or ""), "the catalogue pulled")
        till.send(
            bad_check_digit(f.TSHIRT.ean or ""),
            "9638507",  # EAN-8 one digit short
            "TSHIRT",
            bad_card,
            b"4006\x07381\x1b333931",
            b"\xff\xfe\x00garbage",
            "CMD-DANCE",
            f.TSHIRT.ean or "",
            "CMD-PAY-CASH-2000",
        )
        failures = [
            till.expect("failed scan: Check digit of"),
            till.expect("failed scan: "),
            till.expect("failed scan: 'TSHIRT' is not a product"),
            till.expect("failed scan: "),
            till.expect("failed scan: The scanner sent unreadable characters"),
            till.expect("failed scan: The scanner sent unreadable characters"),
            till.expect("refused: CMD-DANCE is not a till command"),
        ]
        assert "9638507" in failures[1]
        assert bad_card in failures[3]
        till.expect("added 1 x Nordkind Organic Cotton T-Shirt Navy")
        till.expect("sale complete S001-T1-000001 | total €19.99 | paid cash €20.00 | change €0.01")
        assert till.seen[1:] == failures + till.seen[-2:]  # one line per scan, nothing else
        eventually(lambda: hq_orders(hq.db) == [only_sale_id(db)], "the sale at HQ")
        assert till.stop() == 0


def test_garbage_on_the_serial_line_is_logged_and_good_scans_still_sell(
    tmp_path: Path, hq: RestartableHq
) -> None:
    token = hq.enroll()
    put_products(hq, item_changes())
    db = tmp_path / "till.db"
    master, slave = os.openpty()
    tty.setraw(slave)
    url = f"serial://{os.ttyname(slave)}?baudrate=9600&parity=N&bytesize=8&stopbits=1&suffix=CR"
    args = ("--scanner", url)
    try:
        with HeadlessTill(tmp_path, server_url=hq.base_url, token=token, db=db, args=args) as till:
            till.expect("ready |")
            eventually(lambda: till_knows(db, f.TSHIRT.ean or ""), "the catalogue pulled")
            # pyserial empties the line when it opens the port: probe until the till answers.
            deadline = time.monotonic() + LINE_TIMEOUT_S
            while True:
                os.write(master, b"CMD-TOTAL\r")
                try:
                    till.expect("total ", timeout=0.5)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.3)
            os.write(master, b"\x00\xff\x13\x80noise\r")
            till.expect("failed scan: The scanner sent unreadable bytes (0x00, 0x13, 0x80, 0xff)")
            os.write(master, b"4006381")  # cut off: the scanner goes quiet
            till.expect("failed scan: Only part of a code arrived ('4006381')")
            os.write(master, (f.TSHIRT.ean or "").encode() + b"\rCMD-PAY-CASH\r")
            till.expect("added 1 x Nordkind Organic Cotton T-Shirt Navy €19.99")
            till.expect("sale complete S001-T1-000001")
            assert till.process.poll() is None
            assert till.stop() == 0
            till.expect("stopped |")
    finally:
        os.close(master)
        os.close(slave)
