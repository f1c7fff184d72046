"""Importing a retailer's exports into HQ: stores, products, customers and orders.

The file formats are those ``omnitill demo-data`` writes, documented column by column in
``docs/data-formats.md``; a real chain exports the same columns from its ERP, CRM and web shop.
Each ``import_*`` function reads one file, imports every good row and reports every bad one with
its line number, and returns an :class:`ImportReport`. Only the CLI turns a report into exit
codes.

Rules common to every file
--------------------------
- Files are UTF-8 (a byte-order mark from a spreadsheet is ignored). CSV files have a header
  row; their line numbers are physical lines, so a quoted cell that spans lines is reported at
  the row's last line. JSON Lines files have one object per line; blank lines are skipped.
- A bad row never stops the import: it is rejected with its line and reason, and the good rows
  around it are imported. Only a file that cannot be read at all (no header, a required column
  missing, not JSON) is refused whole, with :class:`~shared.errors.InvalidInput`.
- Rows are written in chunks of :data:`CHUNK` rows, one transaction and one ``executemany`` per
  table per chunk, so a million orders import in minutes and an interrupted import keeps the
  chunks it finished. Every import is safe to run again (see each kind below).

Stores (``stores.json``)
    ``{"chain": {...}, "stores": [...]}`` (or a bare list of stores); each store is a
    :class:`shared.catalogue.Store`. Stores are upserted and put on the change feed for their own
    tills (entity ``store``, key and scope the store id). The chain's ``loyalty_prefix`` and
    ``loyalty_length`` set the loyalty card format the customer import checks numbers against.

Products (``products.csv``)
    One :class:`shared.catalogue.Product` per row. ``gtin`` holds the product's barcodes
    (several separated by ``|``, ``;`` or spaces), each checked and stored in its 14-digit form;
    a GTIN already used by another SKU earlier in the same file rejects the row (one barcode
    names one product; across imports the newer file wins). Columns that are not Product fields
    (``margin_band``, ``season``, a retailer's own) become the product's ``attributes``.
    Products are upserted by SKU and each one's current state replaces its row on the change
    feed (entity ``product``, key the SKU, every store).

Customers (``customers.csv``)
    One *profile* per row (see ``sync_server.services.identity``). Its id is ``customer_id``
    when that is a UUID, else a UUID derived from ``customer_id`` (or, without one, from the
    row's names and identifiers), so re-importing the same export updates the same profiles.
    ``email``, ``phone`` (in the row's ``region``, else its home store's region, else the
    chain's first store's), ``loyalty_number`` (in the chain's card format) and
    ``web_user_id`` become normalized identifiers; the identity graph is then resolved once for
    the whole file, so duplicate records of a person merge and an address typed for many people
    (a shop's own ``noreply@``) is flagged shared instead of merging them. Customer fields
    (names, ``age_band``, ``region``, ``home_store``...) are written with the import's clock
    stamp (node ``hq-import``), so a later edit at a till wins over an older import and a newer
    import wins over an older till edit; an empty cell leaves a field as it is.
    ``email_consent`` and ``sms_consent`` become consent events dated ``created_at``; other
    columns (a CRM segment, a preferred contact channel) become the profile's attributes, shown
    in the full customer view. ``home_store`` puts the customer's card on that store's tills.
    Identifiers are only ever added: an identifier missing from a newer export stays claimed.
    A row for a customer who was erased at HQ is rejected: an old export must not bring back
    the data of someone who asked to be forgotten.

Orders (``orders.jsonl``)
    One order per line, channel ``store`` or ``online``, with its lines. The total must be the
    sum of the lines, every SKU must be in the catalogue (import products first), and a
    ``customer_id`` must name an imported customer (import customers first); the order is
    attached to that profile's current customer. Orders already at HQ (same ``order_id``,
    from an earlier import or a till) are skipped, so a re-import adds only what is new.

Web events (``web_events.jsonl``)
    One Segment call per line; imported by ``web_events.import_web_events`` exactly as the
    Segment HTTP API stores them (identity linking, online orders, dirty cards and lists).
    Calls already at HQ (same ``messageId``) are skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal
from uuid import UUID

import phonenumbers
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shared.barcodes import DEFAULT_LOYALTY_FORMAT, LoyaltyFormat, parse_gtin
from shared.catalogue import Product, Store
from shared.errors import BarcodeError, IdentifierError, InvalidInput, MoneyError
from shared.hlc import HybridLogicalClock
from shared.identifiers import Identifier, normalize_identifier
from shared.money import minor_units
from shared.wire import utc_now
from sync_server.db.bulk import bulk_insert, insert_ignore
from sync_server.db.engine import Database
from sync_server.db.schema import (
    consent_events,
    customer_field_history,
    customer_fields,
    customer_stores,
    identifiers,
    order_lines,
    orders,
    product_barcodes,
    products,
    profiles,
    stores,
)
from sync_server.services import feed, identity

log = logging.getLogger(__name__)

ImportKind = Literal["stores", "products", "customers", "orders", "web_events"]
IMPORT_KINDS: Final[tuple[ImportKind, ...]] = (
    "stores",
    "products",
    "customers",
    "orders",
    "web_events",
)

#: Rows per transaction and per ``executemany``.
CHUNK: Final = 5000
#: SQLite page cache while importing, in KiB.
IMPORT_CACHE_KIB: Final = 256 * 1024
#: The clock node of customer fields written by an import.
IMPORT_NODE: Final = "hq-import"
#: Namespace of profile ids derived from a non-UUID ``customer_id`` or a row's natural key.
PROFILE_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://omnitill.org/import/customer")
#: Phone region when neither the row, its home store nor any known store gives one.
FALLBACK_REGION: Final = str(Store.model_fields["default_region"].default)

#: Product columns that are Product fields; every other column is an attribute.
PRODUCT_FIELDS: Final = frozenset(
    {
        "sku",
        "gtin",
        "gtins",
        "item_reference",
        "name",
        "brand",
        "category",
        "subcategory",
        "price_minor",
        "currency",
        "tax_rate",
        "variable_measure",
        "active",
    }
)
#: Customer identifier columns and the identifier kind each one holds.
CUSTOMER_IDENTIFIERS: Final = {
    "email": "email",
    "phone": "phone",
    "loyalty_number": "loyalty",
    "web_user_id": "web_user",
}
CONSENT_COLUMNS: Final = {"email_consent": "email", "sms_consent": "sms"}
#: Customer columns with a meaning of their own; every other column is an attribute.
CUSTOMER_COLUMNS: Final = frozenset(
    {"customer_id", "created_at", *CUSTOMER_IDENTIFIERS, *CONSENT_COLUMNS}
    | identity.CUSTOMER_FIELDS
)

_TRUE: Final = frozenset({"true", "yes", "y", "1", "t"})
_FALSE: Final = frozenset({"false", "no", "n", "0", "f"})
_GTIN_SEPARATORS: Final = re.compile(r"[|;\s]+")
_INTEGER: Final = re.compile(r"-?[0-9]+")
_STORE_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_REPLACEMENT: Final = "\ufffd"

ErrorSink = Callable[[int, str], None]
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    """What one import did. ``errors`` holds ``(line, reason)`` for every rejected row."""

    kind: str
    imported: int = 0
    rejected: int = 0
    #: rows that were already at HQ (orders imported before)
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        rows = self.imported + self.rejected + self.skipped
        return rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        text = f"imported {self.imported}, rejected {self.rejected}"
        if self.skipped:
            text += f", skipped {self.skipped} already imported"
        return text


class _Run:
    """The report being built, and the callbacks that show it while it grows."""

    def __init__(self, kind: str, on_error: ErrorSink | None, progress: Progress | None) -> None:
        self.report = ImportReport(kind=kind)
        self._on_error = on_error
        self._progress = progress
        self._started = time.perf_counter()
        self._unreported = 0

    def reject(self, line: int, reason: str) -> None:
        self.report.rejected += 1
        self.report.errors.append((line, reason))
        if self._on_error is not None:
            self._on_error(line, reason)

    def row_read(self) -> None:
        self._unreported += 1

    def advance(self) -> None:
        if self._progress is not None and self._unreported:
            self._progress(self._unreported)
        self._unreported = 0

    def finish(self) -> ImportReport:
        self.advance()
        self.report.errors.sort()
        self.report.seconds = time.perf_counter() - self._started
        log.info(
            "import %s: %s in %.1f s (%.0f rows/s)",
            self.report.kind,
            self.report.summary(),
            self.report.seconds,
            self.report.rows_per_second,
        )
        return self.report


class _RowError(Exception):
    """A reason to reject the row being read (internal: becomes a report line)."""


def _invalid(exc: InvalidInput) -> _RowError:
    return _RowError(exc.message)


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Reading files


class _CsvFile:
    """A CSV file with a header: ``columns`` and ``(line, {column: cell})`` rows.

    Cells are stripped; a row with the wrong number of cells or bytes that are not UTF-8 is
    handed to ``run`` as a rejected row and not yielded.
    """

    def __init__(self, path: Path, run: _Run) -> None:
        self.path = path
        self._run = run
        self._file = path.open(encoding="utf-8-sig", errors="replace", newline="")
        self._reader = csv.reader(self._file)
        try:
            header = next(self._reader)
        except StopIteration:
            self._file.close()
            raise InvalidInput(
                f"{path}: the file is empty; the first line must be the header"
            ) from None
        except csv.Error as exc:
            self._file.close()
            raise InvalidInput(f"{path}:1: cannot read the header: {exc}") from exc
        self.columns = [h.strip() for h in header]
        problem = _header_problem(self.columns)
        if problem:
            self._file.close()
            raise InvalidInput(f"{path}:1: {problem}")

    def require(self, *groups: Sequence[str]) -> None:
        """Refuse the file unless it has, for each group, one of the group's columns."""
        missing = [" or ".join(g) for g in groups if not any(c in self.columns for c in g)]
        if missing:
            raise InvalidInput(
                f"{self.path}:1: missing column(s) {', '.join(missing)}; the header has "
                f"{', '.join(self.columns)}"
            )

    def __enter__(self) -> _CsvFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._file.close()

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        width = len(self.columns)
        while True:
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InvalidInput(
                    f"{self.path}:{self._reader.line_num}: cannot read the file from here on: "
                    f"{exc} (rows before it were imported)"
                ) from exc
            line = self._reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            self._run.row_read()
            if len(cells) != width:
                self._run.reject(
                    line, f"expected {width} columns as in the header, found {len(cells)}"
                )
                continue
            if any(_REPLACEMENT in c for c in cells):
                self._run.reject(line, "contains bytes that are not UTF-8; save the file as UTF-8")
                continue
            yield line, {name: cell.strip() for name, cell in zip(self.columns, cells, strict=True)}


