"""The FastAPI app factory.

``create_app`` builds an app over a database: it migrates the schema on start-up and runs the
background loops (customer-card refresh, recommendation updates, tombstone purge, and the mail
worker when ``mail_enabled``) for as long as it lives. Every loop works through the database,
so any number of server processes can run them side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnitill import __version__
from shared.protocol import PushRequest
from sync_server.api import errors
from sync_server.api.routes import (
    admin,
    customers,
    health,
    receipts,
    recommendations,
    segment,
    sync,
)
from sync_server.config import Settings, load_settings
from sync_server.db.engine import Database
from sync_server.group_commit import GroupCommitter
from sync_server.metrics import Metrics
from sync_server.services import cards, feed, ingest, mailer, recs

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0
SWITCH_INTERVAL_S = 0.0005
#: How often a background job that yields to ingest looks again.
YIELD_POLL_S = 0.25


class MetricsMiddleware:
    """Counts requests by route template and status; plain ASGI to stay off the hot path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)


async def _every(
    stop: asyncio.Event,
    interval: float,
    name: str,
    job: Any,
    database: Database,
    *args: Any,
    max_share: float = 1.0,
    yield_to: Callable[[], bool] | None = None,
    max_defer_s: float = 0.0,
    **kwargs: Any,
) -> None:
    """Run ``job(database, ...)`` in a worker thread every ``interval`` seconds until ``stop``.

    Every server process runs these loops, but a job runs in one process at a time
    (``Database.turn``); a process that finds the job running elsewhere waits its interval.
    While the job reports more work waiting (a truthy result) it runs again at once, but never
    more than ``max_share`` of the time: after a run of ``t`` seconds it rests
    ``t * (1 / max_share - 1)``. While ``yield_to()`` is true (ingest has pushes queued) the job
    waits, but never more than ``max_defer_s`` since it last ran. Stopping waits for a job in
    flight: cancelling the task would not stop its thread, which would go on using a database
    the shutdown is about to dispose.
    """
    rest_factor = 1.0 / max_share - 1.0
    last_ran = time.monotonic()
    while not stop.is_set():
        try:
            while not stop.is_set():
                while (
                    yield_to is not None
                    and yield_to()
                    and time.monotonic() - last_ran < max_defer_s
                    and not stop.is_set()
                ):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), YIELD_POLL_S)
                started = time.perf_counter()
                more = await run_in_threadpool(_in_turn, name, job, database, *args, **kwargs)
                last_ran = time.monotonic()
                if not more:
                    break
                rest = (time.perf_counter() - started) * rest_factor
                if rest > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), rest)
        except Exception:
            log.exception("background job %s failed; retrying in %.1f s", name, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _in_turn(name: str, job: Any, database: Database, *args: Any, **kwargs: Any) -> Any:
    with database.turn(name) as mine:
        return job(database, *args, **kwargs) if mine else 0


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    settings = settings or load_settings()
    database = db or Database(settings.database_url, pool_size=settings.db_pool_size)
    metrics = Metrics(database)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(database.migrate)
        # Threads here hand the interpreter lock back and forth all the time (the event loop,
        # the ingest writer, lookups, the background loops); a thread coming back from SQLite
        # or a socket waits up to a whole switch interval for it. 0.5 ms instead of 5 ms cut
        # the lookup p99 by about a quarter under load, p50 unchanged (docs/benchmarks.md).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        committer = None
        if database.is_sqlite:
            committer = GroupCommitter(
                partial(ingest.apply_pushes, database), name="ingest group commit"
            )
            committer.start()
        # On SQLite, recommendation counting shares ingest's one write lock: it waits while
        # pushes are queued (bounded by recs_max_defer_s). PostgreSQL writers run side by side.
        ingest_saturated = committer.saturated if committer is not None else None
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                _every(
                    stop,
                    settings.card_worker_interval_s,
                    "card refresh",
                    cards.refresh_dirty_cards,
                    database,
                )
            ),
            asyncio.create_task(
                _every(
                    stop,
                    settings.recs_worker_interval_s,
                    "recommendations",
                    recs.update_incremental,
                    database,
                    config=recs.default_config(),
                    busy=committer.active if committer is not None else None,
                    max_share=settings.recs_worker_max_share,
                    yield_to=ingest_saturated,
                    max_defer_s=settings.recs_max_defer_s,
                )
            ),
            asyncio.create_task(
                _every(
                    stop,
                    settings.recs_lists_interval_s,
                    "recommendation lists",
                    recs.refresh_dirty_lists,
                    database,
                    config=recs.default_config(),
                    max_share=settings.recs_worker_max_share,
                    yield_to=ingest_saturated,
                    max_defer_s=settings.recs_max_defer_s,
                )
            ),
            asyncio.create_task(
                _every(
                    stop,
                    PURGE_INTERVAL_S,
                    "tombstone purge",
                    _purge,
                    database,
                    settings.tombstone_retention_days,
                )
            ),
        ]
        if settings.mail_enabled:
            tasks.append(
                asyncio.create_task(
                    _every(
                        stop,
                        settings.mail_worker_interval_s,
                        "mail",
                        mailer.send_due,
                        database,
                        settings,
                    )
                )
            )
        else:
            log.info("mail disabled: receipts by email wait in the queue (OMNITILL_MAIL_ENABLED)")
        app.state.ingest_committer = committer
        log.info("HQ server ready on %s database", database.dialect)
        try:
            yield
        finally:
            if committer is not None:
                # Pushes already queued are applied and answered before the database closes.
                await run_in_threadpool(committer.stop)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            sys.setswitchinterval(switch_interval)
            if db is None:
                database.dispose()

    app = FastAPI(
        title="Omnitill HQ",
        version=__version__,
        summary="Exactly-once ingest from tills, the change feed, the single customer view.",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "sync", "description": "Till push and pull (till token)"},
            {"name": "customers", "description": "Customer lookup (till) and view (admin)"},
            {"name": "admin", "description": "HQ administration (admin token)"},
            {"name": "operations", "description": "Health and metrics"},
            {"name": "receipts", "description": "Digital receipts and unsubscribing (customers)"},
            {
                "name": "recommendations",
                "description": "Also-bought, personal, bestseller and trending lists "
                "(till or admin token)",
            },
            {
                "name": "web events",
                "description": "Segment-compatible tracking API for the web shop (write key)",
            },
        ],
    )
    app.state.settings = settings
    app.state.db = database
    app.state.metrics = metrics
    app.state.ingest_committer = None  # started by the lifespan on SQLite
    errors.install(app)
    for router in (
        sync.router,
        customers.router,
        admin.router,
        health.router,
        receipts.router,
        recommendations.router,
        segment.router,
    ):
        app.include_router(router)
    # Level 5: level 9 (the default) took most of the server time of a 5,000-row pull page
    # for a few percent smaller bodies.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    _document_raw_bodies(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _document_raw_bodies(app: FastAPI) -> None:
    """Put the models of bodies that routes parse themselves (the push) into the OpenAPI schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        model = PushRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in model.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["PushRequest"] = model
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _purge(db: Database, retention_days: int) -> bool:
    purged = feed.purge_tombstones(db, retention_days=retention_days)
    if purged:
        log.info("purged %d tombstones older than %d days", purged, retention_days)
    return False
