"""Fast multi-row inserts on either engine.

At thousands of rows a second SQLAlchemy's per-row parameter handling costs more than the
database's own insert. :func:`bulk_insert` compiles the statement once (cached per table, column
list and engine), applies the column types' own bind processors (so the stored form is exactly
what a normal SQLAlchemy insert would store: UUIDs, UTC timestamps) and hands the rows to the
driver's ``executemany``.
"""

from __future__ import annotations

import json
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


@lru_cache(maxsize=64)
def _json_add(table: sa.Table, key: tuple[str, ...], column: str) -> str:
    names = (*key, column)
    quoted = [f'"{n}"' for n in names]
    values = ", ".join(f"value ->> {i}" for i in range(len(names)))
    target = f'"{column}"'
    # "WHERE true" keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
    return (
        f'INSERT INTO "{table.name}" ({", ".join(quoted)}) '
        f"SELECT {values} FROM json_each(?) WHERE true "
        f"ON CONFLICT ({', '.join(quoted[: len(key)])}) "
        f'DO UPDATE SET {target} = "{table.name}".{target} + excluded.{target}'
    )


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
    if conn.dialect.name == "sqlite":
        # One statement per chunk, its rows as one JSON array read by json_each: sqlite3
        # releases the interpreter lock around every row an executemany steps, and a thread
        # holding SQLite's write lock then waits for the interpreter lock once per row while
        # the server's other threads run Python (counting 100 orders held the write lock
        # 0.43 s for 0.07 s of work). Here it lets go once per chunk.
        statement = _json_add(table, key, column)
        for start in range(0, len(rows), chunk):
            conn.exec_driver_sql(statement, (json.dumps(rows[start : start + chunk]),))
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


class RowCodec:
    """One table's rows as the driver takes them, made before the insert.

    The values of a row are given in the table's column order (``names``); :meth:`encode`
    applies each column's bind processor (the stored form is exactly what a SQLAlchemy insert
    stores), so rows can be made outside a transaction and :meth:`insert` only hands them to
    the driver. Ingest builds its rows this way before it takes SQLite's write lock.
    """

    def __init__(self, table: sa.Table, dialect: Dialect, *, ignore: bool = False) -> None:
        self.table = table
        self.names = tuple(c.name for c in table.c)
        self._sql, order, procs = _compiled(table, self.names, dialect, ignore)
        if order is not None and order != tuple(range(len(self.names))):
            raise RuntimeError(f"{table.name}: INSERT parameters not in column order")
        self._named = order is None  # psycopg takes named parameters
        self._procs = procs
        self._proc_of = dict(zip(self.names, procs, strict=True))

    def position(self, name: str) -> int:
        return self.names.index(name)

    def value(self, name: str, value: Any) -> Any:
        """One column's driver value."""
        proc = self._proc_of[name]
        return value if proc is None or value is None else proc(value)

    def row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """A whole row's driver values (``values`` in column order)."""
        return tuple(
            v if p is None or v is None else p(v) for v, p in zip(values, self._procs, strict=True)
        )

    def insert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self._named:
            names = self.names
            conn.exec_driver_sql(self._sql, [dict(zip(names, row, strict=True)) for row in rows])
        else:
            conn.exec_driver_sql(self._sql, rows)


@lru_cache(maxsize=64)
def row_codec(table: sa.Table, dialect: Dialect, *, ignore: bool = False) -> RowCodec:
    """The :class:`RowCodec` of ``table`` on ``dialect`` (made once)."""
    return RowCodec(table, dialect, ignore=ignore)
