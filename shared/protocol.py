"""The sync protocol between tills and HQ, as data.

Up (till -> HQ): ``POST /api/v1/sync/push`` with a :class:`PushRequest`. Each op carries a UUID
made at the till (``op_id``) and the till's gap-free, monotonic ``seq`` (1, 2, 3, ...). HQ
applies a batch in one transaction and answers one :class:`OpResult` per op:

- ``applied``: stored now;
- ``duplicate``: this ``op_id`` was stored before (a retry after a lost ack): safe to mark done;
- ``rejected``: the op can never be applied (``error`` says why): the till moves it to its
  dead-letter table for staff to see. Nothing is deleted.

A ``seq`` beyond the next expected one is a gap: the batch stops there and the ops after it get no
verdict (the till resends from the gap). A ``seq`` at or below the last one with an unknown
``op_id`` means the till was restored from an old backup: the op is quarantined at HQ and
answered ``rejected``; HQ raises an alert.

Down (HQ -> till): ``GET /api/v1/sync/pull?cursor=…&limit=…`` returns a :class:`PullPage` of
:class:`Change` rows in commit order and an opaque cursor. The till applies a page and stores the
cursor in one transaction. An expired cursor is answered 409 and the till refetches its
downstream tables (never its outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

from pydantic import AfterValidator, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from shared.customer import ConsentEvent, CustomerIdentifierModel
from shared.errors import IdentifierError, InvalidInput, UnknownOpType
from shared.identifiers import normalize_email
from shared.receipt import Receipt
from shared.sale import Return, Sale
from shared.wire import PlainText, Sku, TillId, UtcDatetime, WireModel

#: Most ops in one push; more is answered 413.
MAX_PUSH_OPS = 500
#: Default and largest page of the change feed.
DEFAULT_PULL_LIMIT = 500
MAX_PULL_LIMIT = 5000

OpType = Literal["sale", "return", "customer_patch", "event", "receipt_email"]
OpStatus = Literal["applied", "duplicate", "rejected"]
EntityName = Literal[
    "store", "product", "price", "customer", "recommendation", "config", "merchandising"
]
ChangeAction = Literal["upsert", "delete"]
TombstoneReason = Literal["deleted", "merged", "erased"]
EventKind = Literal[
    "receipt_printed",
    "receipt_emailed",
    "print_failed",
    "email_failed",
    "suggestion_shown",
    "suggestion_accepted",
    "customer_identified",
    "drawer_opened",
]


class Op(WireModel):
    """One operation from a till's outbox."""

    op_id: UUID
    seq: int = Field(ge=1, lt=2**63)
    type: OpType
    payload: dict[str, Any]
    created_at: UtcDatetime | None = None


class PushRequest(WireModel):
    till_id: TillId
    ops: tuple[Op, ...] = Field(min_length=1)


class OpResult(WireModel):
    op_id: UUID
    status: OpStatus
    error: str | None = None


class PushResponse(WireModel):
    results: tuple[OpResult, ...]
    last_seq: int = Field(ge=0, description="The highest seq HQ has applied for this till.")


class FieldWrite(WireModel):
    """One field of a customer patch, stamped with the writer's hybrid logical clock."""

    value: PlainText | None = Field(max_length=1000)
    hlc: str = Field(min_length=1, max_length=96, description="HLCTimestamp.encode() of the write.")


class CustomerPatch(WireModel):
    """Changed customer fields only (last writer wins per field by HLC, till id breaks ties).

    A provisional customer made offline has no ``customer_id`` yet: ``identifiers`` (one of kind
    ``till_local`` at least) let HQ find or create the customer and merge it.
    """

    customer_id: UUID | None = None
    identifiers: tuple[CustomerIdentifierModel, ...] = ()
    fields: dict[str, FieldWrite] = Field(default_factory=dict)
    consent_events: tuple[ConsentEvent, ...] = ()


class InStoreEvent(WireModel):
    event_id: UUID
    kind: EventKind
    at: UtcDatetime
    customer_id: UUID | None = None
    sale_id: UUID | None = None
    sku: Sku | None = None
    data: dict[str, Any] = Field(default_factory=dict)


def _email_address(value: str) -> str:
    try:
        return normalize_email(value)
    except IdentifierError as exc:  # pydantic reports ValueError, not our errors
        raise ValueError(exc.message) from exc