def _header_problem(columns: list[str]) -> str | None:
    if any(not c for c in columns):
        return "the header has an empty column name"
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            return f"the header names column {c!r} twice"
        seen.add(c)
    return None


def _json_lines(path: Path, run: _Run) -> Iterator[tuple[int, Any]]:
    """``(line, parsed JSON)`` for each non-blank line; malformed lines are rejected."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            run.row_read()
            try:
                yield number, json.loads(text.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError:
                run.reject(number, "contains bytes that are not UTF-8; save the file as UTF-8")
            except json.JSONDecodeError as exc:
                run.reject(number, f"malformed JSON: {exc.msg} at column {exc.colno}")


def count_data_rows(path: Path, kind: ImportKind) -> int:
    """About how many rows the file holds (lines, less the CSV header): for a progress bar."""
    if kind == "stores":
        return 0
    lines = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1
    return max(0, lines - 1) if path.suffix.lower() == ".csv" else lines


# ---------------------------------------------------------------------------------------------
# Cell parsers: each raises _RowError with the reason


def _whole_number(name: str, text: str) -> int:
    # Not int() alone: it also takes "1_000", "+5" and non-ASCII digits.
    if not _INTEGER.fullmatch(text):
        raise _RowError(f"{name} must be a whole number, not {text!r}")
    return int(text)


def _currency(text: str) -> str:
    code = text.strip().upper()
    try:
        minor_units(code)
    except MoneyError as exc:
        raise _invalid(exc) from exc
    return code


def _timestamp(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _RowError(
            f"{name} {text!r} is not a date and time like 2026-10-31T09:15:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise _RowError(f"{name} {text!r} has no time zone; end it with Z for UTC")
    return value


def _flag(name: str, text: str) -> bool | None:
    value = text.strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _RowError(f"{name} must be true or false, not {text!r}")


def _store_id(name: str, text: str) -> str:
    if not _STORE_ID.match(text):
        raise _RowError(
            f"{name} {text!r} is not a store code (1 to 64 letters, digits, '_', '.' or '-')"
        )
    return text


def _bulk_insert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, ignore: bool = True
) -> None:
    bulk_insert(conn, table, rows, ignore=ignore)


def _large_cache(conn: Connection) -> None:
    """Let SQLite keep more of the indexes in memory while a big file is written.

    Random UUID keys touch pages all over their indexes; with SQLite's default 2 MB cache most
    inserts would read and write pages again. Per connection; pages are only taken as used.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}")


