"""The change feed: HQ-owned data flowing down to tills, in commit order.

Each row of ``changes`` is the *current* state of one (entity, key, scope): a newer change for
the same key replaces the row and gets a new position, so a new till's first pull is a snapshot,
not a replay of history. ``scope`` is a store id or ``*`` for every store.

Cursors must never skip a row that commits late:

- SQLite has one writer at a time, and a row's id is taken inside the writing transaction, so
  ids become visible in order: ``id > cursor`` is safe.
- PostgreSQL has concurrent writers: a transaction may take id 10, another id 11 and commit
  first; a naive ``id > cursor`` puller that saw 11 would never see 10. Each row records the
  writing transaction's id (``pg_current_xact_id()``), and a pull returns only rows written by
  transactions older than every transaction still running (``txid < pg_snapshot_xmin(...)``),
  in ``(txid, id)`` order. Rows of transactions still in flight wait for the next pull; no
  transaction can ever write a txid below the current xmin, so nothing is skipped.

Tombstones (``action = 'delete'``) stay ``tombstone_retention_days``; then they are purged and
the feed's horizon moves past them. A till whose cursor is below the horizon might have missed a
delete, so it gets 409 and refetches its downstream tables.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shared.errors import CursorExpired, InvalidInput
from shared.protocol import MAX_PULL_LIMIT
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import changes, feed_state

ALL_STORES = "*"
_CURSOR = re.compile(r"^v1\.(\d{1,20})\.(\d{1,20})$")
_PG_TXID = sa.text("pg_current_xact_id()::text::bigint")


@dataclass(frozen=True, order=True, slots=True)
class Cursor:
    txid: int
    id: int

    def encode(self) -> str:
        return f"v1.{self.txid}.{self.id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return START
        match = _CURSOR.match(text)
        if match is None:
            raise InvalidInput(
                f"Malformed cursor {text[:40]!r}: send back exactly the cursor of the last page"
            )
        return cls(int(match.group(1)), int(match.group(2)))


START = Cursor(0, 0)


def record_change(
    conn: Connection,
    *,
    entity: str,
    key: str,
    scope: str = ALL_STORES,
    data: str | dict[str, Any] | None = None,
    action: str = "upsert",
    reason: str | None = None,
    merged_into: str | None = None,
) -> None:
    """Put the current state of one key on the feed (replacing its older row)."""
    record_changes(
        conn,
        [
            {
                "entity": entity,
                "key": key,
                "scope": scope,
                "action": action,
                "data": data if data is None or isinstance(data, str) else json.dumps(data),
                "reason": reason,
                "merged_into": merged_into,
            }
        ],
    )


def record_changes(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Bulk form of :func:`record_change`; each row has entity, key, scope, action, data,
    reason and merged_into (data as JSON text)."""
    if not rows:
        return
    now = utc_now()
    for row in rows:
        row.setdefault("scope", ALL_STORES)
        row.setdefault("action", "upsert")
        row.setdefault("reason", None)
        row.setdefault("merged_into", None)
        row.setdefault("data", None)
        row["created_at"] = now
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(changes).values(txid=_PG_TXID)
        stmt = pg.on_conflict_do_update(
            index_elements=["entity", "key", "scope"],
            set_={
                "id": sa.text("nextval(pg_get_serial_sequence('changes', 'id'))"),
                "txid": _PG_TXID,
                "action": pg.excluded.action,
                "data": pg.excluded.data,
                "reason": pg.excluded.reason,
                "merged_into": pg.excluded.merged_into,
                "created_at": pg.excluded.created_at,
            },
        )
        conn.execute(stmt, rows)
    else:
        # INSERT OR REPLACE deletes the old row and inserts a new one with a new, higher id.
        conn.execute(sqlite.insert(changes).prefix_with("OR REPLACE"), rows)


def drop_key(conn: Connection, *, entity: str, key: str) -> None:
    """Remove every scope's row of a key (before an erasure tombstone replaces them)."""
    conn.execute(changes.delete().where(changes.c.entity == entity, changes.c.key == key))


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    count: int
    cursor: Cursor
    has_more: bool


def read_page(db: Database, *, store_id: str, cursor: str | None, limit: int) -> Page:
    """One page of the feed for a store's till, as ready-to-send JSON bytes."""
    if not 1 <= limit <= MAX_PULL_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_PULL_LIMIT}, not {limit}")
    after = Cursor.decode(cursor)
    with db.read() as conn:
        horizon = _horizon(conn)
        if after != START and after < horizon:
            raise CursorExpired(
                f"Cursor {after.encode()} is older than the feed keeps deletes "
                "(tombstone retention): refetch from the start"
            )
        cols = [
            changes.c.txid,
            changes.c.id,
            changes.c.entity,
            changes.c.key,
            changes.c.action,
            changes.c.data,
            changes.c.reason,
            changes.c.merged_into,
        ]
        query = sa.select(*cols).where(changes.c.scope.in_([ALL_STORES, store_id]))
        if conn.dialect.name == "postgresql":
            xmin = sa.text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            query = query.where(
                sa.tuple_(changes.c.txid, changes.c.id) > sa.tuple_(after.txid, after.id),
                changes.c.txid < xmin,
            ).order_by(changes.c.txid, changes.c.id)
        else:
            query = query.where(changes.c.id > after.id).order_by(changes.c.id)
        rows = conn.execute(query.limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = Cursor(rows[-1].txid, rows[-1].id) if rows else after
    parts = []
    for r in rows:
        data = r.data if r.data is not None else "null"
        parts.append(
            f'{{"entity":{json.dumps(r.entity)},"key":{json.dumps(r.key)},'
            f'"action":"{r.action}","data":{data},"reason":{json.dumps(r.reason)},'
            f'"merged_into":{json.dumps(r.merged_into)}}}'
        )
    body = (
        '{"changes":['
        + ",".join(parts)
        + '],"cursor":"'
        + last.encode()
        + '","has_more":'
        + ("true" if has_more else "false")
        + "}"
    ).encode()
    return Page(body=body, count=len(rows), cursor=last, has_more=has_more)


def _horizon(conn: Connection) -> Cursor:
    rows = dict(conn.execute(sa.select(feed_state.c.name, feed_state.c.value)).all())
    return Cursor(rows.get("horizon_txid", 0), rows.get("horizon_id", 0))


def purge_tombstones(db: Database, *, retention_days: int) -> int:
    """Delete tombstones older than the retention and move the horizon past them."""
    cutoff = utc_now() - timedelta(days=retention_days)
    with db.write() as conn:
        old = changes.c.action == "delete", changes.c.created_at < cutoff
        newest = conn.execute(
            sa.select(changes.c.txid, changes.c.id)
            .where(*old)
            .order_by(changes.c.txid.desc(), changes.c.id.desc())
            .limit(1)
        ).first()
        if newest is None:
            return 0
        deleted = conn.execute(changes.delete().where(*old)).rowcount
        horizon = max(_horizon(conn), Cursor(newest.txid, newest.id))
        for name, value in (("horizon_txid", horizon.txid), ("horizon_id", horizon.id)):
            updated = conn.execute(
                feed_state.update().where(feed_state.c.name == name).values(value=value)
            ).rowcount
            if not updated:
                conn.execute(feed_state.insert().values(name=name, value=value))
    return int(deleted)
