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
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError

from shared.errors import (
    BatchTooLarge,
    Conflict,
    InvalidInput,
    OmnitillError,
    PermissionDenied,
    SequenceGap,
    StorageError,
)
from shared.protocol import (
    MAX_PUSH_OPS,
    CustomerPatch,
    InStoreEvent,
    Op,
    OpHeader,
    OpPayload,
    OpStatus,
    PushEnvelope,
    PushResponse,
    ReceiptEmail,
    parse_op_payload,
    parse_push,
)
from shared.sale import Return, Sale, check_return_totals, check_totals
from shared.wire import utc_now
from sync_server.db.bulk import bulk_insert, row_codec
from sync_server.db.engine import Database, translate_errors
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

    ops: list[tuple[Any, ...]] = field(default_factory=list)
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)
    customers: set[UUID] = field(default_factory=set)
    verdicts: dict[str, int] = field(default_factory=dict)
    store_id: str = ""
    #: The push's time of ingest, and its driver value for the rows.
    now: datetime = field(default_factory=utc_now)
    now_value: Any = None


@dataclass(frozen=True, slots=True)
class _Stored:
    status: str
    error: str | None


@dataclass(frozen=True, slots=True)
class PushOutcome:
    #: The :class:`PushResponse` as JSON, exactly as pydantic would write it.
    body: bytes
    verdicts: dict[str, int]
    quarantined: int

    @property
    def response(self) -> PushResponse:
        return PushResponse.model_validate_json(self.body)


@dataclass(slots=True)
class _SaleRows:
    """A sale's rows, made from the payload alone before the write lock is taken.

    ``head`` and ``tail`` are the order row's driver values around ``customer_id`` and
    ``profile_id`` (which need the database); ``ingested_at`` is stamped under the lock.
    ``error`` is why the sale will be rejected (origin, totals), once its op is reached.
    """

    head: tuple[Any, ...] = ()
    tail: tuple[Any, ...] = ()
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class PreparedPush:
    """A push parsed and checked, its rows made: all the work that needs no database."""

    till: Till
    request: PushEnvelope
    payloads: Sequence[OpPayload] | None
    backlog: int | None
    #: Per op: the op row's first driver values (op_id, till_id, seq, type) and, for a sale
    #: whose payload parsed, its rows.
    op_heads: list[tuple[Any, ...]]
    sales: list[_SaleRows | None]


@dataclass(slots=True)
class _Applied:
    """What a push did, in plain values; its response is built after the commit."""

    results: list[tuple[UUID, OpStatus, str | None]]
    last_seq: int
    verdicts: dict[str, int]
    quarantined: int


class _Codecs:
    """The driver rows of the tables a push writes most, for one engine."""

    def __init__(self, dialect: Dialect) -> None:
        self.orders = row_codec(orders, dialect)
        self.lines = row_codec(order_lines, dialect)
        self.ops = row_codec(ops, dialect)
        names = self.orders.names
        self.customer_at = names.index("customer_id")
        if names[self.customer_at + 1] != "profile_id" or names[-1] != "ingested_at":
            raise RuntimeError("orders' columns are not in the order ingest writes them")
        if self.ops.names[4:] != ("status", "error", "received_at"):
            raise RuntimeError("ops' columns are not in the order ingest writes them")


#: One per engine and driver (bind processors differ by driver, not by engine object).
_CODECS: dict[tuple[str, str], _Codecs] = {}


def _codecs(dialect: Dialect) -> _Codecs:
    key = (dialect.name, dialect.driver)
    codecs = _CODECS.get(key)
    if codecs is None:
        codecs = _CODECS[key] = _Codecs(dialect)
    return codecs


def prepare_push(db: Database, push: RawPush) -> PreparedPush:
    """Parse and check ``push`` and make its rows; raises what makes the whole push refused.

    Raises ``pydantic.ValidationError`` for a malformed body and :class:`OmnitillError` for a
    push this till may not send (:func:`check_push`). Needs no database connection: with
    SQLite's one writer, this is the work done before the write lock is taken.
    """
    request, payloads = parse_push(push.body)
    check_push(push.till, request)
    codecs = _codecs(db.engine.dialect)
    till_id = push.till.till_id
    op_id = codecs.ops.value
    op_heads = [(op_id("op_id", op.op_id), till_id, op.seq, op.type) for op in request.ops]
    sales: list[_SaleRows | None] = [None] * len(request.ops)
    if payloads is not None:
        for index, payload in enumerate(payloads):
            if isinstance(payload, Sale):
                sales[index] = _sale_rows(codecs, push.till, payload)
    return PreparedPush(push.till, request, payloads, push.backlog, op_heads, sales)


