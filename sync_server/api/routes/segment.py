"""The Segment-compatible HTTP tracking API: web-shop events in.

Paths, bodies and authentication follow Segment's HTTP Tracking API, so a web shop already
instrumented with a Segment library only needs a new host (``https://hq.example.com/api/v1/
segment``) and a write key. What is stored and how identities are linked:
``sync_server.services.web_events`` and ``docs/web-events.md``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shared.errors import AuthError, BatchTooLarge, InvalidInput, PermissionDenied
from sync_server.api.deps import DbDep, SettingsDep
from sync_server.api.errors import ErrorBody, error_responses
from sync_server.services import web_events
from sync_server.services.web_events import (
    AliasCall,
    GroupCall,
    IdentifyCall,
    Outcome,
    PageCall,
    ScreenCall,
    SegmentBatch,
    SegmentCall,
    TrackCall,
)

router = APIRouter(prefix="/api/v1/segment/v1", tags=["web events"])


async def write_key(request: Request, settings: SettingsDep) -> None:
    """Segment's authentication: the write key as the user name of HTTP Basic (no password),
    as a bearer token, or as ``writeKey`` in the body."""
    keys = [k.get_secret_value() for k in settings.segment_write_keys]
    if not keys:
        raise PermissionDenied(
            "The web events API is off: set OMNITILL_SEGMENT_WRITE_KEYS on the server"
        )
    given: str | None = None
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError("Malformed Basic authorization: send base64 of 'WRITE_KEY:'") from None
    elif scheme.lower() == "bearer":
        given = value.strip()
    elif header:
        raise AuthError("Unknown authorization scheme: use Basic (write key as user) or Bearer")
    else:
        body = await request.body()
        if b'"writeKey"' in body:
            try:
                found = (await request.json()).get("writeKey")
            except (ValueError, AttributeError):
                found = None
            given = found if isinstance(found, str) else None
    if not given:
        raise AuthError(
            "Missing write key: send it as the user name of HTTP Basic authorization "
            "(Segment's libraries do), as a bearer token, or as writeKey in the body"
        )
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        raise AuthError("Unknown write key")


async def _single_size(request: Request) -> None:
    size = len(await request.body())
    if size > web_events.MAX_EVENT_BYTES:
        raise BatchTooLarge(
            f"The call is {size:,} bytes; at most {web_events.MAX_EVENT_BYTES:,} per call"
        )


async def _batch_size(request: Request) -> None:
    size = len(await request.body())
    if size > web_events.MAX_BATCH_BYTES:
        raise BatchTooLarge(
            f"The batch is {size:,} bytes; at most {web_events.MAX_BATCH_BYTES:,} per batch: "
            "send several"
        )


WriteKeyDep = Annotated[None, Depends(write_key)]
SingleSize = Annotated[None, Depends(_single_size)]
BatchSize = Annotated[None, Depends(_batch_size)]


class EventProblem(BaseModel):
    index: int = Field(description="Position of the call in the batch (0 for a single call).")
    message_id: str | None = Field(alias="messageId", default=None)
    detail: str

    model_config = {"populate_by_name": True}


class SegmentResult(BaseModel):
    """What became of the calls: stored now, stored before (same ``messageId``), refused."""

    success: bool = Field(description="True when no call was refused (Segment's own answer).")
    accepted: int
    duplicates: int
    rejected: list[EventProblem] = Field(default_factory=list)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "success": False,
                    "accepted": 41,
                    "duplicates": 1,
                    "rejected": [
                        {
                            "index": 7,
                            "messageId": "a3f1c2d4-0b7e-4a47-9a51-5a3f1f0f5b10",
                            "detail": "traits.email: 'maria@' is not an email address",
                        }
                    ],
                }
            ]
        }
    }


def _result(calls: list[Any], outcomes: list[Outcome]) -> SegmentResult:
    problems = [
        EventProblem(
            index=i,
            messageId=_message_id(call),
            detail=outcome.detail or "refused",
        )
        for i, (call, outcome) in enumerate(zip(calls, outcomes, strict=True))
        if outcome.status == "rejected"
    ]
    return SegmentResult(
        success=not problems,
        accepted=sum(o.status == "accepted" for o in outcomes),
        duplicates=sum(o.status == "duplicate" for o in outcomes),
        rejected=problems,
    )


def _message_id(call: Any) -> str | None:
    if isinstance(call, SegmentCall):
        return call.message_id
    if isinstance(call, dict) and isinstance(call.get("messageId"), str):
        return str(call["messageId"])[:200]
    return None


async def _one(call: SegmentCall, db: Any, threshold: int) -> SegmentResult:
    [outcome] = await run_in_threadpool(web_events.ingest, db, [call], threshold=threshold)
    if outcome.status == "rejected":
        raise InvalidInput(outcome.detail or "refused")
    return _result([call], [outcome])


SINGLE_RESPONSES = error_responses(401, 403, 413, 422, 503)


@router.post(
    "/track",
    summary="Record something a visitor did (Product Viewed, Product Added, Order Completed...)",
    description=(
        "A Segment `track` call. `properties.sku` (or `product_id`) names the product; an "
        "`Order Completed` with `order_id` and `products` is also stored as an online order. "
        "The same `messageId` again answers 200 with `duplicates: 1` and stores nothing."
    ),
    response_model=SegmentResult,
    responses=SINGLE_RESPONSES,
)
async def track(
    call: TrackCall, _: WriteKeyDep, __: SingleSize, db: DbDep, settings: SettingsDep
) -> SegmentResult:
    return await _one(call, db, settings.merge_protection_threshold)


@router.post(
    "/identify",
    summary="Say who a visitor is (userId, traits.email, traits.phone)",
    description=(
        "A Segment `identify` call: links the `anonymousId` to the account `userId` and its "
        "`traits` email and phone, joining the visitor to the customer HQ knows by them (and "
        "their earlier anonymous events with them)."
    ),
    response_model=SegmentResult,
    responses=SINGLE_RESPONSES,
)
async def identify(
    call: IdentifyCall, _: WriteKeyDep, __: SingleSize, db: DbDep, settings: SettingsDep
) -> SegmentResult:
    return await _one(call, db, settings.merge_protection_threshold)


@router.post(
    "/page",
    summary="Record a page view",
    description="A Segment `page` call, kept on the customer's timeline.",
    response_model=SegmentResult,
    responses=SINGLE_RESPONSES,
)
async def page(
    call: PageCall, _: WriteKeyDep, __: SingleSize, db: DbDep, settings: SettingsDep
) -> SegmentResult:
    return await _one(call, db, settings.merge_protection_threshold)


@router.post(
    "/screen",
    summary="Record an app screen view",
    description="A Segment `screen` call, kept on the customer's timeline.",
    response_model=SegmentResult,
    responses=SINGLE_RESPONSES,
)
async def screen(
    call: ScreenCall, _: WriteKeyDep, __: SingleSize, db: DbDep, settings: SettingsDep
) -> SegmentResult:
    return await _one(call, db, settings.merge_protection_threshold)


@router.post(
    "/group",
    summary="Record the group (company account) a visitor belongs to",
    description="A Segment `group` call, kept on the customer's timeline.",
    response_model=SegmentResult,
    responses=SINGLE_RESPONSES,
)
async def group(
    call: GroupCall, _: WriteKeyDep, __: SingleSize, db: DbDep, settings: SettingsDep
) -> SegmentResult:
    return await _one(call, db, settings.merge_protection_threshold)


@router.post(
    "/alias",
    summary="Link a previous id to a user id",
    description=(
        "A Segment `alias` call: `previousId` (an anonymous id, or an older account id HQ "
        "knows) is the same person as `userId`."
    ),
    response_model=SegmentResult,
    responses=SINGLE_RESPONSES,
)
async def alias(
    call: AliasCall, _: WriteKeyDep, __: SingleSize, db: DbDep, settings: SettingsDep
) -> SegmentResult:
    return await _one(call, db, settings.merge_protection_threshold)


@router.post(
    "/batch",
    response_model=SegmentResult,
    summary="Record many calls at once (what Segment's libraries send)",
    responses={
        **error_responses(401, 403, 413, 503),
        422: {
            "model": ErrorBody,
            "description": "Every call of the batch was refused, or the body is not a batch; "
            "`detail` names the first problem and `rejected` lists every refused call",
        },
    },
    description=(
        "Each call is checked on its own: the good ones are stored (in one transaction) and "
        "the answer lists every refused call with its position and reason (`success` false). "
        "Only when no call could be stored is the answer 422. A call stored before (same "
        "`messageId`) counts as a duplicate. At most 500 KB per batch and 32 KB per call."
    ),
)
async def batch(
    body: SegmentBatch, _: WriteKeyDep, __: BatchSize, db: DbDep, settings: SettingsDep
) -> Any:
    def work() -> tuple[list[Any], list[Outcome]]:
        calls: list[Any] = []
        parsed: list[tuple[int, SegmentCall]] = []
        outcomes: list[Outcome | None] = []
        for i, raw in enumerate(body.batch):
            item = dict(raw) if isinstance(raw, dict) else raw
            for shared_field in ("context", "integrations"):
                if not isinstance(item, dict):
                    break
                common = getattr(body, shared_field)
                if common and isinstance(item.get(shared_field, {}), dict):
                    item[shared_field] = {**common, **item.get(shared_field, {})}
            try:
                call = web_events.parse_call(item)
            except InvalidInput as exc:
                calls.append(raw)
                outcomes.append(Outcome("rejected", exc.message))
                continue
            calls.append(call)
            outcomes.append(None)
            parsed.append((i, call))
        stored = web_events.ingest(
            db, [c for _, c in parsed], threshold=settings.merge_protection_threshold
        )
        for (i, _), outcome in zip(parsed, stored, strict=True):
            outcomes[i] = outcome
        return calls, [o if o is not None else Outcome("rejected", "refused") for o in outcomes]

    calls, outcomes = await run_in_threadpool(work)
    result = _result(calls, outcomes)
    if result.rejected and not result.accepted and not result.duplicates:
        first = result.rejected[0]
        more = len(result.rejected) - 1
        detail = f"call {first.index}: {first.detail}" + (
            f" (and {more} more refused call{'s' if more > 1 else ''})" if more else ""
        )
        return JSONResponse(
            {
                "detail": detail,
                "error": "InvalidInput",
                **result.model_dump(mode="json", by_alias=True),
            },
            status_code=422,
        )
    return result
