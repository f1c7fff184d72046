"""The HQ schema, identical on SQLite and PostgreSQL.

SQLAlchemy Core, not the ORM: ingest and the change feed move tens of thousands of rows a second
and want plain ``executemany`` inserts. JSON documents are stored as text we serialize ourselves,
so the change feed can hand them to tills without parsing them again.

Every timestamp is UTC (``UtcDateTime`` refuses naive values going in and marks values coming
out of SQLite as UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on both engines."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store UTC timestamps only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - raw SQLite text
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Uuid = sa.Uuid(as_uuid=True)
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

stores = sa.Table(
    "stores",
    metadata,
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

tills = sa.Table(
    "tills",
    metadata,
    sa.Column("till_id", sa.String(64), primary_key=True),
    sa.Column("store_id", sa.String(64), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("enrolled_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("last_seq", BigInt, nullable=False, server_default="0"),
    sa.Column("last_seen_at", UtcDateTime),
    sa.Column("backlog", sa.Integer, nullable=False, server_default="0"),
)

#: Every op a till pushed and HQ stored or rejected; the primary key makes ingest exactly-once.
ops = sa.Table(
    "ops",
    metadata,
    sa.Column("op_id", Uuid, primary_key=True),
    sa.Column("till_id", sa.String(64), nullable=False),
    sa.Column("seq", BigInt, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("till_id", "seq"),
)

#: Ops that reused a seq with an unknown op_id: a till restored from an old backup.
quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("op_id", Uuid, primary_key=True),
    sa.Column("till_id", sa.String(64), nullable=False, index=True),
    sa.Column("seq", BigInt, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("category", sa.String(200), nullable=False, server_default=""),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime),
)

product_barcodes = sa.Table(
    "product_barcodes",
    metadata,
    sa.Column("gtin", sa.String(14), primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False, index=True),
)

#: Orders of every channel: till sales (channel "store"), web-shop and imported orders.
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", Uuid, primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("store_id", sa.String(64)),
    sa.Column("till_id", sa.String(64)),
    sa.Column("customer_id", Uuid, index=True),
    sa.Column("profile_id", Uuid),
    sa.Column("receipt_number", sa.String(64)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total_minor", BigInt, nullable=False),
    sa.Column("tax_minor", BigInt, nullable=False, server_default="0"),
    sa.Column("payload", sa.Text),
    sa.Column("ingested_at", UtcDateTime, nullable=False),
    sa.Index("ix_orders_store_created", "store_id", "created_at"),
    # The recommendations worker reads orders from its watermark on, in this order.
    sa.Index("ix_orders_ingested", "ingested_at", "order_id"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", Uuid, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False, index=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("amount_minor", BigInt, nullable=False),
)

returns = sa.Table(
    "returns",
    metadata,
    sa.Column("return_id", Uuid, primary_key=True),
    sa.Column("original_sale_id", Uuid, nullable=False, index=True),
    sa.Column("store_id", sa.String(64), nullable=False),
    sa.Column("till_id", sa.String(64), nullable=False),
    sa.Column("customer_id", Uuid, index=True),  # 0006: every card sums the customer's returns
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("total_minor", BigInt, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("ingested_at", UtcDateTime, nullable=False),
)

#: A customer record as it came in (an import row, a till's provisional customer, a web
#: visitor). ``customer_id`` is the customer it currently belongs to: merges re-point it, and an
#: undone merge points it back. The customer is the profile whose id equals its customer_id.
profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("profile_id", Uuid, primary_key=True),
    sa.Column("customer_id", Uuid, nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("home_store", sa.String(64)),
    sa.Column("attributes", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("erased_at", UtcDateTime),
)

#: Which profile claimed which normalized identifier ("kind:value" split in two columns).
identifiers = sa.Table(
    "identifiers",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(320), primary_key=True),
    sa.Column("profile_id", Uuid, primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_identifiers_profile", "profile_id"),
)

#: Identifiers claimed by too many distinct profiles (a shop's own email typed for customers):
#: they never merge customers and never identify one at the till.
shared_identifiers = sa.Table(
    "shared_identifiers",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(320), primary_key=True),
    sa.Column("claims", sa.Integer, nullable=False),
    sa.Column("flagged_at", UtcDateTime, nullable=False),
)

#: Append-only record of every merge and unmerge; replaying it rebuilds profiles.customer_id.
merges = sa.Table(
    "merges",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("action", sa.String(8), nullable=False),
    sa.Column("winner", Uuid, nullable=False),
    sa.Column("loser", Uuid, nullable=False, index=True),
    sa.Column("via_kind", sa.String(16)),
    sa.Column("via_value", sa.String(320)),
    sa.Column("at", UtcDateTime, nullable=False),
)

#: Field-level last-writer-wins state of each customer (first_name, last_name, ...).
customer_fields = sa.Table(
    "customer_fields",
    metadata,
    sa.Column("profile_id", Uuid, primary_key=True),
    sa.Column("field", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("hlc", sa.String(96), nullable=False),
    sa.Column("writer", sa.String(64), nullable=False),
)

#: Values that lost a last-writer-wins race, kept for audit.
customer_field_history = sa.Table(
    "customer_field_history",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("profile_id", Uuid, nullable=False, index=True),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("value", sa.Text),
    sa.Column("hlc", sa.String(96), nullable=False),
    sa.Column("writer", sa.String(64), nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

consent_events = sa.Table(
    "consent_events",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("profile_id", Uuid, nullable=False, index=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
)

#: In-store and web events on the cross-channel timeline.
events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", Uuid, primary_key=True),
    sa.Column("profile_id", Uuid, index=True),
    sa.Column("anonymous_id", sa.String(200), index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("sku", sa.String(64)),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
)

#: Stores whose tills cache a customer's card (home store and stores where they bought).
customer_stores = sa.Table(
    "customer_stores",
    metadata,
    sa.Column("customer_id", Uuid, primary_key=True),
    sa.Column("store_id", sa.String(64), primary_key=True),
)

#: Customers whose card must be rebuilt and sent to tills. ``version`` grows each time the
#: customer changes again; a card worker takes a time-limited lease (``leased_until``), builds
#: the card outside any write lock and deletes the row only if the version is still the one it
#: built, so a change made meanwhile is never lost and a crashed worker's lease simply expires.
dirty_cards = sa.Table(
    "dirty_cards",
    metadata,
    sa.Column("customer_id", Uuid, primary_key=True),
    sa.Column("since", UtcDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("leased_until", UtcDateTime),
)

#: The change feed. One live row per (entity, key, scope): a newer change replaces the older
#: row, so a new till pulls current state, not history. ``txid`` is the writing transaction's
#: id on PostgreSQL (0 on SQLite) for a cursor that never skips a late commit. On SQLite the id
#: is AUTOINCREMENT: a plain rowid reuses the id of a deleted newest row, so a tombstone written
#: right after dropping a key's rows (erasure, merge) would land at or below cursors already
#: handed out, and tills would never see it.
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("txid", BigInt, nullable=False, server_default="0"),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(64), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),
    sa.Column("data", sa.Text),
    sa.Column("reason", sa.String(16)),
    sa.Column("merged_into", sa.String(200)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("entity", "key", "scope"),
    sa.Index("ix_changes_txid_id", "txid", "id"),
    sqlite_autoincrement=True,
)

#: Tombstones purged from the feed end here: a cursor below ``horizon`` must refetch (409).
feed_state = sa.Table(
    "feed_state",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", BigInt, nullable=False),
)

recommendation_lists = sa.Table(
    "recommendation_lists",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

#: Mails HQ sends for tills (receipts by email), one row per ``email_id`` made at the till, so a
#: retried op never queues a second mail. A worker claims due rows by pushing ``next_attempt_at``
#: past a lease, sends, then marks them ``sent``; a failed attempt backs off exponentially.
mail_queue = sa.Table(
    "mail_queue",
    metadata,
    sa.Column("email_id", Uuid, primary_key=True),
    sa.Column("message_id", sa.String(200), nullable=False, unique=True),
    sa.Column("to_address", sa.String(320), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime),
    sa.Index("ix_mail_queue_status_next", "status", "next_attempt_at"),
)

# -- recommendations (see sync_server/services/recs.py) ---------------------------------------

#: Forward-decayed number of baskets (orders of every channel) that held each SKU.
item_counts = sa.Table(
    "item_counts",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("weight", sa.Float, nullable=False),
)

#: Forward-decayed number of baskets that held both ``a`` and ``b``; both directions are stored
#: so that one product's partners are one primary-key range (``a = ?``).
item_pairs = sa.Table(
    "item_pairs",
    metadata,
    sa.Column("a", sa.String(64), primary_key=True),
    sa.Column("b", sa.String(64), primary_key=True),
    sa.Column("weight", sa.Float, nullable=False),
)

#: One row (``id`` 1): how far the counts have read ``orders`` (``ingested_at``, ``order_id``),
#: the decay's reference time and the decayed total of all baskets.
recs_state = sa.Table(
    "recs_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("watermark_at", UtcDateTime),
    sa.Column("watermark_order", Uuid),
    sa.Column("reference_at", UtcDateTime, nullable=False),
    sa.Column("total_weight", sa.Float, nullable=False, server_default="0"),
    sa.Column("rebuilt_at", UtcDateTime),
)

#: Products whose also-bought list must be recomputed; versions and leases as ``dirty_cards``.
dirty_items = sa.Table(
    "dirty_items",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("leased_until", UtcDateTime),
)

#: HQ's merchandising rules, applied on top of every computed list. ``kind`` is ``pin``,
#: ``boost`` or ``exclude``; a rule names a ``sku`` or a ``category``; a pin names the list it
#: applies to by ``target_sku`` (one product's list) or by ``category`` (the lists of every
#: product of that category).
merchandising_rules = sa.Table(
    "merchandising_rules",
    metadata,
    sa.Column("rule_id", Uuid, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("sku", sa.String(64)),
    sa.Column("category", sa.String(200)),
    sa.Column("target_sku", sa.String(64)),
    sa.Column("weight", sa.Float, nullable=False, server_default="1"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

#: Forward-decayed number of a store's baskets that held each SKU (its bestsellers), on the same
#: decay reference as ``item_counts``.
store_item_counts = sa.Table(
    "store_item_counts",
    metadata,
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("weight", sa.Float, nullable=False),
)

#: Baskets per store, UTC day (days since 1970-01-01) and SKU over the last weeks: what trending
#: compares. ``store_id`` ``*`` holds the whole chain's, web-shop orders included.
item_days = sa.Table(
    "item_days",
    metadata,
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("baskets", sa.Integer, nullable=False),
)

#: Lists other than also-bought waiting to be recomputed: ``kind`` ``store`` (key a store id or
#: ``*``: its bestsellers and trending lists) or ``personal`` (key a customer id). Versions and
#: leases as ``dirty_cards``.
dirty_lists = sa.Table(
    "dirty_lists",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("leased_until", UtcDateTime),
)