class ReceiptEmail(WireModel):
    """A customer asked for their receipt by email: HQ sends it (see docs/hardware.md).

    ``email_id`` is made at the till and names the message for good: HQ queues one mail per
    ``email_id`` and sends it with ``Message-ID: <email_id@omnitill>``, so a retried op or a
    retried delivery is never a second mail. ``receipt`` is the same document as the paper
    receipt, suggestions included. ``consent_marketing`` is what the customer answered at the
    till; the till records it as a consent event in a ``customer_patch`` written before this op,
    and HQ decides on marketing content from its consent history when it sends.
    """

    email_id: UUID
    sale_id: UUID
    address: Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_email_address)]
    consent_marketing: bool = False
    receipt: Receipt
    customer_id: UUID | None = None
    at: UtcDatetime


OpPayload = Sale | Return | CustomerPatch | InStoreEvent | ReceiptEmail

_PAYLOADS: dict[str, TypeAdapter[Any]] = {
    "sale": TypeAdapter(Sale),
    "return": TypeAdapter(Return),
    "customer_patch": TypeAdapter(CustomerPatch),
    "event": TypeAdapter(InStoreEvent),
    "receipt_email": TypeAdapter(ReceiptEmail),
}


def parse_op_payload(op_type: str, payload: dict[str, Any]) -> OpPayload:
    """Validate an op's payload for its type; InvalidInput names every field that is wrong."""
    adapter = _PAYLOADS.get(op_type)
    if adapter is None:
        raise UnknownOpType(f"Unknown op type {op_type!r}; known: {', '.join(sorted(_PAYLOADS))}")
    try:
        result: OpPayload = adapter.validate_python(payload)
    except PydanticValidationError as exc:
        raise InvalidInput(f"Invalid {op_type} payload: {describe_validation_error(exc)}") from exc
    return result


class _TypedOp(WireModel):
    op_id: UUID
    seq: int = Field(ge=1, lt=2**63)
    created_at: UtcDatetime | None = None


class _SaleOp(_TypedOp):
    type: Literal["sale"]
    payload: Sale


class _ReturnOp(_TypedOp):
    type: Literal["return"]
    payload: Return


class _PatchOp(_TypedOp):
    type: Literal["customer_patch"]
    payload: CustomerPatch


class _EventOp(_TypedOp):
    type: Literal["event"]
    payload: InStoreEvent


class _ReceiptEmailOp(_TypedOp):
    type: Literal["receipt_email"]
    payload: ReceiptEmail


class _TypedPush(WireModel):
    till_id: TillId
    ops: tuple[
        Annotated[
            _SaleOp | _ReturnOp | _PatchOp | _EventOp | _ReceiptEmailOp,
            Field(discriminator="type"),
        ],
        ...,
    ] = Field(min_length=1)


class OpHeader(Protocol):
    """What ingest reads of an op besides its payload (an :class:`Op` or a parsed typed op)."""

    @property
    def op_id(self) -> UUID: ...

    @property
    def seq(self) -> int: ...

    @property
    def type(self) -> str: ...


class PushEnvelope(Protocol):
    """What ingest reads of a push besides the payloads."""

    @property
    def till_id(self) -> str: ...

    @property
    def ops(self) -> Sequence[OpHeader]: ...


def parse_push(body: bytes | str) -> tuple[PushEnvelope, list[OpPayload] | None]:
    """Read a push body: the envelope, and every payload when all of them are valid.

    The common case (every op valid) is one pass of pydantic's JSON parser straight into the
    payload models; the envelope is then the parsed push itself (no second model is built per
    op: at 100 ops a push that cost more than a tenth of the parse). When any payload is
    invalid, only the envelope is validated here (a bad envelope raises
    ``pydantic.ValidationError``) and the payloads come back as ``None``: the caller validates
    each op on its own (a :class:`PushRequest`'s ops keep their raw payloads), so one bad op is
    rejected alone.
    """
    try:
        typed = _TypedPush.model_validate_json(body)
    except PydanticValidationError:
        return PushRequest.model_validate_json(body), None
    return typed, [op.payload for op in typed.ops]


def describe_validation_error(exc: PydanticValidationError, *, limit: int = 5) -> str:
    """A one-line account of what pydantic found wrong, field by field."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


class Change(WireModel):
    """One row of the change feed.

    ``upsert`` carries the entity's full current ``data``. ``delete`` is a tombstone: ``reason``
    says whether it was deleted, merged (``merged_into`` names the surviving key) or erased (the
    till must remove every personal field it holds for that key).
    """

    entity: EntityName
    key: str = Field(min_length=1)
    action: ChangeAction
    data: dict[str, Any] | None = None
    reason: TombstoneReason | None = None
    merged_into: str | None = None


class PullPage(WireModel):
    changes: tuple[Change, ...]
    cursor: str = Field(description="Opaque; send it back as ?cursor= to get the next page.")
    has_more: bool
