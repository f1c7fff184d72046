"""Fast multi-row inserts on either engine.

At thousands of rows a second SQLAlchemy's per-row parameter handling costs more than the
database's own insert. :func:`bulk_insert` compiles the statement once (cached per table, column
list and engine), applies the column types' own bind processors (so the stored form is exactly
what a normal SQLAlchemy insert would store: UUIDs, UTC timestamps) and hands the rows to the
driver's ``executemany``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect


def insert_ignore(conn: Connection, table: sa.Table) -> Any:
    """``INSERT`` that skips rows whose key is already there, on either engine."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).prefix_with("OR IGNORE")


@lru_cache(maxsize=256)
def _compiled(
    table: sa.Table, names: tuple[str, ...], dialect: Dialect, ignore: bool
) -> tuple[str, tuple[int, ...] | None, tuple[Callable[[Any], Any] | None, ...]]:
    if ignore:
        stmt: Any = (
            postgresql.insert(table).on_conflict_do_nothing()
            if dialect.name == "postgresql"
            else sqlite.insert(table).prefix_with("OR IGNORE")
        )
    else:
        stmt = table.insert()
    compiled = stmt.compile(dialect=dialect, column_keys=list(names))
    procs = tuple(table.c[n].type.bind_processor(dialect) for n in names)
    order = (
        tuple(names.index(n) for n in compiled.positiontup)
        if compiled.positiontup is not None
        else None
    )
    return compiled.string, order, procs


def bulk_insert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, ignore: bool = False
) -> None:
    """Insert ``rows`` (dicts with the same keys); with ``ignore``, skip existing keys."""
    if not rows:
        return
    names = tuple(rows[0])
    sql, order, procs = _compiled(table, names, conn.dialect, ignore)
    pairs = list(zip(names, procs, strict=True))
    if order is not None:
        tuples = []
        for row in rows:
            values = [row[n] if p is None or row[n] is None else p(row[n]) for n, p in pairs]
            tuples.append(tuple(values[i] for i in order))
        conn.exec_driver_sql(sql, tuples)
    else:
        conn.exec_driver_sql(
            sql,
            [
                {n: row[n] if p is None or row[n] is None else p(row[n]) for n, p in pairs}
                for row in rows
            ],
        )
