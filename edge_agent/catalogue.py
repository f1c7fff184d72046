"""The till's view of the catalogue: products, prices and recommendation lists, read locally.

Everything here reads the local store that HQ's change feed fills (``edge_agent.feed``); the
till never writes the catalogue itself.

The scan path is the hot path (target: scan + basket update + suggestions for a 20-line basket
in 2 ms at the 99th percentile, with 200k products and 2M recommendation rows), so:

- a barcode is one primary-key lookup: ``barcodes`` (14-digit GTIN -> SKU) joined to
  ``products`` and to the two candidate ``prices`` rows (this store's and the chain-wide one) in
  one prepared statement;
- recommendation lists and product names are cached per reader connection. The cache is
  dropped as soon as anything else commits to the database (``PRAGMA data_version`` changes),
  so a feed page applied by the sync thread is visible at the next scan. Lists are kept as
  plain ``(sku, score, reason)`` tuples, not models: a model per cached item costs the garbage
  collector objects to walk at every collection, and those collections set the scan's tail.
  For the same reason a full list cache (a few hundred lists: the sale engine's ranker keeps
  the basket's own) makes room one list at a time, oldest first: a till scanning all day keeps
  a cache of constant size instead of a heap of new objects after every scan.
  ``suggestion_sources`` hands a scan its names and lists behind one cache check, with a
  ``generation`` that changes whenever the cache is dropped, so the sale engine's ranker asks
  again only for the lists of items new to the basket;
- nothing on the scan path scans a table.

Price rules: a ``prices`` row for this store that is valid now overrides a chain-wide row
(``store_id = '*'``) valid now, which overrides the product's list price. A row is valid from
``valid_from`` (inclusive) to ``valid_to`` (exclusive); a missing bound is open. For items sold
by weight the price is per kilogram.

A product whose feed data says ``"active": false`` is treated as unknown: it cannot be scanned,
searched or suggested.

Search uses the FTS5 index over name, brand, SKU and barcodes. The cashier's text is split into
words and each word becomes a quoted prefix term (``"choc"*``), so quotes, ``*``, ``-``, ``AND``
or ``NEAR`` typed by a person are only ever words, never FTS syntax: search never raises on odd
input. A query made only of digits also matches barcode and SKU prefixes (a cashier typing the
first digits printed under a barcode), whether they typed the EAN-13, the UPC-A or the 14-digit
form.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from edge_agent.store import LocalStore
from edge_agent.suggestions import ItemTuple
from shared.errors import InvalidInput
from shared.recommendations import RecommendedItem
from shared.wire import utc_now

log = logging.getLogger(__name__)

__all__ = ["Catalogue", "CatalogueItem"]

_ITEMS = TypeAdapter(tuple[RecommendedItem, ...])
_ITEM_KEYS = frozenset(RecommendedItem.model_fields)
_MAX_SKU = 64  # shared.wire.Sku
_EXACT_INT = 2**53  # larger whole scores are left to the model
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # shared.wire refuses them in a SKU

# Columns 0-8 make the item, 9-14 the two candidate price rows, 15 the active flag.
_SELECT_ITEM = """
SELECT p.sku, p.name, p.brand, p.category, p.price_minor, p.currency, p.tax_rate,
       p.variable_measure, p.item_reference,
       s.price_minor, s.valid_from, s.valid_to,
       c.price_minor, c.valid_from, c.valid_to,
       json_extract(p.data, '$.active')