def _sale_rows(codecs: _Codecs, till: Till, sale: Sale) -> _SaleRows:
    try:
        _check_origin(till, sale.store_id, sale.till_id, f"Sale {sale.sale_id}")
        check_totals(sale)
    except InvalidInput as exc:
        return _SaleRows(error=exc.message)
    order = codecs.orders.row(
        (
            sale.sale_id,
            "store",
            sale.store_id,
            sale.till_id,
            None,
            None,
            sale.receipt_number,
            sale.created_at,
            sale.currency,
            sale.total_minor,
            sale.tax_minor,
            sale.model_dump_json(),
            None,
        )
    )
    at = codecs.customer_at
    order_id = order[0]
    return _SaleRows(
        head=order[:at],
        tail=order[at + 2 : -1],
        lines=[
            (order_id, line.line_no, line.sku, line.quantity, line.amount_minor)
            for line in sale.lines
        ],
    )


def apply_push(db: Database, prepared: PreparedPush) -> PushOutcome:
    """Apply one prepared push in its own transaction; see the module docstring for the rules."""
    try:
        with db.write() as conn:
            applied = _apply(conn, prepared)
    except IntegrityError as exc:
        raise _conflict(exc) from exc
    return _outcome(applied)


def check_push(till: Till, request: PushEnvelope) -> None:
    """What can be refused before the database is touched."""
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


def _conflict(exc: IntegrityError) -> Conflict:
    # Only reachable when another process stored one of these op_ids for another till.
    return Conflict(f"Push conflicts with stored ops: {exc.orig}")


@dataclass(frozen=True, slots=True)
class RawPush:
    """A push as it arrived: the till that sent it, its body, its reported backlog."""

    till: Till
    body: bytes
    backlog: int | None = None


def apply_raw_push(db: Database, push: RawPush) -> PushOutcome:
    """Parse and apply one push in its own transaction; raises what apply_pushes returns."""
    return apply_push(db, prepare_push(db, push))


def apply_pushes(db: Database, pushes: Sequence[RawPush]) -> list[PushOutcome | Exception]:
    """Parse and apply several pushes in ONE transaction, a savepoint each (group commit).

    Returns one outcome per push, in order: its :class:`PushOutcome`, or the error that push
    alone met (a ``pydantic.ValidationError`` for a malformed body, or an :class:`OmnitillError`
    such as :class:`SequenceGap`); that push's writes are rolled back to its savepoint and the
    others go on. A failure of the transaction itself (:class:`StorageError`: disk full, a
    database error) is raised and nothing of the group is stored. Pushes of the same till in
    one group are applied in order and see each other's writes, exactly as one after the other.

    Everything that needs no database (parsing, checks, the rows' values) is done first, so
    the write lock is held only for the reads and inserts; responses are built after commit.
    """
    outcomes: list[PushOutcome | Exception | None] = [None] * len(pushes)
    ready: list[tuple[int, PreparedPush]] = []
    for index, push in enumerate(pushes):
        try:
            ready.append((index, prepare_push(db, push)))
        except (ValidationError, OmnitillError) as exc:
            outcomes[index] = exc
    applied: list[tuple[int, _Applied]] = []
    if ready:
        with db.write() as conn:
            for index, prepared in ready:
                savepoint = conn.begin_nested()
                try:
                    with translate_errors():
                        done = _apply(conn, prepared)
                except StorageError:
                    # The transaction itself is in doubt (SQLite rolls the whole of it back on
                    # a full disk, savepoints included): the group fails, nothing is stored.
                    raise
                except (IntegrityError, OmnitillError) as exc:
                    savepoint.rollback()
                    outcomes[index] = _conflict(exc) if isinstance(exc, IntegrityError) else exc
                else:
                    savepoint.commit()
                    applied.append((index, done))
    for index, done in applied:
        outcomes[index] = _outcome(done)
    result: list[PushOutcome | Exception] = []
    for outcome in outcomes:
        assert outcome is not None  # every push was either refused or applied above
        result.append(outcome)
    return result


