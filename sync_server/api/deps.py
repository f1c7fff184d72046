"""Request dependencies as ``Annotated`` aliases: the database, the settings, who is calling."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection

from shared.errors import AuthError, PermissionDenied
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import tills
from sync_server.metrics import Metrics
from sync_server.services.tills import Till, authenticate_till, hash_token

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


class KnownTills:
    """Digests of till tokens that authenticated on this server, with their till.

    An entry never stands in for the check: it only tells :func:`till_token` that the token
    was good, so a route that checks it again inside its own database read (see
    :meth:`TillToken.confirm`) skips a separate read and thread hop. A token that fails that
    check is forgotten; the oldest entries go first beyond ``limit``.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._tills: dict[str, Till] = {}

    def get(self, digest: str) -> Till | None:
        return self._tills.get(digest)

    def remember(self, digest: str, till: Till) -> None:
        while len(self._tills) >= self.limit:
            self._tills.pop(next(iter(self._tills)), None)
        self._tills[digest] = till

    def forget(self, digest: str) -> None:
        self._tills.pop(digest, None)  # called from worker threads: a single atomic pop


_STILL_VALID = sa.select(tills.c.till_id, tills.c.store_id).where(
    tills.c.token_hash == sa.bindparam("digest", type_=sa.String()), tills.c.revoked_at.is_(None)
)


@dataclass(frozen=True, slots=True)
class TillToken:
    """A till token known to be good a moment ago: :meth:`confirm` it in the route's read."""

    token: str
    digest: str
    db: Database
    known: KnownTills

    def confirm(self, conn: Connection) -> Till:
        """The till, if the token is still enrolled and not revoked; AuthError (401) if not.

        Checked in the caller's own read, so revoking a till (or issuing it a new token)
        takes effect at once, on every server process.
        """
        row = conn.execute(_STILL_VALID, {"digest": self.digest}).first()
        if row is not None:
            return Till(till_id=row.till_id, store_id=row.store_id)
        self.known.forget(self.digest)
        return authenticate_till(self.db, self.token)  # raises, saying why


def _known_tills(request: Request) -> KnownTills:
    state = request.app.state
    known: KnownTills | None = getattr(state, "known_tills", None)
    if known is None:
        known = state.known_tills = KnownTills()
    return known


async def till_token(request: Request, db: DbDep, credentials: Credentials) -> TillToken:
    """A till's token, authenticated in full (401) unless it already was on this server.

    For routes that call :meth:`TillToken.confirm` in their database read: a lookup then
    costs one trip to a worker thread instead of two. An unknown token is refused here,
    before the request's parameters are validated, as :func:`current_till` does.
    """
    token = _token(credentials)
    digest = hash_token(token)
    known = _known_tills(request)
    if known.get(digest) is None:
        known.remember(digest, await run_in_threadpool(authenticate_till, db, token))
    return TillToken(token=token, digest=digest, db=db, known=known)


TillTokenDep = Annotated[TillToken, Depends(till_token)]


def till_or_admin(db: DbDep, settings: SettingsDep, credentials: Credentials) -> Till | None:
    """The till calling, or None for HQ staff with the admin token."""
    token = _token(credentials)
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    return authenticate_till(db, token)


CallerDep = Annotated[Till | None, Depends(till_or_admin)]