FROM {source}
LEFT JOIN prices s ON s.sku = p.sku AND s.store_id = ?
LEFT JOIN prices c ON c.sku = p.sku AND c.store_id = '*'
"""
_BY_GTIN = _SELECT_ITEM.format(source="barcodes b JOIN products p ON p.sku = b.sku") + (
    "WHERE b.gtin = ?"
)
_BY_SKU = _SELECT_ITEM.format(source="products p") + "WHERE p.sku = ?"
_BY_ITEM_REFERENCE = (
    _SELECT_ITEM.format(source="products p") + "WHERE p.item_reference = ? ORDER BY p.sku LIMIT 1"
)
_SEARCH = _SELECT_ITEM.format(source="products_fts f JOIN products p ON p.rowid = f.rowid") + (
    "WHERE products_fts MATCH ? ORDER BY f.rank, p.sku LIMIT ?"
)
_BY_SKU_PREFIX = _SELECT_ITEM.format(source="products p") + (
    "WHERE p.sku >= ? AND p.sku < ? ORDER BY p.sku LIMIT ?"
)
_BY_GTIN_PREFIX = _SELECT_ITEM.format(source="barcodes b JOIN products p ON p.sku = b.sku") + (
    "WHERE b.gtin >= ? AND b.gtin < ? ORDER BY b.gtin LIMIT ?"
)
_LIST = "SELECT items FROM recommendations WHERE kind = ? AND key = ?"
_NAME = "SELECT name, json_extract(data, '$.active') FROM products WHERE sku = ?"
_ALIAS = "SELECT customer_id FROM customer_aliases WHERE old_id = ?"
#: The store id of HQ's chain-wide lists (``sync_server.services.feed.ALL_STORES``).
_ALL_STORES = "*"

# Words for the full-text query: runs of letters and digits in any script.
_WORDS = re.compile(r"\w+", re.UNICODE)
_DIGITS = re.compile(r"[0-9]+")
# Bounds on what the caches hold: names are dropped wholesale (simple and O(1), and a name is not
# an object the garbage collector tracks); lists make room one at a time, oldest first. The sale
# engine's ranker keeps the basket's own lists, so the catalogue's need not hold a whole basket.
_MAX_CACHED_LISTS = 256
_MAX_CACHED_NAMES = 32768
#: Numbers the caches' contents: two caches, or one cache before and after it was dropped, never
#: share one (see ``_LazyLists.generation``).
_GENERATIONS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """A sellable product as this till prices it now.

    ``price_minor`` is the resolved price (store price, chain price or list price); per
    kilogram when ``variable_measure`` is ``"weight"``. ``tax_rate`` is a percentage.
    """

    sku: str
    name: str
    brand: str
    category: str
    price_minor: int
    currency: str
    tax_rate: Decimal
    variable_measure: str | None
    item_reference: str | None


@dataclass(slots=True)
class _Cache:
    """Per-thread cache, valid while its connection's ``data_version`` stays the same."""

    conn_id: int = 0
    version: int = -1
    generation: int = 0  # new (from _GENERATIONS) each time the cache is dropped
    # Oldest first: when full, the oldest list makes room (see ``Catalogue._list``).
    lists: OrderedDict[tuple[str, str], tuple[ItemTuple, ...]] = field(default_factory=OrderedDict)
    names: dict[str, str | None] = field(default_factory=dict)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        log.warning("ignoring a price bound that is not a timestamp: %r", text)
        return None


def _valid_at(valid_from: str | None, valid_to: str | None, now: datetime) -> bool:
    start, end = _parse_time(valid_from), _parse_time(valid_to)
    if start is not None and start.tzinfo is not None and now < start:
        return False
    return not (end is not None and end.tzinfo is not None and now >= end)


def _row_price(row: sqlite3.Row | tuple[Any, ...], clock: Callable[[], datetime]) -> int:
    """The price rules (see the module docstring) on a ``_SELECT_ITEM`` row; the time is asked
    for only when there is a price row to check (most products have none)."""
    price = int(row[4])
    if row[12] is None and row[9] is None:
        return price
    now = clock()
    if row[12] is not None and _valid_at(row[13], row[14], now):
        price = int(row[12])
    if row[9] is not None and _valid_at(row[10], row[11], now):
        price = int(row[9])
    return price


