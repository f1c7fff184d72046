"""The one place where errors become HTTP responses.

Every error body is ``{"detail": "<what is wrong, for a person>", "error": "<ErrorClass>"}``.
Request validation errors (422) list each bad field. Nothing a client sends can produce a 500:
unexpected exceptions are logged with a traceback and answered 500 with no internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import (
    AuthError,
    BatchTooLarge,
    Conflict,
    DiskFull,
    InvalidInput,
    NotFound,
    OmnitillError,
    PermissionDenied,
    StorageError,
    TransportError,
)

log = logging.getLogger(__name__)

#: Most specific class first.
STATUS: list[tuple[type[OmnitillError], int]] = [
    (BatchTooLarge, 413),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (PermissionDenied, 403),
    (AuthError, 401),
    (DiskFull, 507),
    (StorageError, 503),
    (TransportError, 503),
]


class ErrorBody(BaseModel):
    detail: str
    error: str


def status_for(exc: OmnitillError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses=`` entries for the given statuses."""
    text = {
        400: "Malformed request",
        401: "Missing, unknown or revoked token",
        403: "Token not allowed for this",
        404: "Not found",
        409: "Conflicts with stored state",
        413: "Batch too large",
        422: "Invalid request: the detail names each bad field",
        503: "Database unavailable; retry",
        507: "HQ disk full; nothing was written; retry later",
    }
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in statuses}


def install(app: FastAPI) -> None:
    @app.exception_handler(OmnitillError)
    async def omnitill_error(request: Request, exc: OmnitillError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            {"detail": exc.message, "error": type(exc).__name__},
            status_code=status,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg')}")
        detail = "; ".join(problems) or "Invalid request"
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            detail = f"Malformed JSON: {detail}"
        return JSONResponse(
            {"detail": detail, "error": "InvalidRequest", "errors": jsonable(exc.errors())},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail), "error": "HTTPError"},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "Internal error; it has been logged", "error": "InternalError"},
            status_code=500,
        )


def jsonable(errors: object) -> object:
    """Pydantic error lists can hold exceptions in ``ctx``; keep them JSON-safe."""
    if isinstance(errors, list):
        return [jsonable(e) for e in errors]
    if isinstance(errors, dict):
        return {k: jsonable(v) for k, v in errors.items() if k != "url"}
    if isinstance(errors, str | int | float | bool) or errors is None:
        return errors
    if isinstance(errors, tuple):
        return [jsonable(e) for e in errors]
    return str(errors)