def _outcome(applied: _Applied) -> PushOutcome:
    # json.dumps writes what PushResponse.model_dump_json() would (same keys, order and
    # separators), without a model per op: at 100 ops a push that was a tenth of the parse.
    body = json.dumps(
        {
            "results": [
                {"op_id": str(op_id), "status": status, "error": error}
                for op_id, status, error in applied.results
            ],
            "last_seq": applied.last_seq,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return PushOutcome(body=body, verdicts=applied.verdicts, quarantined=applied.quarantined)


# Built once: building a SELECT with a 100-value IN list per push cost more than running it.
_LAST_SEQ = sa.select(tills.c.last_seq).where(tills.c.till_id == sa.bindparam("till_id"))
_LAST_SEQ_FOR_UPDATE = _LAST_SEQ.with_for_update()
_KNOWN_OPS = sa.select(ops.c.op_id, ops.c.status, ops.c.error).where(
    ops.c.op_id.in_(sa.bindparam("op_ids", expanding=True))
)
_QUARANTINED = sa.select(quarantine.c.op_id, quarantine.c.reason).where(
    quarantine.c.op_id.in_(sa.bindparam("op_ids", expanding=True))
)


def _apply(conn: Connection, prepared: PreparedPush) -> _Applied:
    till, request, payloads = prepared.till, prepared.request, prepared.payloads
    query = _LAST_SEQ_FOR_UPDATE if conn.dialect.name == "postgresql" else _LAST_SEQ
    last_seq = int(conn.execute(query, {"till_id": till.till_id}).scalar_one())
    op_ids = {"op_ids": [op.op_id for op in request.ops]}
    known: dict[UUID, Any] = {row.op_id: row for row in conn.execute(_KNOWN_OPS, op_ids)}
    for row in conn.execute(_QUARANTINED, op_ids):
        known[row.op_id] = _Stored(status="quarantined", error=row.reason)
    now = utc_now()
    codecs = _codecs(conn.dialect)
    now_value = codecs.orders.value("ingested_at", now)
    batch = _Batch(store_id=till.store_id, now=now, now_value=now_value)
    results: list[tuple[UUID, OpStatus, str | None]] = []
    for index, op in enumerate(request.ops):
        if op.op_id in known:
            stored = known[op.op_id]
            if stored.status == "applied":
                results.append((op.op_id, "duplicate", None))
            else:
                results.append((op.op_id, "rejected", stored.error))
            _count(batch, "duplicate")
            continue
        parsed = payloads[index] if payloads is not None else None
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
                    "payload": (
                        parsed.model_dump_json() if parsed else json.dumps(_raw_payload(op))
                    ),
                    "reason": reason,
                    "received_at": now,
                }
            )
            results.append((op.op_id, "rejected", reason))
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
        error = _apply_op(conn, till, op, parsed, prepared.sales[index], batch)
        status: OpStatus = "applied" if error is None else "rejected"
        batch.ops.append((*prepared.op_heads[index], status, error, batch.now_value))
        results.append((op.op_id, status, error))
        _count(batch, status)
        last_seq = op.seq
    _flush(conn, batch)
    backlog = prepared.backlog
    conn.execute(
        tills.update()
        .where(tills.c.till_id == till.till_id)
        .values(
            last_seq=last_seq,
            last_seen_at=now,
            **({} if backlog is None else {"backlog": max(0, backlog - len(results))}),
        )
    )
    return _Applied(
        results=results,
        last_seq=last_seq,
        verdicts=batch.verdicts,
        quarantined=batch.verdicts.get("quarantined", 0),
    )


def _count(batch: _Batch, status: str) -> None:
    batch.verdicts[status] = batch.verdicts.get(status, 0) + 1


def _apply_op(
    conn: Connection,
    till: Till,
    op: OpHeader,
    parsed: OpPayload | None,
    rows: _SaleRows | None,
    batch: _Batch,
) -> str | None:
    """Apply one op's effects (buffered in ``batch``); return a rejection reason or None."""
    try:
        payload = parsed if parsed is not None else parse_op_payload(op.type, _raw_payload(op))
        if isinstance(payload, Sale):
            if rows is None:  # parsed here, one op at a time (another op of the push is bad)
                rows = _sale_rows(_codecs(conn.dialect), till, payload)
            if rows.error is not None:
                return rows.error
            _sale(conn, till, payload, rows, batch)
        elif isinstance(payload, Return):
            _return(till, payload, batch, batch.now)
        elif isinstance(payload, CustomerPatch):
            _flush(conn, batch)  # the patch reads what earlier ops of this batch wrote
            batch.customers.update(identity.apply_customer_patch(conn, till=till, patch=payload))
        elif isinstance(payload, ReceiptEmail):
            _receipt_email(conn, till, payload, batch, batch.now)
        else:
            _event(conn, till, payload, batch)
    except InvalidInput as exc:
        return exc.message
    return None