@lru_cache(maxsize=256, typed=True)
def _tax_rate(text: object) -> Decimal | None:
    """A product's tax rate column as a Decimal, None when it is not a number. A store has a
    handful of rates, so each is parsed once (Decimals are immutable: sharing them is safe)."""
    try:
        return Decimal(str(text))
    except ArithmeticError:
        return None


def _next_prefix(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _models(items: Iterable[ItemTuple]) -> list[RecommendedItem]:
    # Already validated when the list was read: no need to check the fields again.
    return [
        RecommendedItem.model_construct(sku=sku, score=score, reason=reason)
        for sku, score, reason in items
    ]


def _plain_items(data: list[Any]) -> tuple[ItemTuple, ...] | None:
    """Each item exactly as ``RecommendedItem`` would read it, or None when one needs the
    model's own judgement (coercion, stripping, or an error). One loop, and the check for
    control characters once, over all the SKUs together."""
    out: list[ItemTuple] = []
    append = out.append
    for item in data:
        if type(item) is not dict or not _ITEM_KEYS.issuperset(item):
            return None
        sku, score, reason = item.get("sku"), item.get("score"), item.get("reason")
        if type(sku) is not str or not 0 < len(sku) <= _MAX_SKU or sku != sku.strip():
            return None
        if type(score) is float:
            if not 0 <= score < math.inf:
                return None
        elif type(score) is int and 0 <= score <= _EXACT_INT:
            score = float(score)
        else:
            return None
        if reason is not None and (type(reason) is not str or reason != reason.strip()):
            return None
        append((sku, score, reason))
    if out and _CONTROL.search("".join([sku for sku, _, _ in out])):
        return None
    return tuple(out)


#: The JSON scanner alone (``json.loads`` without its layers): what a list's text starts with.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def parse_list(text: str | bytes) -> tuple[ItemTuple, ...]:
    """A recommendation list's JSON as ``(sku, score, reason)`` tuples, checked as HQ's
    ``RecommendedItem`` s; raises ``ValidationError`` (or ``TypeError``) as the model does.

    A new list is read on most scans (the newest item's), so the plain case (items exactly as HQ
    writes them, the text one JSON array and nothing else) is checked here, several times faster
    than building and dropping a model per item; anything else goes through the model itself,
    which decides.
    """
    data: Any = None
    if type(text) is str:
        try:
            data, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            data, end = None, 0  # the model says what is wrong with it
        if end != len(text):
            data = None  # text after the array, or spaces around it: the model judges
    if type(data) is list:
        plain = _plain_items(data)
        if plain is not None:
            return plain
    return tuple([(i.sku, i.score, i.reason) for i in _ITEMS.validate_json(text)])


def fts_query(text: str) -> str | None:
    """An FTS5 query that matches every word of ``text`` as a prefix; None when it has none.

    Each word is a quoted string (a double quote inside is doubled), so nothing a person types
    is read as FTS5 syntax.
    """
    words = _WORDS.findall(text)
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words[:16])


class _LazyNames(Mapping[str, str]):
    """Names looked up when first asked for, through one cache (see ``Catalogue.lazy_names``)."""

    def __init__(self, catalogue: Catalogue, cache: _Cache) -> None:
        self._catalogue = catalogue
        self._cache = cache

    def __getitem__(self, sku: str) -> str:
        name: str | None = self.get(sku)
        if name is None:
            raise KeyError(sku)
        return name

    def get(self, sku: str, default: Any = None) -> Any:
        # Mapping.get would go through __getitem__ and a KeyError: this runs on every scan.
        name = self._catalogue._name(self._cache, sku)
        return default if name is None else name

    def __iter__(self) -> Iterator[str]:
        return (sku for sku, name in self._cache.names.items() if name is not None)

    def __len__(self) -> int:
        return sum(1 for name in self._cache.names.values() if name is not None)


