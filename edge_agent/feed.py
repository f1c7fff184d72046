"""Applying HQ's change feed to the till's cache.

A page and its cursor are applied in ONE transaction: after a crash the till either has the
page and the new cursor, or neither, and simply pulls the page again (applying a page twice is
harmless: every change is a full upsert or a delete).

Tombstones: ``deleted`` removes the row; ``merged`` replaces a customer by the survivor (and
remembers the old id as an alias, so a sale or a screen that still holds the old id finds the
new card); ``erased`` removes every personal field the till holds for that customer, including
the customer reference of its own past sales.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import sqlite_utils

from edge_agent.store import LocalStore, dumps

log = logging.getLogger(__name__)

CURSOR_KEY = "pull_cursor"

#: Tables filled only from HQ's feed; cleared on a refetch (409). Never the outbox or sales.
DOWNSTREAM_TABLES = (
    "products",
    "barcodes",
    "prices",
    "store_config",
    "customers",
    "customer_identifiers",
    "customer_aliases",
    "recommendations",
)


def current_cursor(store: LocalStore) -> str | None:
    return store.get_state(CURSOR_KEY)


def apply_page(store: LocalStore, changes: Iterable[Mapping[str, Any]], cursor: str) -> int:
    """Apply one page of changes and store ``cursor``, all or nothing. Returns the count."""
    count = 0
    with store.transaction() as db:
        for change in changes:
            _apply_change(db, change)
            count += 1
        db.execute(
            "INSERT INTO sync_state(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [CURSOR_KEY, cursor],
        )
    return count


def reset_downstream(store: LocalStore) -> None:
    """Forget everything the feed gave us (HQ answered 409): the next pull starts over."""
    with store.transaction() as db:
        for table in DOWNSTREAM_TABLES:
            db.execute(f"DELETE FROM {table}")
        db.execute("DELETE FROM sync_state WHERE key = ?", [CURSOR_KEY])
    log.warning("change feed cursor expired: downstream cache cleared, refetching")


def _apply_change(db: sqlite_utils.Database, change: Mapping[str, Any]) -> None:
    entity = change["entity"]
    key = str(change["key"])
    if change["action"] == "upsert":
        data = change["data"] or {}
        handler = _UPSERTS.get(entity)
        if handler is None:
            log.debug("ignoring feed entity %s", entity)
            return
        handler(db, key, data)
        return
    reason = change.get("reason") or "deleted"
    if entity == "customer":
        if reason == "merged" and change.get("merged_into"):
            _merge_customer(db, key, str(change["merged_into"]))
        elif reason == "erased":
            _erase_customer(db, key)
        else:
            _delete_customer(db, key)
    elif entity == "product":
        db.execute("DELETE FROM products WHERE sku = ?", [key])
        db.execute("DELETE FROM barcodes WHERE sku = ?", [key])
    elif entity == "recommendation":
        kind, _, list_key = key.partition(":")
        db.execute("DELETE FROM recommendations WHERE kind = ? AND key = ?", [kind, list_key])
    elif entity in ("store", "config", "merchandising"):
        db.execute("DELETE FROM store_config WHERE key = ?", [f"{entity}:{key}"])
    elif entity == "price":
        sku, _, store_id = key.partition("@")
        db.execute("DELETE FROM prices WHERE sku = ? AND store_id = ?", [sku, store_id or "*"])


def _upsert_product(db: sqlite_utils.Database, key: str, data: dict[str, Any]) -> None:
    gtins = list(data.get("gtins") or [])
    db.execute(
        "INSERT INTO products(sku, name, brand, category, price_minor, currency, tax_rate, "
        "variable_measure, item_reference, barcodes, data) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(sku) DO UPDATE SET name=excluded.name, brand=excluded.brand, "
        "category=excluded.category, price_minor=excluded.price_minor, "
        "currency=excluded.currency, tax_rate=excluded.tax_rate, "
        "variable_measure=excluded.variable_measure, item_reference=excluded.item_reference, "
        "barcodes=excluded.barcodes, data=excluded.data",
        [
            key,
            data.get("name", key),
            data.get("brand", ""),
            data.get("category", ""),
            int(data.get("price_minor", 0)),
            data.get("currency", "EUR"),
            str(data.get("tax_rate", "0")),
            data.get("variable_measure"),
            data.get("item_reference"),
            " ".join(gtins),
            dumps(data),
        ],
    )
    db.execute("DELETE FROM barcodes WHERE sku = ?", [key])
    for gtin in gtins:
        db.execute("INSERT OR REPLACE INTO barcodes(gtin, sku) VALUES (?, ?)", [gtin, key])


def _upsert_customer(db: sqlite_utils.Database, key: str, data: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO customers(customer_id, first_name, last_name, provisional, card, updated_at)"
        " VALUES (?,?,?,0,?,?) ON CONFLICT(customer_id) DO UPDATE SET "
        "first_name=excluded.first_name, last_name=excluded.last_name, provisional=0, "
        "card=excluded.card, updated_at=excluded.updated_at",
        [
            key,
            data.get("first_name", ""),
            data.get("last_name", ""),
            dumps(data),
            data.get("updated_at"),
        ],
    )
    db.execute("DELETE FROM customer_identifiers WHERE customer_id = ?", [key])
    for ident in data.get("identifiers") or []:
        db.execute(
            "INSERT OR REPLACE INTO customer_identifiers(kind, value, customer_id) VALUES (?,?,?)",
            [ident["kind"], ident["value"], key],
        )


def _upsert_recommendation(db: sqlite_utils.Database, key: str, data: dict[str, Any]) -> None:
    kind, _, list_key = key.partition(":")
    items = data.get("items", data if isinstance(data, list) else [])
    db.execute(
        "INSERT OR REPLACE INTO recommendations(kind, key, items) VALUES (?, ?, ?)",
        [data.get("kind", kind), data.get("key", list_key), dumps(items)],
    )


def _upsert_price(db: sqlite_utils.Database, key: str, data: dict[str, Any]) -> None:
    db.execute(
        "INSERT OR REPLACE INTO prices(sku, store_id, price_minor, valid_from, valid_to) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            data["sku"],
            data.get("store_id") or "*",
            int(data["price_minor"]),
            data.get("valid_from"),
            data.get("valid_to"),
        ],
    )


def _upsert_config(entity: str) -> Any:
    def upsert(db: sqlite_utils.Database, key: str, data: dict[str, Any]) -> None:
        db.execute(
            "INSERT OR REPLACE INTO store_config(key, data) VALUES (?, ?)",
            [f"{entity}:{key}", dumps(data)],
        )

    return upsert


_UPSERTS = {
    "product": _upsert_product,
    "customer": _upsert_customer,
    "recommendation": _upsert_recommendation,
    "price": _upsert_price,
    "store": _upsert_config("store"),
    "config": _upsert_config("config"),
    "merchandising": _upsert_config("merchandising"),
}


def _delete_customer(db: sqlite_utils.Database, key: str) -> None:
    db.execute("DELETE FROM customers WHERE customer_id = ?", [key])
    db.execute("DELETE FROM customer_identifiers WHERE customer_id = ?", [key])
    db.execute("DELETE FROM recommendations WHERE kind = 'personal' AND key = ?", [key])


def _merge_customer(db: sqlite_utils.Database, old: str, new: str) -> None:
    _delete_customer(db, old)
    db.execute(
        "INSERT OR REPLACE INTO customer_aliases(old_id, customer_id) VALUES (?, ?)", [old, new]
    )
    # Anything that pointed at the old id (earlier aliases) now points at the survivor.
    db.execute("UPDATE customer_aliases SET customer_id = ? WHERE customer_id = ?", [new, old])


def _erase_customer(db: sqlite_utils.Database, key: str) -> None:
    _delete_customer(db, key)
    db.execute("DELETE FROM customer_aliases WHERE customer_id = ? OR old_id = ?", [key, key])
    rows = db.execute("SELECT sale_id, payload FROM sales WHERE customer_id = ?", [key]).fetchall()
    for sale_id, payload in rows:
        data = json.loads(payload)
        data["customer_id"] = None
        data["customer_identifier"] = None
        db.execute(
            "UPDATE sales SET customer_id = NULL, payload = ? WHERE sale_id = ?",
            [dumps(data), sale_id],
        )