def _raw_payload(op: OpHeader) -> dict[str, Any]:
    """The payload as sent: only ops of a push whose payloads were not all valid lack a parsed
    one, and those come from a :class:`PushRequest`, which keeps them raw."""
    if not isinstance(op, Op):
        raise TypeError(f"op {op.op_id} has neither a parsed nor a raw payload")
    return op.payload


def _check_origin(till: Till, store_id: str, till_id: str, what: str) -> None:
    if till_id != till.till_id or store_id != till.store_id:
        raise InvalidInput(
            f"{what} says it was made at {store_id}/{till_id}, but it was pushed by "
            f"{till.store_id}/{till.till_id}"
        )


def _sale(conn: Connection, till: Till, sale: Sale, rows: _SaleRows, batch: _Batch) -> None:
    tail = rows.tail
    if sale.customer_id is None and sale.customer_identifier is None:
        profile_id = customer_id = None
    else:
        profile_id, customer_id = identity.customer_for_sale(
            conn, till=till, customer_id=sale.customer_id, identifier=sale.customer_identifier
        )
        if customer_id is None:
            # A till offline during an erasure still names the erased customer: the sale is
            # kept for the books, anonymized exactly as the erasure left the customer's older
            # sales.
            erased = identity.erased_named(
                conn, customer_id=sale.customer_id, identifier=sale.customer_identifier
            )
            if erased:
                tail = (*tail[:-1], identity.anonymized(tail[-1], erased))
                log.info(
                    "till %s: sale %s anonymized: its customer was erased",
                    till.till_id,
                    sale.sale_id,
                )
        else:
            batch.customers.add(customer_id)
    value = _codecs(conn.dialect).orders.value
    batch.orders.append(
        (
            *rows.head,
            value("customer_id", customer_id),
            value("profile_id", profile_id),
            *tail,
            batch.now_value,
        )
    )
    batch.lines.extend(rows.lines)


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
    erased: frozenset[UUID] = frozenset()
    if event.customer_id is not None:
        profile_id, customer_id = identity.customer_for_sale(
            conn, till=till, customer_id=event.customer_id, identifier=None
        )
        if customer_id is not None:
            batch.customers.add(customer_id)
        else:
            erased = identity.erased_named(conn, customer_id=event.customer_id, identifier=None)
    data = json.dumps(
        {
            **event.data,
            "till_id": till.till_id,
            "store_id": till.store_id,
            "sale_id": str(event.sale_id) if event.sale_id else None,
        }
    )
    if erased:
        data = identity.anonymized(data, erased)  # as the erasure left the customer's events
    batch.events.append(
        {
            "event_id": event.event_id,
            "profile_id": profile_id,
            "anonymous_id": None,
            "channel": "store",
            "kind": event.kind,
            "at": event.at,
            "sku": event.sku,
            "data": data,
        }
    )


def _receipt_email(
    conn: Connection, till: Till, email: ReceiptEmail, batch: _Batch, now: datetime
) -> None:
    receipt = email.receipt
    _check_origin(till, receipt.store.store_id, receipt.till_id, f"Receipt email {email.email_id}")
    if email.customer_id is not None and identity.erased_profiles(conn, email.customer_id):
        # Asked for by a customer erased since (the till was offline): the address was given
        # for that customer's receipt, and the erasure deletes such mails. Dropped, not sent;
        # the op is still applied, so the till does not send it again.
        log.info(
            "till %s: receipt email %s dropped: its customer was erased",
            till.till_id,
            email.email_id,
        )
        return
    batch.mails.append(mailer.receipt_row(email, now=now))


def _flush(conn: Connection, batch: _Batch) -> None:
    codecs = _codecs(conn.dialect)
    for codec, encoded in (
        (codecs.orders, batch.orders),
        (codecs.lines, batch.lines),
    ):
        if encoded:
            codec.insert(conn, encoded)
            encoded.clear()
    for table, rows in ((returns, batch.returns), (quarantine, batch.quarantine)):
        if rows:
            bulk_insert(conn, table, rows)
            rows.clear()
    if batch.ops:
        codecs.ops.insert(conn, batch.ops)
        batch.ops.clear()
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