def _upsert(conn: Connection, table: sa.Table, keys: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column, on either engine."""
    stmt: Any = (
        postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    )
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )


# ---------------------------------------------------------------------------------------------
# Stores


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """What ``stores.json`` says about the chain: its stores' regions and card format."""

    loyalty_format: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT
    regions: dict[str, str] = field(default_factory=dict)


def import_stores(
    db: Database,
    path: Path,
    *,
    on_error: ErrorSink | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Upsert the stores of ``stores.json`` and put each on its tills' change feed."""
    run = _Run("stores", on_error, progress)
    _, items = _read_stores_file(path)
    good: dict[str, Store] = {}
    for line, item in items:
        run.row_read()
        try:
            store = Store.model_validate(item)
        except ValidationError as exc:
            run.reject(line, _validation_reason(exc))
            continue
        good[store.store_id] = store
    now = utc_now()
    if good:
        with db.write() as conn:
            conn.execute(
                _upsert(conn, stores, ["store_id"]),
                [
                    {"store_id": s.store_id, "data": s.model_dump_json(), "updated_at": now}
                    for s in good.values()
                ],
            )
            feed.record_changes(
                conn,
                [
                    {
                        "entity": "store",
                        "key": s.store_id,
                        "scope": s.store_id,
                        "data": s.model_dump_json(),
                    }
                    for s in good.values()
                ],
            )
    run.report.imported = len(good)
    return run.finish()


def read_chain_config(path: Path) -> ChainConfig:
    """The loyalty card format and store regions in a ``stores.json`` (defaults where absent)."""
    chain, items = _read_stores_file(path)
    fmt = DEFAULT_LOYALTY_FORMAT
    if isinstance(chain, dict) and "loyalty_prefix" in chain:
        try:
            fmt = LoyaltyFormat(
                prefix=str(chain["loyalty_prefix"]),
                length=int(chain.get("loyalty_length", DEFAULT_LOYALTY_FORMAT.length)),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"{path}: the chain's loyalty card format is not valid: {exc}"
            ) from exc
    regions = {
        str(item["store_id"]): str(item["default_region"])
        for _, item in items
        if isinstance(item, dict) and "store_id" in item and "default_region" in item
    }
    return ChainConfig(loyalty_format=fmt, regions=regions)


def _read_stores_file(path: Path) -> tuple[Any, list[tuple[int, Any]]]:
    """(chain object or None, [(line, store object)]) of a stores file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text; save the file as UTF-8") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from exc
    if isinstance(document, list):
        start = text.index("[")
        chain = None
    elif isinstance(document, dict) and isinstance(document.get("stores"), list):
        start = _member_value_offset(text, "stores")
        chain = document.get("chain")
    else:
        raise InvalidInput(
            f'{path}: expected {{"chain": {{...}}, "stores": [...]}} or a list of stores'
        )
    return chain, _array_items(text, start)


def _member_value_offset(text: str, name: str) -> int:
    """Where the value of top-level member ``name`` starts in a JSON object's text."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, text.index("{") + 1).end()  # type: ignore[union-attr]
    while text[pos] != "}":
        key, pos = decoder.raw_decode(text, pos)
        pos = ws.match(text, pos).end() + 1  # type: ignore[union-attr]  # past ':'
        pos = ws.match(text, pos).end()  # type: ignore[union-attr]
        if key == name:
            return pos
        _, pos = decoder.raw_decode(text, pos)
        pos = ws.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos] == ",":
            pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
    raise ValueError(f"no member {name!r}")  # pragma: no cover - checked by json.loads first


def _array_items(text: str, start: int) -> list[tuple[int, Any]]:
    """``(line, item)`` of each item of the JSON array starting at ``start``."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r,]*")
    pos = start + 1
    items: list[tuple[int, Any]] = []
    while True:
        pos = ws.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos] == "]":
            return items
        item, end = decoder.raw_decode(text, pos)
        items.append((text.count("\n", 0, pos) + 1, item))
        pos = end


def _known_regions(conn: Connection) -> dict[str, str]:
    regions: dict[str, str] = {}
    for store_id, data in conn.execute(sa.select(stores.c.store_id, stores.c.data)):
        region = json.loads(data).get("default_region")
        if region:
            regions[store_id] = region
    return regions


# ---------------------------------------------------------------------------------------------
# Products


def import_products(
    db: Database,
    path: Path,
    *,
    on_error: ErrorSink | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Upsert the products of a ``products.csv`` and put each on the change feed."""
    run = _Run("products", on_error, progress)
    gtin_owner: dict[str, tuple[str, int]] = {}
    chunk: dict[str, Product] = {}
    with _CsvFile(path, run) as rows:
        rows.require(["sku"], ["name"], ["price_minor"])
        extra = [c for c in rows.columns if c not in PRODUCT_FIELDS]
        for line, row in rows:
            try:
                product = _product(row, extra)
                for gtin in product.gtins:
                    owner = gtin_owner.get(gtin)
                    if owner is not None and owner[0] != product.sku:
                        raise _RowError(
                            f"GTIN {gtin.lstrip('0')} is already the barcode of SKU {owner[0]} "
                            f"(line {owner[1]}); one barcode names one product"
                        )
            except _RowError as exc:
                run.reject(line, str(exc))
                continue
            for gtin in product.gtins:
                gtin_owner[gtin] = (product.sku, line)
            chunk[product.sku] = product  # the same SKU twice: the later row wins
            run.report.imported += 1
            if len(chunk) >= CHUNK:
                _write_products(db, chunk)
                run.advance()
        _write_products(db, chunk)
    return run.finish()


def _product(row: dict[str, str], extra: Sequence[str]) -> Product:
    sku = row["sku"]
    if not sku:
        raise _RowError("sku is empty")
    codes = _GTIN_SEPARATORS.split(row.get("gtin", "") or row.get("gtins", ""))
    gtins: list[str] = []
    for code in codes:
        if not code:
            continue
        try:
            gtin = parse_gtin(code).gtin14
        except BarcodeError as exc:
            raise _invalid(exc) from exc
        if gtin not in gtins:
            gtins.append(gtin)
    price = _whole_number("price_minor", row["price_minor"])
    if price < 0:
        raise _RowError(f"price_minor is negative ({price}); a price is 0 or more")
    currency = _currency(row.get("currency") or "EUR")
    tax_text = row.get("tax_rate") or "0"
    try:
        tax_rate = Decimal(tax_text)
    except InvalidOperation:
        raise _RowError(f"tax_rate {tax_text!r} is not a number like 19 or 8.875") from None
    active = _flag("active", row.get("active", ""))
    data: dict[str, Any] = {
        "sku": sku,
        "name": row["name"],
        "brand": row.get("brand", ""),
        "category": row.get("category", ""),
        "subcategory": row.get("subcategory", ""),
        "gtins": tuple(gtins),
        "price_minor": price,
        "currency": currency,
        "tax_rate": tax_rate,
        "variable_measure": row.get("variable_measure") or None,
        "item_reference": row.get("item_reference") or None,
        "attributes": {name: row[name] for name in extra if row[name]},
        "active": True if active is None else active,
    }
    try:
        return Product.model_validate(data)
    except ValidationError as exc:
        raise _RowError(_validation_reason(exc)) from None


def _write_products(db: Database, chunk: dict[str, Product]) -> None:
    if not chunk:
        return
    now = utc_now()
    docs = {sku: p.model_dump_json() for sku, p in chunk.items()}
    with db.write() as conn:
        _large_cache(conn)
        conn.execute(
            _upsert(conn, products, ["sku"]),
            [
                {
                    "sku": sku,
                    "category": p.category,
                    "data": docs[sku],
                    "updated_at": now,
                    "deleted_at": None,
                }
                for sku, p in chunk.items()
            ],
        )
        conn.execute(product_barcodes.delete().where(product_barcodes.c.sku.in_(list(chunk))))
        barcodes = [{"gtin": g, "sku": sku} for sku, p in chunk.items() for g in p.gtins]
        if barcodes:
            # A barcode that belonged to another SKU moves: the newer export wins.
            conn.execute(_upsert(conn, product_barcodes, ["gtin"]), barcodes)
        feed.record_changes(
            conn,
            [
                {"entity": "product", "key": sku, "scope": feed.ALL_STORES, "data": docs[sku]}
                for sku in chunk
            ],
        )
    chunk.clear()


# ---------------------------------------------------------------------------------------------
# Customers


def profile_id_for(customer_id: str) -> UUID:
    """The profile a ``customer_id`` from an export names: itself if a UUID, else derived."""
    try:
        return UUID(customer_id)
    except ValueError:
        return uuid.uuid5(PROFILE_NAMESPACE, f"customer_id:{customer_id}")


@dataclass(slots=True)
class _Customer:
    line: int
    profile_id: UUID
    created_at: datetime
    #: when the consents in the row were given: created_at, but never after the import
    consent_at: datetime
    claims: list[Identifier]
    fields: dict[str, str]
    consents: dict[str, bool]
    home_store: str | None
    attributes: dict[str, str]


def import_customers(
    db: Database,
    path: Path,
    *,
    threshold: int = identity.DEFAULT_THRESHOLD,
    chain: ChainConfig | None = None,
    on_error: ErrorSink | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the customers of a ``customers.csv`` and resolve the identity graph once.

    ``chain`` gives the loyalty card format and store regions; by default it is read from a
    ``stores.json`` next to the file when there is one (the stores table fills in regions).
    ``threshold`` is the merge protection threshold (``Settings.merge_protection_threshold``).
    """
    run = _Run("customers", on_error, progress)
    if chain is None:
        sibling = path.with_name("stores.json")
        chain = read_chain_config(sibling) if sibling.is_file() else ChainConfig()
    with db.read() as conn:
        regions = {**chain.regions, **_known_regions(conn)}
    fallback = next(iter(regions.values()), FALLBACK_REGION)
    clock = HybridLogicalClock(IMPORT_NODE)
    writer = _CustomerWriter(db, run, clock)
    with _CsvFile(path, run) as rows:
        rows.require(["customer_id", *CUSTOMER_IDENTIFIERS])
        extra = [c for c in rows.columns if c not in CUSTOMER_COLUMNS]
        for line, row in rows:
            try:
                customer = _customer(
                    line, row, extra, chain.loyalty_format, regions, fallback, writer.now
                )
            except _RowError as exc:
                run.reject(line, str(exc))
                continue
            writer.add(customer)
        writer.flush()
    with db.write() as conn:
        moved = identity.resolve_all(conn, threshold=threshold)
    log.info("import customers: %d profiles joined or left a customer", moved)
    return run.finish()


def _customer(
    line: int,
    row: dict[str, str],
    extra: Sequence[str],
    loyalty_format: LoyaltyFormat,
    regions: dict[str, str],
    fallback: str,
    now: datetime,
) -> _Customer:
    home_store = row.get("home_store") or None
    if home_store is not None:
        _store_id("home_store", home_store)
    region = (row.get("region") or "").upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = regions.get(home_store or "", fallback)
    claims: list[Identifier] = []
    for column, kind in CUSTOMER_IDENTIFIERS.items():
        raw = row.get(column, "")
        if not raw:
            continue
        try:
            claims.append(
                normalize_identifier(
                    kind, raw, default_region=region, loyalty_format=loyalty_format
                )
            )
        except IdentifierError as exc:
            raise _RowError(f"{column}: {exc.message}") from exc
    consents: dict[str, bool] = {}
    for column, channel in CONSENT_COLUMNS.items():
        granted = _flag(column, row.get(column, ""))
        if granted is not None:
            consents[channel] = granted
    created = row.get("created_at", "")
    created_at = _timestamp("created_at", created) if created else now
    fields = {name: row[name] for name in sorted(identity.CUSTOMER_FIELDS) if row.get(name)}
    customer_id = row.get("customer_id", "")
    if customer_id:
        profile_id = profile_id_for(customer_id)
    else:
        # No id in the export: the row's own content names it, so a re-import finds it again.
        key = "|".join(
            [fields.get("first_name", ""), fields.get("last_name", "")] + [str(c) for c in claims]
        )
        profile_id = uuid.uuid5(PROFILE_NAMESPACE, f"row:{key}")
    return _Customer(
        line=line,
        profile_id=profile_id,
        created_at=created_at,
        consent_at=min(created_at, now),
        claims=claims,
        fields=fields,
        consents=consents,
        home_store=home_store,
        attributes={name: row[name] for name in extra if row[name]},
    )


class _CustomerWriter:
    """Collects customer rows and writes them a chunk at a time.

    New profiles are written with one ``executemany`` per table; profiles already at HQ (a
    re-import, or the same customer twice in a file) go through the field-level
    last-writer-wins path and only what changed is written.
    """

    def __init__(self, db: Database, run: _Run, clock: HybridLogicalClock) -> None:
        self.db = db
        self.run = run
        self.clock = clock
        self.now = utc_now()
        self.chunk: dict[UUID, _Customer] = {}

    def add(self, customer: _Customer) -> None:
        if customer.profile_id in self.chunk:
            self.flush()  # a second row for the same profile updates the first
        self.chunk[customer.profile_id] = customer
        if len(self.chunk) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.chunk:
            return
        chunk = self.chunk
        self.chunk = {}
        with self.db.write() as conn:
            _large_cache(conn)
            existing = {
                UUID(str(r.profile_id)): r
                for r in conn.execute(
                    sa.select(
                        profiles.c.profile_id,
                        profiles.c.customer_id,
                        profiles.c.erased_at,
                        profiles.c.attributes,
                        profiles.c.home_store,
                    ).where(profiles.c.profile_id.in_(list(chunk)))
                )
            }
            imported = 0
            fresh = [c for pid, c in chunk.items() if pid not in existing]
            if fresh:
                self._write_new(conn, fresh)
                imported += len(fresh)
            known = [c for pid, c in chunk.items() if pid in existing]
            erased = [c for c in known if existing[c.profile_id].erased_at is not None]
            live = [c for c in known if existing[c.profile_id].erased_at is None]
            if live:
                self._update(conn, live, existing)
                imported += len(live)
        for c in erased:
            self.run.reject(
                c.line,
                f"customer {c.profile_id} was erased at HQ (right to be forgotten); "
                "remove them from the export",
            )
        self.run.report.imported += imported
        self.run.advance()

    def _stamp(self) -> str:
        return self.clock.now().encode()

    def _write_new(self, conn: Connection, rows: list[_Customer]) -> None:
        now = self.now
        hlc = self._stamp()
        _bulk_insert(
            conn,
            profiles,
            [
                {
                    "profile_id": c.profile_id,
                    "customer_id": c.profile_id,
                    "source": "import",
                    "home_store": c.home_store,
                    "attributes": json.dumps(c.attributes, ensure_ascii=False),
                    "created_at": c.created_at,
                }
                for c in rows
            ],
        )
        claims = [
            {"kind": i.kind, "value": i.value, "profile_id": c.profile_id, "created_at": now}
            for c in rows
            for i in dict.fromkeys(c.claims)
        ]
        if claims:
            _bulk_insert(conn, identifiers, claims)
        values = [
            {
                "profile_id": c.profile_id,
                "field": name,
                "value": value,
                "hlc": hlc,
                "writer": IMPORT_NODE,
            }
            for c in rows
            for name, value in c.fields.items()
        ]
        if values:
            _bulk_insert(conn, customer_fields, values)
        consents = [
            {
                "profile_id": c.profile_id,
                "channel": channel,
                "granted": granted,
                "at": c.consent_at,
                "source": "import",
            }
            for c in rows
            for channel, granted in c.consents.items()
        ]
        if consents:
            _bulk_insert(conn, consent_events, consents, ignore=False)
        homes = [
            {"customer_id": c.profile_id, "store_id": c.home_store} for c in rows if c.home_store
        ]
        if homes:
            _bulk_insert(conn, customer_stores, homes)
        identity.mark_dirty(conn, (c.profile_id for c in rows), now=now)

    def _update(self, conn: Connection, rows: list[_Customer], existing: dict[UUID, Any]) -> None:
        now = self.now
        pids = [c.profile_id for c in rows]
        customer_of = {pid: UUID(str(existing[pid].customer_id)) for pid in pids}
        imported_before = _imported_values(conn, pids)
        claimed: dict[UUID, set[tuple[str, str]]] = defaultdict(set)
        for r in conn.execute(
            sa.select(identifiers.c.profile_id, identifiers.c.kind, identifiers.c.value).where(
                identifiers.c.profile_id.in_(pids)
            )
        ):
            claimed[UUID(str(r.profile_id))].add((r.kind, r.value))
        latest_consent: dict[tuple[UUID, str], tuple[datetime, bool]] = {}
        for ev in conn.execute(
            sa.select(
                consent_events.c.profile_id,
                consent_events.c.channel,
                consent_events.c.at,
                consent_events.c.granted,
            )
            .where(consent_events.c.profile_id.in_(pids))
            .order_by(consent_events.c.at, consent_events.c.id)
        ):
            latest_consent[(UUID(str(ev.profile_id)), ev.channel)] = (ev.at, ev.granted)
        changed: set[UUID] = set()
        homes: list[dict[str, Any]] = []
        consents: list[dict[str, Any]] = []
        for c in rows:
            pid = c.profile_id
            customer = customer_of[pid]
            old = existing[pid]
            attributes = {**json.loads(old.attributes), **c.attributes}
            home = c.home_store or old.home_store
            if attributes != json.loads(old.attributes) or home != old.home_store:
                conn.execute(
                    profiles.update()
                    .where(profiles.c.profile_id == pid)
                    .values(attributes=json.dumps(attributes, ensure_ascii=False), home_store=home)
                )
                changed.add(customer)
            new_claims = [i for i in c.claims if (i.kind, i.value) not in claimed[pid]]
            if new_claims:
                identity.claim(conn, pid, new_claims, now=now)
                changed.add(customer)
            for name, value in c.fields.items():
                # Unchanged in the export since the last import: an edit made at a till since
                # then stays. Changed: the export knows something newer, and wins.
                if imported_before.get((pid, name)) == value:
                    continue
                identity.write_field(
                    conn,
                    customer=customer,
                    profile=pid,
                    field=name,
                    value=value,
                    hlc=self._stamp(),
                    writer=IMPORT_NODE,
                    now=now,
                )
                changed.add(customer)
            for channel, granted in c.consents.items():
                last = latest_consent.get((pid, channel))
                # Unchanged, or a newer decision (a till, a later import) already recorded.
                if last is not None and (last[1] == granted or last[0] >= c.consent_at):
                    continue
                consents.append(
                    {
                        "profile_id": pid,
                        "channel": channel,
                        "granted": granted,
                        "at": c.consent_at,
                        "source": "import",
                    }
                )
                changed.add(customer)
            if c.home_store:
                homes.append({"customer_id": customer, "store_id": c.home_store})
        if consents:
            conn.execute(consent_events.insert(), consents)
        if homes:
            cached = {
                (UUID(str(r.customer_id)), r.store_id)
                for r in conn.execute(
                    sa.select(customer_stores.c.customer_id, customer_stores.c.store_id).where(
                        customer_stores.c.customer_id.in_({h["customer_id"] for h in homes})
                    )
                )
            }
            new = [h for h in homes if (h["customer_id"], h["store_id"]) not in cached]
            if new:
                conn.execute(insert_ignore(conn, customer_stores), new)
                changed |= {h["customer_id"] for h in new}
        identity.mark_dirty(conn, changed, now=now)


def _imported_values(conn: Connection, pids: list[UUID]) -> dict[tuple[UUID, str], str | None]:
    """The value each profile's field got from the newest import, whether it still wins or
    lost to a till edit since (then it is in the field history)."""
    newest: dict[tuple[UUID, str], tuple[str, str | None]] = {}
    for table in (customer_fields, customer_field_history):
        for r in conn.execute(
            sa.select(table.c.profile_id, table.c.field, table.c.value, table.c.hlc).where(
                table.c.profile_id.in_(pids), table.c.writer == IMPORT_NODE
            )
        ):
            key = (UUID(str(r.profile_id)), r.field)
            if key not in newest or r.hlc > newest[key][0]:
                newest[key] = (r.hlc, r.value)
    return {key: value for key, (_, value) in newest.items()}


# ---------------------------------------------------------------------------------------------
# Orders


@dataclass(slots=True)
class _Order:
    line: int
    order_id: UUID
    channel: str
    store_id: str | None
    till_id: str | None
    profile_id: UUID | None
    receipt_number: str | None
    created_at: datetime
    currency: str
    total_minor: int
    tax_minor: int
    lines: list[tuple[str, int, int]]  # (sku, quantity, amount_minor)


def import_orders(
    db: Database,
    path: Path,
    *,
    on_error: ErrorSink | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the orders of an ``orders.jsonl``; orders already at HQ are skipped."""
    run = _Run("orders", on_error, progress)
    with db.read() as conn:
        catalogue = set(conn.execute(sa.select(products.c.sku)).scalars())
    chunk: dict[UUID, _Order] = {}
    for line, item in _json_lines(path, run):
        try:
            order = _order(line, item, catalogue)
        except _RowError as exc:
            run.reject(line, str(exc))
            continue
        if order.order_id in chunk:
            run.report.skipped += 1  # the same order twice in the file
            continue
        chunk[order.order_id] = order
        if len(chunk) >= CHUNK:
            _write_orders(db, chunk, run)
    _write_orders(db, chunk, run)
    return run.finish()


def _field(
    item: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True
) -> Any:
    value = item.get(name)
    if value is None:
        if required:
            raise _RowError(f"{name} is missing")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = "a whole number" if kind is int else "text" if kind is str else "a list"
        raise _RowError(f"{name} must be {expected}, not {json.dumps(value)[:40]}")
    return value


def _order(line: int, item: Any, catalogue: set[str]) -> _Order:
    if not isinstance(item, dict):
        raise _RowError("each line must be a JSON object (an order)")
    order_text = _field(item, "order_id", str)
    try:
        order_id = UUID(order_text)
    except ValueError:
        raise _RowError(f"order_id {order_text!r} is not a UUID") from None
    channel = _field(item, "channel", str)
    if channel not in ("store", "online"):
        raise _RowError(f"channel must be 'store' or 'online', not {channel!r}")
    store_id = _field(item, "store_id", str, required=channel == "store")
    if store_id is not None:
        _store_id("store_id", store_id)
    till_id = _field(item, "till_id", str, required=False)
    customer_text = _field(item, "customer_id", str, required=False)
    created_at = _timestamp("created_at", _field(item, "created_at", str))
    currency = _currency(_field(item, "currency", str))
    raw_lines = _field(item, "lines", list)
    if not raw_lines:
        raise _RowError("an order needs at least one line")
    lines: list[tuple[str, int, int]] = []
    for n, raw in enumerate(raw_lines, start=1):
        sku, quantity, amount = _order_line(n, raw)
        if sku not in catalogue:
            raise _RowError(f"order line {n}: unknown SKU {sku!r}; import its product first")
        lines.append((sku, quantity, amount))
    total = _field(item, "total_minor", int)
    lines_sum = sum(amount for _, _, amount in lines)
    if total != lines_sum:
        raise _RowError(f"total_minor {total} is not the sum of the lines ({lines_sum})")
    tax = _field(item, "tax_minor", int, required=False) or 0
    if tax < 0:
        raise _RowError(f"tax_minor is negative ({tax})")
    return _Order(
        line=line,
        order_id=order_id,
        channel=channel,
        store_id=store_id,
        till_id=till_id,
        profile_id=profile_id_for(customer_text) if customer_text else None,
        receipt_number=_field(item, "receipt_number", str, required=False),
        created_at=created_at,
        currency=currency,
        total_minor=total,
        tax_minor=tax,
        lines=lines,
    )


def _order_line(n: int, raw: Any) -> tuple[str, int, int]:
    """(sku, quantity, amount_minor) of the order's line ``n``."""
    # The common shape checked first with plain type tests: a million orders pass through here.
    if type(raw) is dict:
        sku, quantity, unit = raw.get("sku"), raw.get("quantity"), raw.get("unit_price_minor")
        if (
            type(sku) is str
            and type(quantity) is int
            and type(unit) is int
            and quantity > 0
            and unit >= 0
            and "amount_minor" not in raw
        ):
            return sku, quantity, quantity * unit
    else:
        raise _RowError(f"order line {n} must be an object")
    try:
        sku = _field(raw, "sku", str)
        quantity = _field(raw, "quantity", int)
        if quantity <= 0:
            raise _RowError(f"quantity must be 1 or more, not {quantity}")
        if "amount_minor" in raw:
            amount = _field(raw, "amount_minor", int)
        else:
            unit = _field(raw, "unit_price_minor", int)
            if unit < 0:
                raise _RowError(f"unit_price_minor is negative ({unit})")
            amount = quantity * unit
        if amount < 0:
            raise _RowError(f"amount_minor is negative ({amount})")
    except _RowError as exc:
        raise _RowError(f"order line {n}: {exc}") from None
    return sku, quantity, amount


def _write_orders(db: Database, chunk: dict[UUID, _Order], run: _Run) -> None:
    if not chunk:
        return
    now = utc_now()
    imported = skipped = 0
    rejected: list[tuple[int, str]] = []
    with db.write() as conn:
        _large_cache(conn)
        ids = list(chunk)
        present = {
            UUID(str(o))
            for o in conn.execute(
                sa.select(orders.c.order_id).where(orders.c.order_id.in_(ids))
            ).scalars()
        }
        wanted = {o.profile_id for o in chunk.values() if o.profile_id is not None}
        owner: dict[UUID, UUID | None] = {}
        if wanted:
            for r in conn.execute(
                sa.select(
                    profiles.c.profile_id, profiles.c.customer_id, profiles.c.erased_at
                ).where(profiles.c.profile_id.in_(list(wanted)))
            ):
                # An erased customer's orders are kept for the books, without the customer.
                owner[UUID(str(r.profile_id))] = (
                    None if r.erased_at is not None else UUID(str(r.customer_id))
                )
        order_rows: list[dict[str, Any]] = []
        line_rows: list[dict[str, Any]] = []
        touched: dict[str | None, set[UUID]] = defaultdict(set)
        for order in chunk.values():
            if order.order_id in present:
                skipped += 1
                continue
            profile_id = order.profile_id
            customer_id = None
            if profile_id is not None:
                if profile_id not in owner:
                    rejected.append(
                        (order.line, f"unknown customer {profile_id}; import customers first")
                    )
                    continue
                customer_id = owner[profile_id]
                if customer_id is None:
                    profile_id = None
                else:
                    touched[order.store_id].add(customer_id)
            order_rows.append(
                {
                    "order_id": order.order_id,
                    "channel": order.channel,
                    "store_id": order.store_id,
                    "till_id": order.till_id,
                    "customer_id": customer_id,
                    "profile_id": profile_id,
                    "receipt_number": order.receipt_number,
                    "created_at": order.created_at,
                    "currency": order.currency,
                    "total_minor": order.total_minor,
                    "tax_minor": order.tax_minor,
                    "payload": None,
                    "ingested_at": now,
                }
            )
            line_rows.extend(
                {
                    "order_id": order.order_id,
                    "line_no": n,
                    "sku": sku,
                    "quantity": quantity,
                    "amount_minor": amount,
                }
                for n, (sku, quantity, amount) in enumerate(order.lines, start=1)
            )
        if order_rows:
            _bulk_insert(conn, orders, order_rows)
            _bulk_insert(conn, order_lines, line_rows)
            imported = len(order_rows)
        for store_id, customers in touched.items():
            identity.customers_changed(conn, customers, store_id=store_id)
    for line, reason in sorted(rejected):
        run.reject(line, reason)
    run.report.imported += imported
    run.report.skipped += skipped
    chunk.clear()
    run.advance()


# ---------------------------------------------------------------------------------------------
# Dispatch


def import_file(
    db: Database,
    kind: ImportKind,
    path: Path,
    *,
    threshold: int = identity.DEFAULT_THRESHOLD,
    on_error: ErrorSink | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``path`` as ``kind`` (one of :data:`IMPORT_KINDS`)."""
    if kind == "stores":
        return import_stores(db, path, on_error=on_error, progress=progress)
    if kind == "products":
        return import_products(db, path, on_error=on_error, progress=progress)
    if kind == "customers":
        return import_customers(db, path, threshold=threshold, on_error=on_error, progress=progress)
    if kind == "orders":
        return import_orders(db, path, on_error=on_error, progress=progress)
    if kind == "web_events":
        from sync_server.services.web_events import import_web_events

        return import_web_events(
            db, path, threshold=threshold, on_error=on_error, progress=progress
        )
    raise InvalidInput(f"Unknown import kind {kind!r}; expected one of {', '.join(IMPORT_KINDS)}")
