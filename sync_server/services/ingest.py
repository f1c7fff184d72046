"""Exactly-once ingest of till ops (``POST /api/v1/sync/push``).

One push is one database transaction:

1. Lock the till's row (``FOR UPDATE`` on PostgreSQL; SQLite has one writer) and read its last
   applied ``seq``. Two connections pushing the same batch therefore take turns, and the second
   sees every op as a duplicate.
2. For each op, in order:
   - ``op_id`` already stored: answer its stored verdict (``duplicate`` for an applied op) —
     this is the retry after a lost ack;
   - ``seq <= last``: a sequence number reused with an unknown op: the till was restored from an
     old backup. The op is quarantined (kept whole) and answered ``rejected``; an alert is logged;
   - ``seq > last + 1``: a gap. The batch stops here; ops after it get no verdict and are not
     written. If the very first op is the gap, the whole push is refused (409);
   - otherwise the payload is validated (types, totals, the till's own store) and applied, or
     answered ``rejected`` with the reason (the seq is consumed: the till dead-letters the op).
     A ``receipt_email`` op is applied by queueing its mail (``services.mailer``), which a
     background worker sends after the commit: the push never waits for a mail server.
3. The ops, their effects and the till's new ``last_seq`` commit together. Verdicts are sent only
   after the commit, so an ack always means stored.

``ops.op_id`` is the primary key, so even a bug in the steps above could not store an op twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from shared.errors import (
    BatchTooLarge,
    Conflict,
    InvalidInput,
    PermissionDenied,
    SequenceGap,
)
from shared.protocol import (
    MAX_PUSH_OPS,
    CustomerPatch,
    InStoreEvent,
    Op,
    OpPayload,
    OpResult,
    PushRequest,
    PushResponse,
    ReceiptEmail,
    parse_op_payload,
)
from shared.sale import Return, Sale, check_return_totals, check_totals
from shared.wire import utc_now
from sync_server.db.bulk import bulk_insert
from sync_server.db.engine import Database
from sync_server.db.schema import (
    events,
    mail_queue,
    ops,
    order_lines,
    orders,
    quarantine,
    returns,
    tills,
)
from sync_server.services import identity, mailer
from sync_server.services.tills import Till

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    """Rows collected while walking a push, written with one executemany per table."""

    ops: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)
    customers: set[UUID] = field(default_factory=set)
    verdicts: dict[str, int] = field(default_factory=dict)
    store_id: str = ""


@dataclass(frozen=True, slots=True)
class _Stored:
    status: str
    error: str | None


@dataclass(frozen=True, slots=True)
class PushOutcome:
    response: PushResponse
    verdicts: dict[str, int]
    quarantined: int


def apply_push(
    db: Database,
    till: Till,
    request: PushRequest,
    *,
    backlog: int | None = None,
    payloads: Sequence[OpPayload] | None = None,
) -> PushOutcome:
    """Apply one push from ``till``; see the module docstring for the rules.

    ``backlog`` is the till's own count of ops still waiting in its outbox, for monitoring.
    ``payloads``, when given, are the ops' payloads already validated (``parse_push``), in the
    order of ``request.ops``.
    """
    if request.till_id != till.till_id:
        raise PermissionDenied(
            f"This token belongs to till {till.till_id}; it cannot push as {request.till_id}"
        )
    if len(request.ops) > MAX_PUSH_OPS:
        raise BatchTooLarge(
            f"{len(request.ops)} ops in one push; send at most {MAX_PUSH_OPS} per batch"
        )
    seen_ids = [op.op_id for op in request.ops]
    if len(set(seen_ids)) != len(seen_ids):
        raise InvalidInput("The same op_id appears twice in one push")
    try:
        with db.write() as conn:
            return _apply(conn, till, request, backlog, payloads)
    except IntegrityError as exc:
        # Only reachable when another process stored one of these op_ids for another till.
        raise Conflict(f"Push conflicts with stored ops: {exc.orig}") from exc


def _apply(
    conn: Connection,
    till: Till,
    request: PushRequest,
    backlog: int | None,
    payloads: Sequence[OpPayload] | None,
) -> PushOutcome:
    query = sa.select(tills.c.last_seq).where(tills.c.till_id == till.till_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    last_seq = int(conn.execute(query).scalar_one())
    op_ids = [op.op_id for op in request.ops]
    known: dict[UUID, Any] = {
        row.op_id: row
        for row in conn.execute(
            sa.select(ops.c.op_id, ops.c.status, ops.c.error).where(ops.c.op_id.in_(op_ids))
        )
    }
    for row in conn.execute(
        sa.select(quarantine.c.op_id, quarantine.c.reason).where(quarantine.c.op_id.in_(op_ids))
    ):
        known[row.op_id] = _Stored(status="quarantined", error=row.reason)
    now = utc_now()
    batch = _Batch(store_id=till.store_id)
    results: list[OpResult] = []
    for index, op in enumerate(request.ops):
        parsed = payloads[index] if payloads is not None else None
        if op.op_id in known:
            stored = known[op.op_id]
            if stored.status == "applied":
                results.append(OpResult(op_id=op.op_id, status="duplicate"))
            else:
                results.append(OpResult(op_id=op.op_id, status="rejected", error=stored.error))
            _count(batch, "duplicate")
            continue
        if op.seq <= last_seq:
            reason = (
                f"seq {op.seq} was already used by another op (last applied is {last_seq}): "
                "this till may have been restored from an old backup; the op is quarantined "
                "at HQ for staff to review"
            )
            log.error("till %s: quarantined op %s: %s", till.till_id, op.op_id, reason)
            batch.quarantine.append(
                {
                    "op_id": op.op_id,
                    "till_id": till.till_id,
                    "seq": op.seq,
                    "type": op.type,
                    "payload": parsed.model_dump_json() if parsed else json.dumps(op.payload),
                    "reason": reason,
                    "received_at": now,
                }
            )
            results.append(OpResult(op_id=op.op_id, status="rejected", error=reason))
            _count(batch, "quarantined")
            continue
        if op.seq > last_seq + 1:
            if not results:
                raise SequenceGap(
                    f"Till {till.till_id} sent seq {op.seq} but HQ expects {last_seq + 1}: "
                    "resend from the missing op",
                    expected=last_seq + 1,
                    found=op.seq,
                )
            log.warning(
                "till %s: gap at seq %s (expected %s); %d ops left unanswered",
                till.till_id,
                op.seq,
                last_seq + 1,
                len(request.ops) - len(results),
            )
            break
        error = _apply_op(conn, till, op, parsed, batch, now)
        status = "applied" if error is None else "rejected"
        batch.ops.append(
            {
                "op_id": op.op_id,
                "till_id": till.till_id,
                "seq": op.seq,
                "type": op.type,
                "status": status,
                "error": error,
                "received_at": now,
            }
        )
        results.append(OpResult(op_id=op.op_id, status=status, error=error))
        _count(batch, status)
        last_seq = op.seq
    _flush(conn, batch)
    conn.execute(
        tills.update()
        .where(tills.c.till_id == till.till_id)
        .values(
            last_seq=last_seq,
            last_seen_at=now,
            **({} if backlog is None else {"backlog": max(0, backlog - len(results))}),
        )
    )
    return PushOutcome(
        response=PushResponse(results=tuple(results), last_seq=last_seq),
        verdicts=batch.verdicts,
        quarantined=len(batch.quarantine),
    )


def _count(batch: _Batch, status: str) -> None:
    batch.verdicts[status] = batch.verdicts.get(status, 0) + 1


def _apply_op(
    conn: Connection,
    till: Till,
    op: Op,
    parsed: OpPayload | None,
    batch: _Batch,
    now: datetime,
) -> str | None:
    """Apply one op's effects (buffered in ``batch``); return a rejection reason or None."""
    try:
        payload = parsed if parsed is not None else parse_op_payload(op.type, op.payload)
        if isinstance(payload, Sale):
            _sale(conn, till, payload, batch, now)
        elif isinstance(payload, Return):
            _return(till, payload, batch, now)
        elif isinstance(payload, CustomerPatch):
            _flush(conn, batch)  # the patch reads what earlier ops of this batch wrote
            batch.customers.update(identity.apply_customer_patch(conn, till=till, patch=payload))
        elif isinstance(payload, ReceiptEmail):
            _receipt_email(till, payload, batch, now)
        else:
            _event(conn, till, payload, batch)
    except InvalidInput as exc:
        return exc.message
    return None


