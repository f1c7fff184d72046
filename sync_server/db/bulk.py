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


@lru_cache(maxsize=64)
def _compiled_add(
    table: sa.Table, key: tuple[str, ...], column: str, dialect: Dialect
) -> tuple[str, tuple[int, ...] | None, tuple[str, ...]]:
    names = (*key, column)
    insert: Any = (postgresql if dialect.name == "postgresql" else sqlite).insert(table)
    stmt = insert.on_conflict_do_update(
        index_elements=list(key), set_={column: table.c[column] + insert.excluded[column]}
    )
    compiled = stmt.compile(dialect=dialect, column_keys=list(names))
    order = (
        tuple(names.index(n) for n in compiled.positiontup)
        if compiled.positiontup is not None
        else None
    )
    return compiled.string, order, names


def bulk_add(
    conn: Connection,
    table: sa.Table,
    key: tuple[str, ...],
    column: str,
    rows: list[tuple[Any, ...]],
    *,
    chunk: int = 10_000,
) -> None:
    """Add to counters: insert ``(*key, amount)`` rows, or add ``amount`` to ``column`` of the
    row with that key (``ON CONFLICT DO UPDATE``), through the driver's ``executemany``.

    For plain columns only (strings, numbers: no bind processors are applied). At tens of
    thousands of pair counts per batch SQLAlchemy's per-row parameter handling cost more than
    the upsert itself.
    """
    if not rows:
        return
    sql, order, names = _compiled_add(table, key, column, conn.dialect)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        if order is None:  # named parameters (psycopg)
            conn.exec_driver_sql(sql, [dict(zip(names, row, strict=True)) for row in part])
        elif order == tuple(range(len(names))):
            conn.exec_driver_sql(sql, part)
        else:
            conn.exec_driver_sql(sql, [tuple(row[i] for i in order) for row in part])
