"""Request dependencies as ``Annotated`` aliases: the database, the settings, who is calling."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import AuthError, PermissionDenied
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.metrics import Metrics
from sync_server.services.tills import Till, authenticate_till

bearer = HTTPBearer(auto_error=False, description="A till token or the admin token")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise AuthError("Missing bearer token: send 'Authorization: Bearer <token>'")
    return credentials.credentials


def current_till(db: DbDep, credentials: Credentials) -> Till:
    return authenticate_till(db, _token(credentials))


def require_admin(settings: SettingsDep, credentials: Credentials) -> None:
    token = _token(credentials)
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if expected is None:
        raise PermissionDenied(
            "Admin routes are disabled: set OMNITILL_ADMIN_TOKEN on the server to enable them"
        )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        if token.startswith("otl_"):
            raise PermissionDenied("A till token cannot use admin routes")
        raise AuthError("Wrong admin token")


CurrentTill = Annotated[Till, Depends(current_till)]
AdminDep = Annotated[None, Depends(require_admin)]


def till_or_admin(db: DbDep, settings: SettingsDep, credentials: Credentials) -> Till | None:
    """The till calling, or None for HQ staff with the admin token."""
    token = _token(credentials)
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    return authenticate_till(db, token)


CallerDep = Annotated[Till | None, Depends(till_or_admin)]