def _check_origin(till: Till, store_id: str, till_id: str, what: str) -> None:
    if till_id != till.till_id or store_id != till.store_id:
        raise InvalidInput(
            f"{what} says it was made at {store_id}/{till_id}, but it was pushed by "
            f"{till.store_id}/{till.till_id}"
        )


def _sale(conn: Connection, till: Till, sale: Sale, batch: _Batch, now: datetime) -> None:
    _check_origin(till, sale.store_id, sale.till_id, f"Sale {sale.sale_id}")
    check_totals(sale)
    profile_id, customer_id = identity.customer_for_sale(
        conn, till=till, customer_id=sale.customer_id, identifier=sale.customer_identifier
    )
    batch.orders.append(
        {
            "order_id": sale.sale_id,
            "channel": "store",
            "store_id": sale.store_id,
            "till_id": sale.till_id,
            "customer_id": customer_id,
            "profile_id": profile_id,
            "receipt_number": sale.receipt_number,
            "created_at": sale.created_at,
            "currency": sale.currency,
            "total_minor": sale.total_minor,
            "tax_minor": sale.tax_minor,
            "payload": sale.model_dump_json(),
            "ingested_at": now,
        }
    )
    batch.lines.extend(
        {
            "order_id": sale.sale_id,
            "line_no": line.line_no,
            "sku": line.sku,
            "quantity": line.quantity,
            "amount_minor": line.amount_minor,
        }
        for line in sale.lines
    )
    if customer_id is not None:
        batch.customers.add(customer_id)


