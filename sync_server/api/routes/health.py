"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sync_server.api.deps import DbDep, MetricsDep
from sync_server.api.errors import error_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness and database reachability",
    responses=error_responses(503),
)
def healthz(db: DbDep) -> dict[str, str]:
    with db.read() as conn:
        conn.execute(sa.text("SELECT 1"))
    return {"status": "ok", "database": db.dialect}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
