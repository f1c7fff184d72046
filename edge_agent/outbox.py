"""The till's outbox: ops waiting to reach HQ, in the order they were made.

An op is written in the same transaction as what it reports (a sale and its op commit together),
with a UUID made here and the next ``seq`` of this till. ``seq`` comes from ``sync_state``
(``last_seq``), never from ``MAX(seq)``, so numbers are never reused even if old rows are
archived. Ops are marked done only after HQ's answer; a rejected op moves to ``dead_letters``
for staff and stays in the outbox marked ``dead``. Nothing is deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from edge_agent.store import LocalStore, dumps
from shared.ids import new_id
from shared.protocol import OpResult
from shared.wire import utc_now


@dataclass(frozen=True, slots=True)
class PendingOp:
    seq: int
    op_id: str
    type: str
    payload: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "op_id": self.op_id,
            "seq": self.seq,
            "type": self.type,
            "payload": json.loads(self.payload),
        }


def enqueue(db: sqlite_utils.Database, op_type: str, payload: dict[str, Any] | str) -> PendingOp:
    """Add an op inside the caller's transaction (``LocalStore.transaction``)."""
    row = db.execute("SELECT value FROM sync_state WHERE key = 'last_seq'").fetchone()
    seq = (int(row[0]) if row else 0) + 1
    db.execute(
        "INSERT INTO sync_state(key, value) VALUES ('last_seq', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [str(seq)],
    )
    op_id = new_id()
    text = payload if isinstance(payload, str) else dumps(payload)
    now = utc_now()
    db.execute(
        "INSERT INTO outbox(seq, op_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        [seq, str(op_id), op_type, text, now.isoformat()],
    )
    return PendingOp(seq, str(op_id), op_type, text)


def pending(store: LocalStore, *, limit: int = 500) -> list[PendingOp]:
    rows = store.query(
        "SELECT seq, op_id, type, payload FROM outbox WHERE status = 'pending' "
        "ORDER BY seq LIMIT ?",
        (limit,),
    )
    return [PendingOp(r[0], r[1], r[2], r[3]) for r in rows]


def pending_count(store: LocalStore) -> int:
    row = store.query_one("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
    return int(row[0]) if row else 0


def dead_count(store: LocalStore) -> int:
    row = store.query_one("SELECT COUNT(*) FROM dead_letters")
    return int(row[0]) if row else 0


def record_results(store: LocalStore, sent: list[PendingOp], results: list[OpResult]) -> int:
    """Apply HQ's verdicts: done for applied/duplicate, dead letter for rejected.

    Ops without a verdict (after a gap) stay pending. Returns how many ops were settled.
    """
    by_id = {op.op_id: op for op in sent}
    now = utc_now().isoformat()
    settled = 0
    with store.transaction() as db:
        for result in results:
            op = by_id.get(str(result.op_id))
            if op is None:
                continue
            if result.status in ("applied", "duplicate"):
                db.execute(
                    "UPDATE outbox SET status = 'done', acked_at = ?, attempts = attempts + 1 "
                    "WHERE op_id = ?",
                    [now, op.op_id],
                )
            else:
                error = result.error or "rejected by HQ"
                db.execute(
                    "UPDATE outbox SET status = 'dead', last_error = ?, attempts = attempts + 1 "
                    "WHERE op_id = ?",
                    [error, op.op_id],
                )
                db.execute(
                    "INSERT OR REPLACE INTO dead_letters(op_id, seq, type, payload, error, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [op.op_id, op.seq, op.type, op.payload, error, now],
                )
            settled += 1
    return settled


def note_failure(store: LocalStore, sent: list[PendingOp], error: str) -> None:
    """A transport failure: the ops stay pending; remember why for the status bar."""
    with store.transaction() as db:
        db.execute(
            f"UPDATE outbox SET attempts = attempts + 1, last_error = ? "
            f"WHERE op_id IN ({','.join('?' * len(sent))})",
            [error, *(op.op_id for op in sent)],
        )