class _LazyLists(Mapping[str, tuple[ItemTuple, ...]]):
    """Also-bought lists read when first asked for, through one cache (see
    ``Catalogue.suggestion_sources``); a SKU without a list has an empty one.

    ``generation`` identifies what the lists say: while it stays the same nothing was committed
    to the store, so a list asked for again says the same (``BasketRanker`` then keeps the lists
    it holds without asking again)."""

    __slots__ = ("_cache", "_catalogue", "generation")

    def __init__(self, catalogue: Catalogue, cache: _Cache) -> None:
        self._catalogue = catalogue
        self._cache = cache
        self.generation = cache.generation

    def __getitem__(self, sku: str) -> tuple[ItemTuple, ...]:
        found = self._cache.lists.get(("also_bought", sku))
        return (
            found if found is not None else self._catalogue._list(self._cache, "also_bought", sku)
        )

    def get(self, sku: str, default: Any = None) -> Any:
        # Mapping.get would go through a try/except: this runs for every basket item it is asked.
        found = self._cache.lists.get(("also_bought", sku))
        return (
            found if found is not None else self._catalogue._list(self._cache, "also_bought", sku)
        )

    def __iter__(self) -> Iterator[str]:
        return (key for kind, key in self._cache.lists if kind == "also_bought")

    def __len__(self) -> int:
        return sum(1 for kind, _ in self._cache.lists if kind == "also_bought")


