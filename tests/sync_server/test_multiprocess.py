"""Two ``omnitill server`` processes on one database lose and duplicate nothing.

On PostgreSQL the processes write side by side; on SQLite they take turns on the database's
write lock (``<database>.writelock``), each applying its pushes in groups (group commit).

Both processes start together on an empty database (their migrations race), then several tills
push batches of sales spread across both: some batches go to one server, some are retried on
the other after the first answer (a till that never heard the ack), and some are sent to both at
the same moment. Every op must get exactly one ``applied`` across all answers, and the database
must hold every sale exactly once.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from sync_server.db.engine import Database
from sync_server.db.schema import events, ops, order_lines, orders, tills
from sync_server.services.tills import enroll_till
from tests.support.server import (
    ADMIN_HEADERS,
    TillClient,
    at_once,
    new_op,
    sale_for,
    sale_op,
    server_env,
    server_processes,
)

TILLS = 5
BATCHES = 9
SALES_PER_BATCH = 8


def enroll_with_the_cli(db_url: str, store_id: str, till_id: str, workdir: Path) -> str:
    """``omnitill admin enroll-till``; the token is the last line of its stdout."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnitill",
            "admin",
            "enroll-till",
            "--store",
            store_id,
            "--till",
            till_id,
            "--db",
            db_url,
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=server_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("otl_") and " " not in token, result.stdout
    return token


def run_till(till: TillClient, other_url: str, log: list[tuple[str, str]]) -> None:
    """Push this till's batches, spreading them over both servers; record every verdict."""
    urls = [till.base_url, other_url]
    clients = [httpx.Client(base_url=u, headers=till.headers, timeout=60) for u in urls]
    try:
        for b in range(BATCHES):
            batch: list[Any] = [
                sale_op(sale_for(till, lines=1 + i % 3), till.take_seq())
                for i in range(SALES_PER_BATCH)
            ]
            event = {
                "event_id": str(uuid.uuid4()),
                "kind": "drawer_opened",
                "at": "2026-11-23T09:30:00Z",
            }
            batch.append(new_op("event", event, till.take_seq()))
            body = {"till_id": till.till_id, "ops": batch}
            first, second = clients[b % 2], clients[(b + 1) % 2]
            mode = b % 3
            if mode == 0:  # to one server
                answers = [first.post("/api/v1/sync/push", json=body)]
            elif mode == 1:  # the ack was lost: the till retries on the other server
                answers = [
                    first.post("/api/v1/sync/push", json=body),
                    second.post("/api/v1/sync/push", json=body),
                ]
            else:  # the same batch to both servers at the same moment
                answers = at_once(
                    *(functools.partial(c.post, "/api/v1/sync/push", json=body) for c in clients)
                )
            for answer in answers:
                assert answer.status_code == 200, answer.text
                log.extend((r["op_id"], r["status"]) for r in answer.json()["results"])
                assert answer.json()["last_seq"] == till.next_seq - 1
    finally:
        for client in clients:
            client.close()


def test_two_server_processes_on_one_database_lose_and_duplicate_nothing(
    db_url: str, tmp_path: Path
) -> None:
    with server_processes(db_url, 2, workdir=tmp_path) as servers:
        db = Database(db_url)  # migrated by the servers
        till_clients: list[TillClient] = []
        try:
            for i in range(TILLS):
                store, till_id = f"S00{i % 2 + 1}", f"S00{i % 2 + 1}-T{i}"
                token = (
                    enroll_with_the_cli(db_url, store, till_id, tmp_path)
                    if i == 0
                    else enroll_till(db, store_id=store, till_id=till_id)
                )
                till_clients.append(TillClient(servers[i % 2].base_url, store, till_id, token))
            logs: list[list[tuple[str, str]]] = [[] for _ in till_clients]
            failures: list[BaseException] = []

            def drive(i: int) -> None:
                try:
                    run_till(till_clients[i], servers[(i + 1) % 2].base_url, logs[i])
                except BaseException as exc:
                    failures.append(exc)

            threads = [threading.Thread(target=drive, args=(i,)) for i in range(TILLS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not failures, failures

            ops_per_till = BATCHES * (SALES_PER_BATCH + 1)
            for log in logs:
                applied = Counter(op_id for op_id, status in log if status == "applied")
                assert len(applied) == ops_per_till
                assert set(applied.values()) == {1}, "an op was applied twice"
                assert {status for _, status in log} == {"applied", "duplicate"}
                assert len({op_id for op_id, _ in log}) == ops_per_till

            sales = TILLS * BATCHES * SALES_PER_BATCH
            lines = TILLS * sum(1 + i % 3 for i in range(SALES_PER_BATCH)) * BATCHES
            with db.read() as conn:

                def count(table: sa.Table) -> int:
                    return int(
                        conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    )

                assert count(orders) == sales
                assert count(order_lines) == lines
                assert count(events) == TILLS * BATCHES
                assert count(ops) == TILLS * ops_per_till
                assert count(ops) == len({op for log in logs for op, _ in log})
                seqs = dict(conn.execute(sa.select(tills.c.till_id, tills.c.last_seq)).all())
            assert seqs == {t.till_id: ops_per_till for t in till_clients}
            # Both processes report the same truth.
            for server in servers:
                stats = httpx.get(
                    f"{server.base_url}/api/v1/admin/stats", headers=ADMIN_HEADERS, timeout=30
                )
                assert stats.status_code == 200, stats.text
                assert stats.json()["sales"] == sales
                assert stats.json()["tills"] == TILLS
        finally:
            for till in till_clients:
                till.close()
            db.dispose()
    for server in servers:
        assert "Traceback" not in server.log(), server.log()
