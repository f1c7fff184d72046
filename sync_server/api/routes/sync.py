"""``/api/v1/sync``: tills push their outbox and pull the change feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from shared.errors import BatchTooLarge
from shared.protocol import (
    DEFAULT_PULL_LIMIT,
    MAX_PULL_LIMIT,
    MAX_PUSH_OPS,
    PullPage,
    PushResponse,
)
from sync_server.api.deps import CurrentTill, DbDep, MetricsDep
from sync_server.api.errors import error_responses
from sync_server.services import feed, ingest

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])

#: A push body beyond this is refused before it is parsed (500 ops of about 4 KB each fit).
MAX_PUSH_BYTES = 8 * 1024 * 1024

PUSH_EXAMPLE = {
    "till_id": "S001-T1",
    "ops": [
        {
            "op_id": "6f1c7a56-3c1e-4a8e-9a53-2f3d8e7d1c01",
            "seq": 42,
            "type": "event",
            "payload": {
                "event_id": "0b7e2c1d-8f8a-4a47-9a51-5a3f1f0f5b10",
                "kind": "suggestion_accepted",
                "at": "2026-11-23T09:30:00Z",
                "sku": "SKU-00042",
            },
        }
    ],
}


@router.post(
    "/push",
    response_model=PushResponse,
    summary="Push a batch of outbox ops (at most 500)",
    responses=error_responses(401, 403, 409, 413, 422, 503, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/PushRequest"},
                    "examples": {"event": {"summary": "One in-store event", "value": PUSH_EXAMPLE}},
                }
            },
        }
    },
    description=(
        "Applies the ops in one transaction, exactly once per `op_id`, and answers one verdict "
        "per op: `applied`, `duplicate` (stored before: a retry after a lost ack) or `rejected` "
        "(with `error`; the till dead-letters it). A `seq` gap stops the batch: ops after it "
        "get no verdict (409 when the first op is the gap). A reused `seq` with an unknown "
        "`op_id` (a till restored from backup) is quarantined and rejected. The till may "
        "report its outbox size in `X-Omnitill-Backlog`."
    ),
)
async def push(
    request: Request,
    till: CurrentTill,
    db: DbDep,
    metrics: MetricsDep,
    x_omnitill_backlog: Annotated[int | None, Header(ge=0)] = None,
) -> Response:
    # The body is read here and parsed once, straight into the payload models (parse_push),
    # instead of by FastAPI into dicts and again per op: ingest is the hot path.
    body = await request.body()
    if len(body) > MAX_PUSH_BYTES:
        raise BatchTooLarge(
            f"Push body of {len(body):,} bytes; send at most {MAX_PUSH_OPS} ops "
            f"and {MAX_PUSH_BYTES:,} bytes per push"
        )

    push = ingest.RawPush(till, body, x_omnitill_backlog)
    committer = getattr(request.app.state, "ingest_committer", None)
    try:
        if committer is not None and committer.running:
            # SQLite: one writer thread applies pushes in groups (sync_server/group_commit.py).
            outcome = await committer.submit(push)
        else:
            # PostgreSQL: pushes run side by side, each in its own transaction.
            outcome = await run_in_threadpool(ingest.apply_raw_push, db, push)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    for verdict, count in outcome.verdicts.items():
        metrics.push_ops.labels(verdict).inc(count)
    return Response(outcome.body, media_type="application/json")


PULL_EXAMPLE = {
    "changes": [
        {
            "entity": "product",
            "key": "SKU-00042",
            "action": "upsert",
            "data": {"sku": "SKU-00042", "name": "Organic T-Shirt", "price_minor": 1999},
            "reason": None,
            "merged_into": None,
        },
        {
            "entity": "customer",
            "key": "0b7e2c1d-8f8a-4a47-9a51-5a3f1f0f5b10",
            "action": "delete",
            "data": None,
            "reason": "merged",
            "merged_into": "5f2a8c3e-1d4b-4e6f-9a7b-2c3d4e5f6a7b",
        },
    ],
    "cursor": "v1.0.1234",
    "has_more": True,
}


@router.get(
    "/pull",
    response_model=PullPage,
    summary="Read the next page of the change feed",
    responses={
        200: {"content": {"application/json": {"example": PULL_EXAMPLE}}},
        **error_responses(401, 409, 422, 503),
    },
    description=(
        "Changes of HQ-owned data for the till's store, in commit order: catalogue, prices, "
        "store config, customer cards, recommendation lists and tombstones (`action: delete` "
        "with `reason` deleted, merged (`merged_into`) or erased). Start without a cursor; "
        "apply the page and store its `cursor` in the same local transaction; repeat while "
        "`has_more`. 409 means the cursor is older than the tombstone retention: refetch all "
        "downstream tables from the start. Responses are gzip-compressed when the client "
        "accepts it."
    ),
)
async def pull(
    till: CurrentTill,
    db: DbDep,
    metrics: MetricsDep,
    cursor: Annotated[str | None, Query(max_length=64, description="From the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PULL_LIMIT)] = DEFAULT_PULL_LIMIT,
) -> Response:
    page = await run_in_threadpool(
        feed.read_page, db, store_id=till.store_id, cursor=cursor, limit=limit
    )
    metrics.pull_pages.inc()
    metrics.pull_changes.inc(page.count)
    return Response(content=page.body, media_type="application/json")