class Catalogue:
    """Read-only catalogue lookups for one store's till."""

    def __init__(
        self,
        store: LocalStore,
        *,
        store_id: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self.store_id = store_id
        self._clock = clock
        self._local = threading.local()

    # -- products ------------------------------------------------------------------------------

    def by_gtin(self, gtin14: str) -> CatalogueItem | None:
        """The product with this 14-digit GTIN (``Gtin.gtin14``), or None."""
        return self._one(_BY_GTIN, (self.store_id, gtin14))

    def by_sku(self, sku: str) -> CatalogueItem | None:
        return self._one(_BY_SKU, (self.store_id, sku))

    def by_item_reference(self, ref: str) -> CatalogueItem | None:
        """The weighed or priced item whose scale labels carry ``ref``, or None."""
        return self._one(_BY_ITEM_REFERENCE, (self.store_id, ref))

    def search(self, text: str, *, limit: int = 20) -> list[CatalogueItem]:
        """Products matching what a cashier typed, best first; never raises on odd text."""
        if limit < 1 or not isinstance(text, str):
            return []
        text = text.strip()
        found: dict[str, CatalogueItem] = {}
        if _DIGITS.fullmatch(text):
            for item in self._digit_matches(text, limit):
                found.setdefault(item.sku, item)
        query = fts_query(text)
        if query is not None and len(found) < limit:
            for item in self._many(_SEARCH, (self.store_id, query, limit)):
                found.setdefault(item.sku, item)
        return list(found.values())[:limit]

    def _digit_matches(self, digits: str, limit: int) -> list[CatalogueItem]:
        items = self._many(_BY_SKU_PREFIX, (self.store_id, digits, _next_prefix(digits), limit))
        if len(digits) <= 14:
            # A GTIN-14, an EAN-13 (one leading zero), a UPC-A (two) or an EAN-8 (six).
            prefixes = dict.fromkeys(
                p for p in (digits, "0" + digits, "00" + digits, "000000" + digits) if len(p) <= 14
            )
            for prefix in prefixes:
                items += self._many(
                    _BY_GTIN_PREFIX, (self.store_id, prefix, _next_prefix(prefix), limit)
                )
        return items

    def names(self, skus: Iterable[str]) -> dict[str, str]:
        """Names of the given SKUs that exist (and are active) here."""
        cache = self._cache()
        out: dict[str, str] = {}
        missing: list[str] = []
        for sku in dict.fromkeys(skus):
            if sku in cache.names:
                name = cache.names[sku]
                if name is not None:
                    out[sku] = name
            else:
                missing.append(sku)
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._store.query(
                f"SELECT sku, name, json_extract(data, '$.active') FROM products "
                f"WHERE sku IN ({marks})",
                chunk,
            )
            got = {str(r[0]): str(r[1]) for r in rows if r[2] != 0}
            for sku in chunk:
                self._remember_name(cache, sku, got.get(sku))
            out.update(got)
        return out

    def name_of(self, sku: str) -> str | None:
        """The name of one SKU (cached), or None when the till does not sell it."""
        return self._name(self._cache(), sku)

    def suggestion_sources(self) -> tuple[Mapping[str, str], Mapping[str, tuple[ItemTuple, ...]]]:
        """Names and also-bought lists, each looked up when first asked for, behind one cache
        check: what one scan's suggestions need (use them for that scan, then drop them). The
        lists carry a ``generation`` (see ``_LazyLists``)."""
        cache = self._cache()
        return _LazyNames(self, cache), _LazyLists(self, cache)

    def price_of(self, sku: str) -> int | None:
        """``by_sku(sku).price_minor`` (None when that is None) without building the item: the
        price of each suggestion shown, on the scan path."""
        row = self._store.query_one(_BY_SKU, (self.store_id, sku))
        if row is None or row[15] == 0 or _tax_rate(row[6]) is None:
            if row is not None and row[15] != 0:
                log.error("product %s has a tax rate that is not a number: %r", row[0], row[6])
            return None
        return _row_price(row, self._clock)

    def lazy_names(self) -> Mapping[str, str]:
        """Names of the SKUs the till sells, each looked up when first asked for (what
        ``suggest_for_basket`` wants). The cache is checked once, here: use the mapping for one
        piece of work (a scan's suggestions), then drop it."""
        return _LazyNames(self, self._cache())

    def _name(self, cache: _Cache, sku: str) -> str | None:
        if sku in cache.names:
            return cache.names[sku]
        row = self._store.query_one(_NAME, (sku,))
        name = str(row[0]) if row is not None and row[1] != 0 else None
        self._remember_name(cache, sku, name)
        return name

    # -- recommendation lists ------------------------------------------------------------------

    def also_bought(self, sku: str) -> list[RecommendedItem]:
        """What people who bought ``sku`` also bought, best first (empty when HQ sent none)."""
        return _models(self._list(self._cache(), "also_bought", sku))

    def also_bought_for(self, skus: Iterable[str]) -> dict[str, tuple[ItemTuple, ...]]:
        """``also_bought`` for several SKUs at once, as ``(sku, score, reason)`` tuples: the scan
        path's form (one cache check for all, no objects made).

        The lists are the cache's own tuples, the same objects at every call until the cache is
        dropped (``suggest_for_basket`` remembers its work on a list by that identity).
        """
        cache = self._cache()
        return {sku: self._list(cache, "also_bought", sku) for sku in dict.fromkeys(skus)}

    def personal(self, customer_id: str) -> list[RecommendedItem]:
        """HQ's personal list for a customer (following a merge to the surviving customer)."""
        return _models(self.personal_for(customer_id))

    def personal_for(self, customer_id: str) -> tuple[ItemTuple, ...]:
        """:meth:`personal` as the cache's ``(sku, score, reason)`` tuples (the scan path's)."""
        cache = self._cache()
        items = self._list(cache, "personal", customer_id)
        if not items:
            alias = self._store.query_one(_ALIAS, (customer_id,))
            if alias is not None and str(alias[0]) != customer_id:
                items = self._list(cache, "personal", str(alias[0]))
        return items

    def bestsellers(self, category: str | None = None) -> list[RecommendedItem]:
        """This store's bestsellers in ``category`` (key ``store_id/category``), or overall
        (key ``store_id/*``) when no category is given."""
        key = f"{self.store_id}/{category or '*'}"
        return _models(self._list(self._cache(), "bestsellers", key))

    def trending(
        self, category: str | None = None, *, limit: int | None = None, store_id: str | None = None
    ) -> list[RecommendedItem]:
        """What sells clearly more than usual lately, best first: the store's trending list in
        ``category`` (key ``store_id/category``), or overall (key ``store_id/*``).

        A store with nothing trending of its own (no list, or an empty one: HQ sends an empty
        list when a category stops trending) gets the chain's (key ``*/category``), as HQ's
        ``/stores/{store}/trending`` answers. ``store_id`` defaults to this till's store (``*``:
        the chain's list only); ``limit`` keeps the first items (None: all)."""
        if limit is not None and limit < 0:
            raise InvalidInput(f"A trending list cannot be cut to {limit} items (0 or more)")
        store = self.store_id if store_id is None else store_id
        cache = self._cache()
        items = self._list(cache, "trending", f"{store}/{category or '*'}")
        if not items and store != _ALL_STORES:
            items = self._list(cache, "trending", f"{_ALL_STORES}/{category or '*'}")
        return _models(items if limit is None else items[:limit])

    # -- internals -----------------------------------------------------------------------------

    def _row_item(
        self, row: sqlite3.Row | tuple[Any, ...], clock: Callable[[], datetime]
    ) -> CatalogueItem | None:
        if row[15] == 0:
            return None
        rate = _tax_rate(row[6])
        if rate is None:
            log.error("product %s has a tax rate that is not a number: %r", row[0], row[6])
            return None
        return CatalogueItem(
            sku=str(row[0]),
            name=str(row[1]),
            brand=str(row[2] or ""),
            category=str(row[3] or ""),
            price_minor=_row_price(row, clock),
            currency=str(row[5]),
            tax_rate=rate,
            variable_measure=row[7],
            item_reference=row[8],
        )

    def _one(self, sql: str, params: tuple[Any, ...]) -> CatalogueItem | None:
        row = self._store.query_one(sql, params)
        return None if row is None else self._row_item(row, self._clock)

    def _many(self, sql: str, params: tuple[Any, ...]) -> list[CatalogueItem]:
        now = self._clock()
        items = (self._row_item(row, lambda: now) for row in self._store.query(sql, params))
        return [item for item in items if item is not None]

    def _cache(self) -> _Cache:
        cache: _Cache | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = _Cache()
        conn = self._store.reader
        row = self._store.query_one("PRAGMA data_version")
        version = int(row[0]) if row is not None else 0
        if cache.conn_id != id(conn) or cache.version != version:
            # Something else committed (a feed page, a sale): lists may have changed.
            cache.conn_id, cache.version = id(conn), version
            cache.generation = next(_GENERATIONS)
            cache.lists.clear()
            cache.names.clear()
        return cache

    @staticmethod
    def _remember_name(cache: _Cache, sku: str, name: str | None) -> None:
        if len(cache.names) >= _MAX_CACHED_NAMES:
            cache.names.clear()
        cache.names[sku] = name

    def _list(self, cache: _Cache, kind: str, key: str) -> tuple[ItemTuple, ...]:
        cached = cache.lists.get((kind, key))
        if cached is not None:
            return cached
        row = self._store.query_one(_LIST, (kind, key))
        items: tuple[ItemTuple, ...] = ()
        if row is not None:
            try:
                items = parse_list(row[0])
            except ValidationError:
                # One bad list from HQ must not stop the till from selling.
                log.warning("ignoring a malformed %s list for %s", kind, key)
            except (TypeError, json.JSONDecodeError):
                log.warning("ignoring an unreadable %s list for %s", kind, key)
        if len(cache.lists) >= _MAX_CACHED_LISTS:
            # One out for one in, the oldest first: a till scanning all day keeps a cache of
            # constant size, so the garbage collector does not find a dozen new objects after
            # every scan (its young collections, and their pauses, then come far less often).
            # A basket's lists may leave: the ranker holds them while nothing is committed.
            cache.lists.popitem(last=False)
        cache.lists[(kind, key)] = items
        return items