def _return(till: Till, ret: Return, batch: _Batch, now: datetime) -> None:
    _check_origin(till, ret.store_id, ret.till_id, f"Return {ret.return_id}")
    check_return_totals(ret)
    batch.returns.append(
        {
            "return_id": ret.return_id,
            "original_sale_id": ret.original_sale_id,
            "store_id": ret.store_id,
            "till_id": ret.till_id,
            "customer_id": ret.customer_id,
            "created_at": ret.created_at,
            "total_minor": ret.total_minor,
            "payload": ret.model_dump_json(),
            "ingested_at": now,
        }
    )
    if ret.customer_id is not None:
        batch.customers.add(ret.customer_id)


def _event(conn: Connection, till: Till, event: InStoreEvent, batch: _Batch) -> None:
    profile_id = None
    if event.customer_id is not None:
        profile_id, customer_id = identity.customer_for_sale(
            conn, till=till, customer_id=event.customer_id, identifier=None
        )
        if customer_id is not None:
            batch.customers.add(customer_id)
    batch.events.append(
        {
            "event_id": event.event_id,
            "profile_id": profile_id,
            "anonymous_id": None,
            "channel": "store",
            "kind": event.kind,
            "at": event.at,
            "sku": event.sku,
            "data": json.dumps(
                {
                    **event.data,
                    "till_id": till.till_id,
                    "store_id": till.store_id,
                    "sale_id": str(event.sale_id) if event.sale_id else None,
                }
            ),
        }
    )


def _receipt_email(till: Till, email: ReceiptEmail, batch: _Batch, now: datetime) -> None:
    receipt = email.receipt
    _check_origin(till, receipt.store.store_id, receipt.till_id, f"Receipt email {email.email_id}")
    batch.mails.append(mailer.receipt_row(email, now=now))


def _flush(conn: Connection, batch: _Batch) -> None:
    for table, rows in (
        (orders, batch.orders),
        (order_lines, batch.lines),
        (returns, batch.returns),
        (quarantine, batch.quarantine),
        (ops, batch.ops),
    ):
        if rows:
            bulk_insert(conn, table, rows)
            rows.clear()
    if batch.events:
        bulk_insert(conn, events, batch.events, ignore=True)
        batch.events.clear()
    if batch.mails:
        # One mail per email_id made at the till, whatever op carried it.
        bulk_insert(conn, mail_queue, batch.mails, ignore=True)
        batch.mails.clear()
    if batch.customers:
        identity.customers_changed(conn, batch.customers, store_id=batch.store_id)
        batch.customers.clear()
