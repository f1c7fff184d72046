"""Till enrolment and authentication.

A till token is 32 random bytes (URL-safe base64) shown once at enrolment. HQ stores only its
SHA-256: the token has 256 bits of entropy, so a slow password hash would add nothing but
latency to every sync request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from shared.errors import AuthError, Conflict, InvalidInput, NotFound
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import stores, tills

TOKEN_PREFIX = "otl_"


@dataclass(frozen=True, slots=True)
class Till:
    till_id: str
    store_id: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def enroll_till(db: Database, *, store_id: str, till_id: str, rotate: bool = False) -> str:
    """Register a till (or give an enrolled one a new token with ``rotate``); return its token."""
    if not store_id.strip() or not till_id.strip():
        raise InvalidInput("Store and till must not be empty")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utc_now()
    with db.write() as conn:
        row = conn.execute(sa.select(tills).where(tills.c.till_id == till_id)).first()
        if row is not None:
            if row.store_id != store_id:
                raise Conflict(
                    f"Till {till_id} is already enrolled in store {row.store_id}, not {store_id}"
                )
            if not rotate and row.revoked_at is None:
                raise Conflict(
                    f"Till {till_id} is already enrolled; use --rotate to issue a new token"
                )
            conn.execute(
                tills.update()
                .where(tills.c.till_id == till_id)
                .values(token_hash=hash_token(token), revoked_at=None, enrolled_at=now)
            )
        else:
            conn.execute(
                tills.insert().values(
                    till_id=till_id,
                    store_id=store_id,
                    token_hash=hash_token(token),
                    enrolled_at=now,
                )
            )
        known_store = conn.execute(
            sa.select(stores.c.store_id).where(stores.c.store_id == store_id)
        ).first()
        if known_store is None:
            conn.execute(
                stores.insert().values(
                    store_id=store_id,
                    data=json.dumps({"store_id": store_id, "name": store_id}),
                    updated_at=now,
                )
            )
    return token


def revoke_till(db: Database, till_id: str) -> None:
    with db.write() as conn:
        result = conn.execute(
            tills.update()
            .where(tills.c.till_id == till_id, tills.c.revoked_at.is_(None))
            .values(revoked_at=utc_now())
        )
        if result.rowcount == 0:
            exists = conn.execute(sa.select(tills.c.till_id).where(tills.c.till_id == till_id))
            if exists.first() is None:
                raise NotFound(f"No till {till_id} is enrolled")


def authenticate_till(db: Database, token: str) -> Till:
    """The till a bearer token belongs to; AuthError when unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("Not a till token")
    digest = hash_token(token)
    with db.read() as conn:
        row = conn.execute(
            sa.select(
                tills.c.till_id, tills.c.store_id, tills.c.revoked_at, tills.c.token_hash
            ).where(tills.c.token_hash == digest)
        ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise AuthError("Unknown till token: enrol the till with `omnitill admin enroll-till`")
    if row.revoked_at is not None:
        raise AuthError(f"The token of till {row.till_id} was revoked; enrol it again")
    return Till(till_id=row.till_id, store_id=row.store_id)


def list_tills(db: Database) -> list[dict[str, object]]:
    with db.read() as conn:
        rows = conn.execute(sa.select(tills).order_by(tills.c.till_id)).mappings().all()
    return [{k: v for k, v in row.items() if k != "token_hash"} for row in rows]
