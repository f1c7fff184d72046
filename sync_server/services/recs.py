"""Recommendation lists at HQ: counted from every channel's orders, kept current, sent to tills.

What is counted
    Every order (till sales, web-shop orders, imported history) is one *basket*: the set of
    SKUs on its lines. ``item_counts`` holds, per SKU, the number of baskets that held it and
    ``item_pairs`` the number that held both ``a`` and ``b`` (both directions, so a product's
    partners are one key range); ``store_item_counts`` the same per store (bestsellers).
    Counts are *forward-decayed*: a basket made at ``t`` counts ``2 ** ((t - reference) /
    half_life)`` (``recommender.decay_weight``), so a new basket only adds to the counts — old
    ones never need re-weighting — and every ratio the scores use weighs recent baskets more.
    ``item_days`` counts baskets per store, UTC day and SKU over the last weeks (plain counts,
    for trending; store ``*`` is the whole chain with web orders). ``recs_state`` keeps the
    decayed total of all baskets, the decay's reference time and the *watermark*: the last
    order (by ``ingested_at``, then ``order_id``) already counted.

The lists (kind, key; scope on the feed)
    ``also_bought``, ``<sku>``, every store
        ``recommender.pair_scores`` over the pair counts, the one normalization (chosen by
        measurement, see ``recommender``); below its minimum support a pair scores nothing.
    ``bestsellers``, ``<store>/<category or *>``, that store
        The store's decayed basket counts (plus a small share of the chain's, so a new store
        or a thin category still has a list).
    ``trending``, ``<store or *>/<category or *>``, that store (``*``: every store)
        Items selling clearly more in the last week than in the four weeks before, with a
        minimum support (``recommender.trending_scores``, ``TrendConfig``).
    ``personal``, ``<customer id>``, the stores whose tills cache the customer
        From the customer's purchases and web browsing (see *Personal lists* below).

Personal lists
    A customer's history weighs each product by the decayed weight of their baskets that held
    it, plus ``BROWSE_WEIGHTS`` (a view 0.25, a cart add 0.5) for each web event on it in the
    last ``BROWSE_DAYS``, decayed the same way. Candidates score the history-weighted sum of
    the also-bought scores of the history's products; a product browsed and not bought also
    scores its own browsing weight (interest shown is the strongest signal there is: the shirt
    left in the cart online). Never listed: the chain's *staples* (``STAPLE_SHARE`` of all
    baskets: milk, bread; bought anyway, by habit) and anything the customer has bought
    (their repeat purchases happen without a recommendation; the list is for discovery).
    Short lists are filled with the chain's bestsellers under the same exclusions; a customer
    without any history has no list of their own and the API answers their home store's
    bestsellers (cold start).

Staying current
    ``update_incremental`` (a background loop of every server process, every
    ``recs_worker_interval_s``):

    1. In one write transaction, the orders ingested since the watermark (at most
       ``BATCH_ORDERS``, and only those older than ``SETTLE``: a push transaction stamps
       ``ingested_at`` before it commits) are added to the counts with SQL upserts, the
       watermark moves and their SKUs are marked dirty (``dirty_items``, versioned), and so
       are their stores and customers (``dirty_lists``). On PostgreSQL the state row is locked
       ``SKIP LOCKED``: one process counts a batch, the others go on to step 2.
    2. Dirty SKUs are leased in batches (as customer cards are, see ``cards``), their lists are
       recomputed from their ``item_pairs`` rows with reads only, and in a last short
       transaction each list whose items changed is written to ``recommendation_lists`` and
       the change feed (entity ``recommendation``, key ``also_bought:<sku>``, every store) —
       lists that came out the same are not sent again. A SKU dirtied again meanwhile keeps
       its row and is recomputed next round.

    ``refresh_dirty_lists`` (another loop, every ``recs_lists_interval_s``) does step 2 for
    ``dirty_lists``: a dirty store gets its bestsellers and trending lists recomputed, a dirty
    customer (an order, or web events through ``web_events``) their personal list. Again only
    the lists that changed go on the feed. A sale thus reaches every till's also-bought lists
    about ``SETTLE`` plus two worker intervals after it is ingested, and its store's
    bestsellers and trending lists and its customer's personal list within one more lists
    interval. Only the lists of the basket's own SKUs are recomputed; other lists that merely
    mention them drift until their own SKUs sell or the next rebuild.

The full rebuild (``rebuild``, ``omnitill admin rebuild-recs``, e.g. nightly)
    Recounts everything with sparse matrices from a snapshot of the orders, writes the new
    counts into staging tables (``<table>_next``) in transactions of ``STAGE_ROWS`` rows,
    publishes every list that changed, then swaps the staging tables in by renaming them in
    one short transaction that also resets the watermark to the snapshot, so orders counted
    meanwhile by the incremental loop are counted again into the new tables. Ingest thus
    never waits for the rebuild longer than one of those short transactions.

Merchandising rules (``merchandising_rules``) apply on top of every list HQ serves or sends:
``exclude`` drops a product or a whole category from every list, ``boost`` multiplies its
score by ``weight``, ``pin`` puts a product first in one product's list (``target_sku``) or in
the lists of every product of a category. A rule change marks every also-bought list and every
store's lists dirty; personal lists follow at the customer's next purchase or the next rebuild.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shared.errors import Conflict, InvalidInput, NotFound
from shared.recommendations import RecommendationList
from shared.wire import utc_now
from sync_server.db.bulk import bulk_add
from sync_server.db.engine import Database
from sync_server.db.schema import (
    customer_stores,
    dirty_items,
    dirty_lists,
    events,
    item_counts,
    item_days,
    item_pairs,
    merchandising_rules,
    order_lines,
    orders,
    products,
    profiles,
    recommendation_lists,
    recs_state,
    store_item_counts,
    stores,
)
from sync_server.services import feed, identity, recommender
from sync_server.services.recommender import (
    RecsConfig,
    TrendConfig,
    decay_weight,
    pair_scores,
    trending_scores,
)

log = logging.getLogger(__name__)

#: Orders younger than this are left for the next round: their transaction may still commit
#: orders stamped earlier.
SETTLE = timedelta(seconds=2)
#: Most orders counted in one incremental transaction.
BATCH_ORDERS = 5000
#: ... while tills are pushing: on SQLite the counts' write holds the write lock pushes wait
#: for, about 0.1 ms an order in one process (28 count upserts for a basket of four: a dozen
#: pairs, the items, their store's and their day's counts), more under load; 100 orders keep
#: a push's wait behind it in the tens of milliseconds.
BATCH_ORDERS_BUSY = 100
#: Dirty SKUs recomputed per lease, and how long a worker may hold them.
DIRTY_BATCH = 500
LEASE = timedelta(seconds=60)
#: Candidates kept per list before rules, as a multiple of the list's length: rules may exclude
#: some and boost others past those above them.
CANDIDATES = 3
#: Share of the chain's sales added to a store's own in its bestsellers (cold start).
CHAIN_PRIOR = 0.05
#: Dirty lists recomputed per lease (stores or customers).
DIRTY_LISTS_BATCH = 200
ALSO_BOUGHT = "also_bought"
BESTSELLERS = "bestsellers"
TRENDING = "trending"
PERSONAL = "personal"
RULE_KINDS = ("pin", "boost", "exclude")
#: ``dirty_lists`` kinds: a store's bestsellers and trending lists, a customer's personal list.
DIRTY_STORE = "store"
DIRTY_PERSONAL = "personal"
#: Web events that count as interest in a product, and what each weighs in a customer's
#: history next to a purchase (1 per basket).
BROWSE_WEIGHTS: dict[str, float] = {"Product Viewed": 0.25, "Product Added": 0.5}
#: Browsing older than this no longer shapes the personal list.
BROWSE_DAYS = 90
#: Rows per transaction when a rebuild fills its staging tables or drops the old ones.
STAGE_ROWS = 50_000
_STATE_ID = 1


def default_config() -> RecsConfig:
    return RecsConfig()


# ---------------------------------------------------------------------------------------------
# Merchandising rules


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    rule_id: UUID
    kind: str
    sku: str | None
    category: str | None
    target_sku: str | None
    weight: float
    active: bool
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "rule_id": str(self.rule_id),
            "kind": self.kind,
            "sku": self.sku,
            "category": self.category,
            "target_sku": self.target_sku,
            "weight": self.weight,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True)
class Merchandising:
    """The active rules, indexed for applying them to many lists."""

    excluded_skus: set[str] = field(default_factory=set)
    excluded_categories: set[str] = field(default_factory=set)
    boost_skus: dict[str, float] = field(default_factory=dict)
    boost_categories: dict[str, float] = field(default_factory=dict)
    pins_by_sku: dict[str, list[str]] = field(default_factory=dict)
    pins_by_category: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> Merchandising:
        m = cls()
        for r in rules:
            if not r.active:
                continue
            if r.kind == "exclude":
                if r.sku:
                    m.excluded_skus.add(r.sku)
                if r.category:
                    m.excluded_categories.add(r.category)
            elif r.kind == "boost":
                if r.sku:
                    m.boost_skus[r.sku] = m.boost_skus.get(r.sku, 1.0) * r.weight
                if r.category:
                    m.boost_categories[r.category] = (
                        m.boost_categories.get(r.category, 1.0) * r.weight
                    )
            elif r.kind == "pin" and r.sku:
                if r.target_sku:
                    m.pins_by_sku.setdefault(r.target_sku, []).append(r.sku)
                elif r.category:
                    m.pins_by_category.setdefault(r.category, []).append(r.sku)
        return m

    @property
    def active(self) -> bool:
        return bool(
            self.excluded_skus
            or self.excluded_categories
            or self.boost_skus
            or self.boost_categories
            or self.pins_by_sku
            or self.pins_by_category
        )

    @property
    def skus(self) -> set[str]:
        """Every SKU the rules name as an item (their categories must be known)."""
        pinned = {
            s
            for pins in (*self.pins_by_sku.values(), *self.pins_by_category.values())
            for s in pins
        }
        return self.excluded_skus | set(self.boost_skus) | pinned

    def excluded(self, sku: str, categories: Mapping[str, str]) -> bool:
        return sku in self.excluded_skus or categories.get(sku) in self.excluded_categories

    def apply(
        self,
        items: Iterable[tuple[str, float]],
        *,
        categories: Mapping[str, str],
        n: int,
        key_sku: str | None = None,
    ) -> list[tuple[str, float, str | None]]:
        """``items`` (sku, score, best first) with the rules applied: the best ``n``, pins
        first."""
        if not self.active:
            plain: list[tuple[str, float, str | None]] = []
            for sku, score in items:
                if sku != key_sku:
                    plain.append((sku, score, None))
                    if len(plain) == n:
                        break
            return plain
        scored: list[tuple[str, float, str | None]] = []
        for sku, score in items:
            if sku == key_sku or self.excluded(sku, categories):
                continue
            factor = self.boost_skus.get(sku, 1.0) * self.boost_categories.get(
                categories.get(sku, ""), 1.0
            )
            scored.append((sku, score * factor, None))
        scored.sort(key=lambda item: (-item[1], item[0]))
        pins: list[str] = []
        if key_sku is not None:
            pins = [
                *self.pins_by_sku.get(key_sku, ()),
                *self.pins_by_category.get(categories.get(key_sku, "\0"), ()),
            ]
        pins = [p for p in dict.fromkeys(pins) if p != key_sku and not self.excluded(p, categories)]
        if not pins:
            return scored[:n]
        top = max([s for _, s, _ in scored[:1]] + [1.0])
        first = [
            (sku, top * (1.0 + (len(pins) - i) / 100.0), "Recommended by HQ")
            for i, sku in enumerate(pins)
        ]
        return (first + [item for item in scored if item[0] not in set(pins)])[:n]


def _rule(row: Any) -> Rule:
    return Rule(
        rule_id=UUID(str(row.rule_id)),
        kind=row.kind,
        sku=row.sku,
        category=row.category,
        target_sku=row.target_sku,
        weight=float(row.weight),
        active=bool(row.active),
        created_at=row.created_at,
    )


def list_rules(conn: Connection) -> list[Rule]:
    return [
        _rule(r)
        for r in conn.execute(
            sa.select(merchandising_rules).order_by(
                merchandising_rules.c.created_at, merchandising_rules.c.rule_id
            )
        )
    ]


def load_merchandising(conn: Connection) -> Merchandising:
    return Merchandising.of(list_rules(conn))


def add_rule(
    db: Database,
    *,
    kind: str,
    sku: str | None = None,
    category: str | None = None,
    target_sku: str | None = None,
    weight: float = 1.0,
) -> Rule:
    """Store a rule, put it on the feed and mark every also-bought list for recomputation."""
    if kind not in RULE_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(RULE_KINDS)}, not {kind!r}")
    if kind == "pin":
        if not sku:
            raise InvalidInput("A pin names the product to put first: set sku")
        if bool(target_sku) == bool(category):
            raise InvalidInput(
                "A pin applies to one product's list (target_sku) or to the lists of a "
                "category (category): set exactly one of them"
            )
    else:
        if target_sku:
            raise InvalidInput(f"target_sku is for pins only, not for {kind}")
        if bool(sku) == bool(category):
            raise InvalidInput(f"A {kind} rule names a product (sku) or a category: set one")
    if kind == "boost" and not 0 < weight <= 1000:
        raise InvalidInput(f"A boost's weight multiplies scores: between 0 and 1000, not {weight}")
    rule = Rule(
        rule_id=uuid4(),
        kind=kind,
        sku=sku or None,
        category=category or None,
        target_sku=target_sku or None,
        weight=float(weight),
        active=True,
        created_at=utc_now(),
    )
    with db.write() as conn:
        if rule.sku is not None or rule.target_sku is not None:
            named = [s for s in (rule.sku, rule.target_sku) if s is not None]
            known = set(
                conn.execute(sa.select(products.c.sku).where(products.c.sku.in_(named))).scalars()
            )
            unknown = [s for s in named if s not in known]
            if unknown:
                raise InvalidInput(f"No product with SKU {unknown[0]!r}")
        values = rule.as_json() | {"rule_id": rule.rule_id, "created_at": rule.created_at}
        conn.execute(merchandising_rules.insert().values(**values))
        feed.record_change(conn, entity="merchandising", key=str(rule.rule_id), data=rule.as_json())
        mark_all_dirty(conn)
    return rule


def delete_rule(db: Database, rule_id: UUID) -> None:
    with db.write() as conn:
        deleted = conn.execute(
            merchandising_rules.delete().where(merchandising_rules.c.rule_id == rule_id)
        ).rowcount
        if not deleted:
            raise NotFound(f"No merchandising rule {rule_id}")
        feed.record_change(
            conn, entity="merchandising", key=str(rule_id), action="delete", reason="deleted"
        )
        mark_all_dirty(conn)


def mark_all_dirty(conn: Connection) -> None:
    """Every product with counts gets its also-bought list recomputed, and every store its
    bestsellers and trending lists (after a rule change)."""
    select = sa.select(item_counts.c.sku, sa.literal(0), sa.null()).where(sa.true())
    insert = _insert(conn, dirty_items).from_select(["sku", "version", "leased_until"], select)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["sku"], set_={"version": dirty_items.c.version + 1}
        )
    )
    known = set(conn.execute(sa.select(stores.c.store_id)).scalars())
    known |= set(conn.execute(sa.select(store_item_counts.c.store_id).distinct()).scalars())
    mark_lists_dirty(conn, DIRTY_STORE, [*sorted(known), feed.ALL_STORES])


# ---------------------------------------------------------------------------------------------
# Writing lists


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _round(score: float) -> float:
    # Four significant digits: every new basket moves scores a little, and a list whose order
    # and rounded scores stay the same is not worth sending to every till again.
    return float(f"{score:.4g}")


@dataclass(frozen=True, slots=True)
class Computed:
    """A list as computed, before it is stored: ``items`` are (sku, score, reason), best first.

    Serialized straight to ``RecommendationList`` JSON: building a model per item costs more
    than the whole computation of a million-order rebuild.
    """

    kind: str
    key: str
    items: list[tuple[str, float, str | None]]

    def items_json(self) -> list[dict[str, Any]]:
        return [
            {"sku": sku, "score": _round(max(score, 0.0)), "reason": reason}
            for sku, score, reason in self.items
        ]


def make_list(
    kind: str, key: str, items: Iterable[tuple[str, float, str | None]]
) -> RecommendationList:
    """A list as the API answers it."""
    return RecommendationList.model_validate(
        {
            "kind": kind,
            "key": key,
            "items": Computed(kind, key, list(items)).items_json(),
            "generated_at": utc_now(),
        }
    )


def _items_json(data: str) -> Any:
    return json.loads(data).get("items", [])


def publish(conn: Connection, lists: Sequence[tuple[Computed, Sequence[str]]]) -> int:
    """Store the lists whose items changed and put them on the feed for their scopes (store ids
    or ``*``); returns how many changed.

    A customer whose personal list changed and whose card tills cache gets the card rebuilt
    too (its ``recommendations`` come from the list).
    """
    if not lists:
        return 0
    current: dict[tuple[str, str], Any] = {}
    by_kind: dict[str, list[str]] = defaultdict(list)
    for lst, _ in lists:
        by_kind[lst.kind].append(lst.key)
    for kind, keys in by_kind.items():
        for start in range(0, len(keys), 500):
            for row in conn.execute(
                sa.select(recommendation_lists.c.key, recommendation_lists.c.data).where(
                    recommendation_lists.c.kind == kind,
                    recommendation_lists.c.key.in_(keys[start : start + 500]),
                )
            ):
                current[(kind, row.key)] = _items_json(row.data)
    now = utc_now()
    stamp = now.isoformat().replace("+00:00", "Z")
    rows: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for lst, scopes in lists:
        items = lst.items_json()
        if current.get((lst.kind, lst.key)) == items:
            continue
        data = json.dumps(
            {"kind": lst.kind, "key": lst.key, "items": items, "generated_at": stamp},
            separators=(",", ":"),
        )
        rows.append({"kind": lst.kind, "key": lst.key, "data": data, "updated_at": now})
        changes.extend(
            {"entity": "recommendation", "key": f"{lst.kind}:{lst.key}", "scope": s, "data": data}
            for s in scopes
        )
    if rows:
        stmt = _insert(conn, recommendation_lists)
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "key"],
            set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at},
        )
        for start in range(0, len(rows), 2000):
            conn.execute(stmt, rows[start : start + 2000])
        for start in range(0, len(changes), 2000):
            feed.record_changes(conn, changes[start : start + 2000])
    cached = {UUID(lst.key) for lst, scopes in lists if lst.kind == PERSONAL and scopes}
    changed_cards = cached & {UUID(r["key"]) for r in rows if r["kind"] == PERSONAL}
    if changed_cards:
        identity.mark_dirty(conn, changed_cards)
    return len(rows)


def _categories(conn: Connection, skus: Iterable[str]) -> dict[str, str]:
    wanted = list(set(skus))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        found.update(
            conn.execute(
                sa.select(products.c.sku, products.c.category).where(
                    products.c.sku.in_(wanted[start : start + 500])
                )
            ).all()
        )
    return found


# ---------------------------------------------------------------------------------------------
# Store lists (bestsellers, trending) and personal lists, from the stored counts


@dataclass(frozen=True, slots=True)
class CountTables:
    """The count tables list computations read: the live ones, or a rebuild's staging copies."""

    item_counts: sa.Table
    store_item_counts: sa.Table
    item_days: sa.Table


LIVE = CountTables(item_counts, store_item_counts, item_days)


def day_number(at: datetime) -> int:
    """The UTC day of ``at`` as days since 1970-01-01 (``item_days.day``)."""
    return int(at.timestamp() // 86_400)


def trend_window(now: datetime, trend: TrendConfig) -> tuple[int, int, int]:
    """(first baseline day, first recent day, today) of the trending windows at ``now``."""
    today = day_number(now)
    recent_from = today - trend.recent_days + 1
    return recent_from - trend.baseline_days, recent_from, today


def _ranked(
    skus: Sequence[str],
    score: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    want: int,
) -> list[tuple[str, float]]:
    """The ``want`` best (sku, score) with ``mask`` and a positive score; ``skus`` are sorted,
    so index order breaks ties by SKU."""
    idx = np.flatnonzero(mask & (score > 0))
    top = idx[np.lexsort((idx, -score[idx]))][:want]
    return [(skus[i], float(score[i])) for i in top]


def store_lists(
    conn: Connection,
    store_ids: Sequence[str],
    *,
    config: RecsConfig,
    now: datetime,
    trend: TrendConfig | None = None,
    tables: CountTables = LIVE,
) -> list[tuple[Computed, Sequence[str]]]:
    """The bestsellers and trending lists of ``store_ids`` (``*``: the chain's trending only),
    overall and per category, rules applied, with the store each goes to."""
    trend = trend or TrendConfig()
    if not store_ids:
        return []
    n = config.top_n
    want = n * CANDIDATES
    chain_rows = sorted(
        conn.execute(sa.select(tables.item_counts.c.sku, tables.item_counts.c.weight)).all()
    )
    skus = [sku for sku, _ in chain_rows]
    index = {sku: i for i, sku in enumerate(skus)}
    chain = np.array([float(w) for _, w in chain_rows], dtype=np.float64)
    merch = load_merchandising(conn)
    categories = _categories(conn, set(skus) | merch.skus)
    cat_of = np.array([categories.get(s, "") for s in skus], dtype=object)
    cats = sorted({c for c in cat_of if c})
    everything = np.ones(len(skus), dtype=bool)
    masks = {"*": everything, **{c: cat_of == c for c in cats}}
    chain_share = CHAIN_PRIOR * chain / max(float(chain.max(initial=0.0)), 1e-12)
    first, recent_from, today = trend_window(now, trend)
    stored_trending: dict[str, set[str]] = defaultdict(set)
    for key in conn.execute(
        sa.select(recommendation_lists.c.key).where(recommendation_lists.c.kind == TRENDING)
    ).scalars():
        store, _, category = key.partition("/")
        stored_trending[store].add(category)
    days = tables.item_days
    recent_sum = sa.func.sum(sa.case((days.c.day >= recent_from, days.c.baskets), else_=0))
    base_sum = sa.func.sum(sa.case((days.c.day < recent_from, days.c.baskets), else_=0))
    out: list[tuple[Computed, Sequence[str]]] = []
    for store in store_ids:
        scope = [store]
        if store != feed.ALL_STORES:
            own = np.zeros(len(skus), dtype=np.float64)
            for sku, weight in conn.execute(
                sa.select(tables.store_item_counts.c.sku, tables.store_item_counts.c.weight).where(
                    tables.store_item_counts.c.store_id == store
                )
            ):
                if sku in index:
                    own[index[sku]] = float(weight)
            score = own / max(float(own.max(initial=0.0)), 1e-12) + chain_share
            for category, mask in masks.items():
                ranked = merch.apply(_ranked(skus, score, mask, want), categories=categories, n=n)
                out.append((Computed(BESTSELLERS, f"{store}/{category}", ranked), scope))
        rows = sorted(
            conn.execute(
                sa.select(days.c.sku, recent_sum.label("recent"), base_sum.label("base"))
                .where(days.c.store_id == store, days.c.day >= first, days.c.day <= today)
                .group_by(days.c.sku)
                .having(recent_sum >= trend.min_baskets)
            ).all()
        )
        t_skus = [r.sku for r in rows]
        t_score = trending_scores(
            [float(r.recent) for r in rows], [float(r.base) for r in rows], trend
        )
        t_cat = np.array([categories.get(s, "") for s in t_skus], dtype=object)
        trending_cats = {str(c) for c, s in zip(t_cat, t_score, strict=True) if c and s > 0}
        # Lists of categories that trend now, and empty ones for those that trended before
        # (so tills drop them); never a pile of empty lists for every quiet category.
        for category in ["*", *sorted(trending_cats | (stored_trending[store] - {"*"}))]:
            mask = np.ones(len(t_skus), dtype=bool) if category == "*" else t_cat == category
            ranked = merch.apply(_ranked(t_skus, t_score, mask, want), categories=categories, n=n)
            out.append((Computed(TRENDING, f"{store}/{category}", ranked), scope))
    return out


def _partner_scores(
    conn: Connection, skus: Sequence[str], *, config: RecsConfig, keep: int
) -> dict[str, list[tuple[str, float]]]:
    """Each SKU's ``keep`` best also-bought partners as (sku, score) from the stored counts,
    before any rule (ties by SKU)."""
    total = conn.execute(
        sa.select(recs_state.c.total_weight).where(recs_state.c.id == _STATE_ID)
    ).scalar_one_or_none()
    partners: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for start in range(0, len(skus), 200):
        for a, b, weight in conn.execute(
            sa.select(item_pairs.c.a, item_pairs.c.b, item_pairs.c.weight).where(
                item_pairs.c.a.in_(skus[start : start + 200])
            )
        ).all():
            partners[a].append((b, float(weight)))
    counts = _item_weights(conn, set(skus) | {b for rows in partners.values() for b, _ in rows})
    out: dict[str, list[tuple[str, float]]] = {}
    for a in skus:
        rows = partners.get(a, [])
        if not rows or not total:
            out[a] = []
            continue
        c_ab = np.array([w for _, w in rows], dtype=np.float64)
        c_b = np.array([counts.get(b, 0.0) for b, _ in rows], dtype=np.float64)
        c_a = np.full(len(rows), counts.get(a, 0.0), dtype=np.float64)
        s = np.asarray(pair_scores(c_ab, c_a, c_b, float(total), config), dtype=np.float64)
        out[a] = sorted(
            (
                (b, float(v))
                for (b, _), v in zip(rows, s, strict=True)
                if np.isfinite(v) and v > 0 and b != a
            ),
            key=lambda item: (-item[1], item[0]),
        )[:keep]
    return out


def _item_weights(conn: Connection, skus: Iterable[str]) -> dict[str, float]:
    wanted = list(skus)
    counts: dict[str, float] = {}
    for start in range(0, len(wanted), 500):
        counts.update(
            (sku, float(weight))
            for sku, weight in conn.execute(
                sa.select(item_counts.c.sku, item_counts.c.weight).where(
                    item_counts.c.sku.in_(wanted[start : start + 500])
                )
            )
        )
    return counts


def _chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def personal_lists(
    conn: Connection, customers: Iterable[UUID], *, config: RecsConfig, now: datetime
) -> list[tuple[Computed, Sequence[str]]]:
    """The personal lists of ``customers`` from the stored counts (the rules of the module
    docstring; ``rebuild`` computes the same lists for everyone at once with matrices).

    Merged-away, erased and unknown customers get no list; a customer without any history
    gets none either (the API answers their home store's bestsellers).
    """
    wanted = sorted(set(customers), key=str)
    if not wanted:
        return []
    state = conn.execute(
        sa.select(recs_state.c.reference_at, recs_state.c.total_weight).where(
            recs_state.c.id == _STATE_ID
        )
    ).first()
    reference = state.reference_at if state is not None else now
    total = float(state.total_weight) if state is not None else 0.0
    half_life = config.half_life_days
    members: dict[UUID, UUID] = {}
    for chunk in _chunks(wanted):
        for profile_id, customer_id in conn.execute(
            sa.select(profiles.c.profile_id, profiles.c.customer_id).where(
                profiles.c.customer_id.in_(chunk), profiles.c.erased_at.is_(None)
            )
        ):
            members[UUID(str(profile_id))] = UUID(str(customer_id))
    live = [c for c in wanted if members.get(c) == c]
    bought: dict[UUID, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    seen: set[tuple[Any, str]] = set()
    for chunk in _chunks(live):
        for customer_id, order_id, created_at, sku in conn.execute(
            sa.select(
                orders.c.customer_id, orders.c.order_id, orders.c.created_at, order_lines.c.sku
            )
            .join(order_lines, order_lines.c.order_id == orders.c.order_id)
            .where(orders.c.customer_id.in_(chunk))
        ):
            if (order_id, sku) in seen:
                continue  # a SKU on two lines of one basket is still one basket
            seen.add((order_id, sku))
            bought[UUID(str(customer_id))][sku] += decay_weight(
                created_at, reference=reference, half_life_days=half_life
            )
    browsed: dict[UUID, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    profile_ids = [p for p, c in members.items() if c in set(live)]
    for chunk in _chunks(profile_ids):
        for profile_id, kind, sku, at in conn.execute(
            sa.select(events.c.profile_id, events.c.kind, events.c.sku, events.c.at).where(
                events.c.profile_id.in_(chunk),
                events.c.channel == "web",
                events.c.kind.in_(list(BROWSE_WEIGHTS)),
                events.c.sku.is_not(None),
                events.c.at >= now - timedelta(days=BROWSE_DAYS),
            )
        ):
            customer = members[UUID(str(profile_id))]
            browsed[customer][sku] += BROWSE_WEIGHTS[kind] * decay_weight(
                at, reference=reference, half_life_days=half_life
            )
    want = config.top_n * CANDIDATES
    seeds = sorted({s for c in live for s in (*bought[c], *browsed[c])})
    partners = _partner_scores(conn, seeds, config=config, keep=want)
    staples: set[str] = set()
    if total > 0:
        staples = set(
            conn.execute(
                sa.select(item_counts.c.sku).where(item_counts.c.weight >= total * STAPLE_SHARE)
            ).scalars()
        )
    most_bought = max((len(bought[c]) for c in live), default=0)
    fallback = list(
        conn.execute(
            sa.select(item_counts.c.sku)
            .where(item_counts.c.weight > 0)
            .order_by(item_counts.c.weight.desc(), item_counts.c.sku)
            .limit(want + len(staples) + most_bought)
        ).scalars()
    )
    merch = load_merchandising(conn)
    scopes: dict[UUID, list[str]] = defaultdict(list)
    for chunk in _chunks(live):
        for customer_id, store_id in conn.execute(
            sa.select(customer_stores.c.customer_id, customer_stores.c.store_id).where(
                customer_stores.c.customer_id.in_(chunk)
            )
        ):
            scopes[UUID(str(customer_id))].append(store_id)
    ranked_by: dict[UUID, list[tuple[str, float]]] = {}
    for customer in live:
        own, interest = bought[customer], browsed[customer]
        if not own and not interest:
            continue
        candidates: dict[str, float] = defaultdict(float)
        for sku, weight in interest.items():
            candidates[sku] += weight
        for seed in sorted({*own, *interest}):
            weight = own.get(seed, 0.0) + interest.get(seed, 0.0)
            for partner, score in partners.get(seed, ()):
                candidates[partner] += weight * score
        ranked = sorted(
            (
                (sku, score)
                for sku, score in candidates.items()
                if score > 0 and sku not in own and sku not in staples
            ),
            key=lambda item: (-item[1], item[0]),
        )[:want]
        chosen = {sku for sku, _ in ranked}
        for sku in fallback:
            if len(ranked) >= want:
                break
            if sku not in chosen and sku not in own and sku not in staples:
                ranked.append((sku, 0.0))
                chosen.add(sku)
        ranked_by[customer] = ranked
    categories = _categories(
        conn, {sku for ranked in ranked_by.values() for sku, _ in ranked} | merch.skus
    )
    return [
        (
            Computed(
                PERSONAL, str(customer), merch.apply(ranked, categories=categories, n=config.top_n)
            ),
            scopes.get(customer, []),
        )
        for customer, ranked in ranked_by.items()
    ]


# ---------------------------------------------------------------------------------------------
# Full rebuild


@dataclass(frozen=True, slots=True)
class RebuildReport:
    orders: int
    lines: int
    items: int
    pairs: int
    lists: int
    changed: int
    seconds: float
    #: The longest the rebuild held the database's write lock in one transaction.
    longest_write_s: float = 0.0

    def summary(self) -> str:
        return (
            f"counted {self.orders:,} orders ({self.lines:,} lines): {self.items:,} products, "
            f"{self.pairs:,} pairs; {self.lists:,} lists, {self.changed:,} changed "
            f"({self.seconds:.1f} s, writes of at most {self.longest_write_s:.2f} s)"
        )


def _epoch(conn: Connection, column: str) -> str:
    if conn.dialect.name == "postgresql":
        return f"extract(epoch from {column})::float8"
    return f"(julianday({column}) - 2440587.5) * 86400.0"


def _stamp(conn: Connection, value: datetime) -> Any:
    """A timestamp as a raw driver parameter (the queries below bypass SQLAlchemy's types)."""
    if conn.dialect.name == "postgresql":
        return value
    return value.replace(tzinfo=None).isoformat(sep=" ")


@dataclass(slots=True)
class _Baskets:
    """Every counted order as arrays: basket i has time ``times[i]`` (epoch s), store and
    customer; ``matrix`` is baskets x SKUs with a 1 where the basket held the SKU."""

    skus: list[str]
    times: npt.NDArray[np.float64]
    store: npt.NDArray[np.int64]
    store_ids: list[str]
    customer: list[str | None]
    matrix: Any
    lines: int


def _read_baskets(conn: Connection, cutoff: datetime) -> _Baskets:
    from scipy import sparse

    epoch = _epoch(conn, "created_at")
    order_key = "order_id::text" if conn.dialect.name == "postgresql" else "order_id"
    customer_key = "customer_id::text" if conn.dialect.name == "postgresql" else "customer_id"
    ids: list[str] = []
    times: list[float] = []
    store_codes: list[int] = []
    store_index: dict[str, int] = {}
    customers: list[str | None] = []
    result = conn.exec_driver_sql(
        f"SELECT {order_key}, {epoch}, store_id, {customer_key} FROM orders "
        "WHERE ingested_at <= ? ORDER BY order_id".replace(
            "?", "%(cutoff)s" if conn.dialect.name == "postgresql" else "?"
        ),
        {"cutoff": _stamp(conn, cutoff)}
        if conn.dialect.name == "postgresql"
        else (_stamp(conn, cutoff),),
    )
    while chunk := result.fetchmany(100_000):
        for order_id, at, store_id, customer_id in chunk:
            ids.append(order_id)
            times.append(at)
            store_codes.append(
                -1 if store_id is None else store_index.setdefault(store_id, len(store_index))
            )
            customers.append(None if customer_id is None else str(customer_id))
    # The hex (SQLite) or text (PostgreSQL) ids as fixed-width bytes, sorted as numpy sorts.
    keys = np.array([i.encode() for i in ids]) if ids else np.array([], dtype="S36")
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    sku_index: dict[str, int] = {}
    rows_parts: list[npt.NDArray[np.int64]] = []
    cols_parts: list[npt.NDArray[np.int64]] = []
    lines = 0
    result = conn.exec_driver_sql(f"SELECT {order_key}, sku FROM order_lines")
    while chunk := result.fetchmany(200_000):
        line_keys = np.array([row[0].encode() for row in chunk])
        pos = np.searchsorted(keys, line_keys)
        pos[pos >= len(keys)] = 0
        found = keys[pos] == line_keys if len(keys) else np.zeros(len(chunk), dtype=bool)
        setdefault = sku_index.setdefault
        codes = np.fromiter(
            (setdefault(row[1], len(sku_index)) for row in chunk), dtype=np.int64, count=len(chunk)
        )
        rows_parts.append(order[pos[found]].astype(np.int64))
        cols_parts.append(codes[found])
        lines += int(found.sum())
    n_baskets, n_items = len(ids), len(sku_index)
    rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(cols_parts) if cols_parts else np.zeros(0, dtype=np.int64)
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n_baskets, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # a SKU on two lines of one basket is still one basket
    return _Baskets(
        skus=list(sku_index),
        times=np.asarray(times, dtype=np.float64),
        store=np.asarray(store_codes, dtype=np.int64),
        store_ids=list(store_index),
        customer=customers,
        matrix=matrix,
        lines=lines,
    )


def _read_browsing(
    conn: Connection, now: datetime
) -> tuple[list[UUID], list[str], list[str], npt.NDArray[np.float64]]:
    """Every counted web event of a live customer: (customer, kind, sku, epoch seconds)."""
    customers: list[UUID] = []
    kinds: list[str] = []
    skus: list[str] = []
    times: list[float] = []
    for customer_id, kind, sku, at in conn.execute(
        sa.select(profiles.c.customer_id, events.c.kind, events.c.sku, events.c.at)
        .join(profiles, profiles.c.profile_id == events.c.profile_id)
        .where(
            events.c.channel == "web",
            events.c.kind.in_(list(BROWSE_WEIGHTS)),
            events.c.sku.is_not(None),
            events.c.at >= now - timedelta(days=BROWSE_DAYS),
            profiles.c.erased_at.is_(None),
        )
    ):
        customers.append(UUID(str(customer_id)))
        kinds.append(kind)
        skus.append(sku)
        times.append(at.timestamp())
    return customers, kinds, skus, np.asarray(times, dtype=np.float64)


@dataclass(slots=True)
class _WriteClock:
    """How long a rebuild held the database's write lock, at most, in one transaction."""

    db: Database
    longest: float = 0.0
    count: int = 0

    @contextmanager
    def write(self) -> Iterator[Connection]:
        started = time.perf_counter()
        try:
            with self.db.write() as conn:
                yield conn
        finally:
            self.longest = max(self.longest, time.perf_counter() - started)
            self.count += 1


_STAGED = (item_counts, item_pairs, store_item_counts, item_days)


def _staging_table(table: sa.Table, suffix: str, *, postgres: bool) -> sa.Table:
    """A copy of ``table`` named ``<name>_<suffix>`` with the same columns and primary key.

    On PostgreSQL constraint names are unique per schema, so the copy's primary key gets its
    own name and the swap renames it; SQLite keeps them per table.
    """
    columns = [sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns]
    name = f"{table.name}_{suffix}"
    key = [c.name for c in table.primary_key.columns]
    pk_name = f"pk_{name}" if postgres else f"pk_{table.name}"
    return sa.Table(name, sa.MetaData(), *columns, sa.PrimaryKeyConstraint(*key, name=pk_name))


def _drop_table(clock: _WriteClock, name: str) -> None:
    """Drop a (staging or old) table without holding the write lock long: on SQLite dropping a
    big table frees every page in one transaction, so its rows go first, a chunk at a time."""
    with clock.db.read() as conn:
        exists = sa.inspect(conn).has_table(name)
    if not exists:
        return
    if clock.db.is_sqlite:
        while True:
            with clock.write() as conn:
                deleted = conn.exec_driver_sql(
                    f'DELETE FROM "{name}" WHERE rowid IN '
                    f'(SELECT rowid FROM "{name}" LIMIT {STAGE_ROWS})'
                ).rowcount
            if deleted < STAGE_ROWS:
                break
    with clock.write() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')


def _stage(
    clock: _WriteClock, rows: Mapping[str, Iterable[list[tuple[Any, ...]]]]
) -> list[sa.Table]:
    """Create the staging tables and fill them, ``STAGE_ROWS`` rows per transaction; rows are
    tuples of plain values in the table's column order."""
    postgres = not clock.db.is_sqlite
    staged = [_staging_table(t, "next", postgres=postgres) for t in _STAGED]
    for table in staged:
        _drop_table(clock, table.name)  # left over by a rebuild that died
        _drop_table(clock, table.name.replace("_next", "_old"))
        with clock.write() as conn:
            table.create(conn)
    for table, original in zip(staged, _STAGED, strict=True):
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        marks = ", ".join("?" for _ in table.columns)
        for chunk in rows[original.name]:
            if not chunk:
                continue
            with clock.write() as conn:
                if postgres:
                    # COPY: several times faster than executemany for millions of rows.
                    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
                        for row in chunk:
                            copy.write_row(row)
                else:
                    # Plain str, float and int values: no SQLAlchemy type processing needed.
                    conn.exec_driver_sql(
                        f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})', chunk
                    )
    return staged


def _swap(conn: Connection, staged: Sequence[sa.Table]) -> None:
    """Put the staging tables in place of the live ones (renames: no rows are copied)."""
    postgres = conn.dialect.name == "postgresql"
    for table, live in zip(staged, _STAGED, strict=True):
        old = f"{live.name}_old"
        conn.exec_driver_sql(f'ALTER TABLE "{live.name}" RENAME TO "{old}"')
        if postgres:
            conn.exec_driver_sql(
                f'ALTER TABLE "{old}" RENAME CONSTRAINT "pk_{live.name}" TO "pk_{old}"'
            )
        conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{live.name}"')
        if postgres:
            conn.exec_driver_sql(
                f'ALTER TABLE "{live.name}" RENAME CONSTRAINT "pk_{table.name}" TO "pk_{live.name}"'
            )


def _row_chunks(count: int, make: Any) -> Iterator[list[tuple[Any, ...]]]:
    """``make(start, stop)`` for consecutive slices of ``count`` rows, ``STAGE_ROWS`` each."""
    size = STAGE_ROWS
    for start in range(0, count, size):
        yield make(start, min(start + size, count))


#: PostgreSQL advisory lock key of a running rebuild ("recsrbld" in ASCII).
REBUILD_LOCK = 0x7265637372626C64


@contextmanager
def _only_rebuild(db: Database) -> Iterator[None]:
    """One rebuild at a time, in any process: a second would drop the first's staging tables.

    SQLite: an ``flock`` beside the database file; PostgreSQL: a session advisory lock.
    """
    if db.is_sqlite:
        database = db.url.database
        if not database or database == ":memory:":
            yield
            return
        with Path(f"{database}.recs-rebuild").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict(
                    "Another rebuild of the recommendations is running on this database; "
                    "wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with db.engine.connect() as conn:
        got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({REBUILD_LOCK})").scalar()
        conn.commit()
        if not got:
            raise Conflict(
                "Another rebuild of the recommendations is running on this database; "
                "wait for it to finish"
            )
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({REBUILD_LOCK})")
            conn.commit()


def rebuild(
    db: Database,
    *,
    config: RecsConfig | None = None,
    settle: timedelta = SETTLE,
    trend: TrendConfig | None = None,
) -> RebuildReport:
    """Recount everything from all orders and recompute every list; send those that changed.

    It first waits ``settle``, so that orders stamped before it started by pushes still in
    flight are committed and counted (0 when nothing else writes, as in tests). Counting and
    scoring read a snapshot; the new counts go to staging tables in short transactions, the
    lists are published in short transactions, and one transaction of renames swaps the counts
    in (see the module docstring). A second rebuild while one runs is refused (``Conflict``).
    """
    with _only_rebuild(db):
        return _rebuild(db, config=config, settle=settle, trend=trend)


def _rebuild(
    db: Database,
    *,
    config: RecsConfig | None,
    settle: timedelta,
    trend: TrendConfig | None,
) -> RebuildReport:
    from scipy import sparse

    config = config or default_config()
    trend = trend or TrendConfig()
    clock = _WriteClock(db)
    started = time.perf_counter()
    now = cutoff = utc_now()
    # Orders stamped before the cutoff by transactions still running get SETTLE to commit.
    time.sleep(settle.total_seconds())
    with db.read() as conn:
        baskets = _read_baskets(conn, cutoff)
        last = conn.execute(
            sa.select(orders.c.ingested_at, orders.c.order_id)
            .where(orders.c.ingested_at <= cutoff)
            .order_by(orders.c.ingested_at.desc(), orders.c.order_id.desc())
            .limit(1)
        ).first()
        all_stores = list(conn.execute(sa.select(stores.c.store_id)).scalars())
        # The reference stays where it was: moving it would rescale every count and nudge
        # every score, and each list would go to the tills again for nothing.
        reference = (
            conn.execute(
                sa.select(recs_state.c.reference_at).where(recs_state.c.id == _STATE_ID)
            ).scalar_one_or_none()
            or now
        )
        browsing = _read_browsing(conn, now)
        merch = load_merchandising(conn)
        scopes: dict[str, list[str]] = defaultdict(list)
        for customer_id, store_id in conn.execute(
            sa.select(customer_stores.c.customer_id, customer_stores.c.store_id)
        ).all():
            scopes[str(UUID(str(customer_id)))].append(store_id)
        categories = _categories(conn, set(baskets.skus) | set(browsing[2]) | merch.skus)
    phases = {"read": time.perf_counter() - started}
    w = decay_weight(baskets.times, reference=reference, half_life_days=config.half_life_days)
    x = baskets.matrix
    nonempty = np.diff(x.indptr) > 0
    total = float(w[nonempty].sum())
    counts = np.asarray(x.T @ w, dtype=np.float64).ravel()
    pairs = (x.T @ sparse.diags(w) @ x).tocsr()
    pairs.setdiag(0.0)
    pairs.eliminate_zeros()
    skus = baskets.skus
    n = config.top_n

    wide = replace(config, top_n=config.top_n * CANDIDATES)
    also_bought = recommender.also_bought_from_counts(
        recommender.Counts(pairs=pairs, items=counts, n_baskets=total), wide
    )
    also: list[tuple[Computed, Sequence[str]]] = []
    for a, cands in also_bought.lists(wide.top_n).items():
        items = [(skus[b], s) for b, s in cands]
        ranked = merch.apply(items, categories=categories, n=n, key_sku=skus[a])
        also.append((Computed(ALSO_BOUGHT, skus[a], ranked), [feed.ALL_STORES]))
    phases["count"] = time.perf_counter() - started - sum(phases.values())
    personal = _personal_lists(
        baskets, w, also_bought, counts, browsing, reference, config, categories, merch, scopes
    )

    phases["personal"] = time.perf_counter() - started - sum(phases.values())
    # The new counts, into staging tables, pairs in key order (appending to the index is
    # much cheaper than inserting all over it).
    coo = pairs.tocoo()
    rank = _name_ranks(skus)
    in_key_order = np.lexsort((rank[coo.col], rank[coo.row]))
    coo = sparse.coo_matrix(
        (coo.data[in_key_order], (coo.row[in_key_order], coo.col[in_key_order])),
        shape=coo.shape,
    )
    by_store = sparse.csr_matrix(
        (
            w[baskets.store >= 0],
            (baskets.store[baskets.store >= 0], np.flatnonzero(baskets.store >= 0)),
        ),
        shape=(max(len(baskets.store_ids), 1), x.shape[0]),
    )
    per_store = (by_store @ x).tocoo()
    day_rows = _item_day_rows(baskets, now, trend)
    staged = _stage(
        clock,
        {
            "item_counts": _row_chunks(
                len(counts),
                lambda lo, hi: [
                    (skus[i], c) for i, c in enumerate(counts[lo:hi].tolist(), start=lo) if c > 0
                ],
            ),
            "item_pairs": _row_chunks(
                coo.nnz,
                lambda lo, hi: list(
                    zip(
                        [skus[a] for a in coo.row[lo:hi].tolist()],
                        [skus[b] for b in coo.col[lo:hi].tolist()],
                        coo.data[lo:hi].tolist(),
                        strict=True,
                    )
                ),
            ),
            "store_item_counts": _row_chunks(
                per_store.nnz,
                lambda lo, hi: [
                    (baskets.store_ids[s], skus[i], v)
                    for s, i, v in zip(
                        per_store.row[lo:hi].tolist(),
                        per_store.col[lo:hi].tolist(),
                        per_store.data[lo:hi].tolist(),
                        strict=True,
                    )
                    if v > 0
                ],
            ),
            "item_days": _row_chunks(len(day_rows), lambda lo, hi: day_rows[lo:hi]),
        },
    )
    with db.read() as conn:
        known = sorted(set(all_stores) | set(baskets.store_ids))
        best = store_lists(
            conn,
            [*known, feed.ALL_STORES],
            config=config,
            now=now,
            trend=trend,
            tables=CountTables(
                item_counts=staged[0], store_item_counts=staged[2], item_days=staged[3]
            ),
        )

    # Lists first, then the swap: an incremental round between the two recomputes lists from
    # the old counts, and the swap's reset of the watermark has them recounted (and
    # re-published) from the new ones.
    phases["stage"] = time.perf_counter() - started - sum(phases.values())
    changed = 0
    every = also + best + personal
    for n, start in enumerate(range(0, len(every), 2000)):
        with clock.write() as conn:
            changed += publish(conn, every[start : start + 2000])
        if not db.is_sqlite and n in (1, 8, 32):
            # A first rebuild grows the lists table from empty by 100,000s of rows, faster than
            # autovacuum refreshes its statistics; planned for an empty table, publish's lookup
            # of the stored lists would scan the table whole for every chunk.
            with db.read() as conn:
                conn.exec_driver_sql("ANALYZE recommendation_lists")
                conn.commit()
    with clock.write() as conn:
        _swap(conn, staged)
        conn.execute(dirty_items.delete())
        conn.execute(recs_state.delete())
        conn.execute(
            recs_state.insert().values(
                id=_STATE_ID,
                watermark_at=last.ingested_at if last else None,
                watermark_order=last.order_id if last else None,
                reference_at=reference,
                total_weight=total,
                rebuilt_at=now,
            )
        )
    phases["publish"] = time.perf_counter() - started - sum(phases.values())
    for table in _STAGED:
        _drop_table(clock, f"{table.name}_old")
    phases["drop"] = time.perf_counter() - started - sum(phases.values())
    report = RebuildReport(
        orders=len(baskets.times),
        lines=baskets.lines,
        items=int((counts > 0).sum()),
        pairs=int(pairs.nnz),
        lists=len(every),
        changed=changed,
        seconds=time.perf_counter() - started,
        longest_write_s=clock.longest,
    )
    log.info("recommendations rebuilt: %s", report.summary())
    log.debug("rebuild phases: %s", ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    return report


def _name_ranks(names: Sequence[str]) -> npt.NDArray[np.int64]:
    """Each name's position in sorted order: ties between items break by SKU, as in SQL."""
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names))
    return rank


def _item_day_rows(
    baskets: _Baskets, now: datetime, trend: TrendConfig
) -> list[tuple[str, int, str, int]]:
    """``item_days`` rows of the baskets inside the trending windows: per store and chain."""
    first, _, today = trend_window(now, trend)
    day = np.floor(baskets.times / 86_400.0).astype(np.int64)
    inside = np.flatnonzero((day >= first) & (day <= today))
    if not len(inside):
        return []
    window = baskets.matrix[inside].tocoo()
    basket = inside[window.row]
    store = baskets.store[basket]
    rows: list[tuple[str, int, str, int]] = []
    # Chain first (code -1 stands for "*": every basket, web orders included), then stores.
    for codes, names in ((np.full(len(basket), -1), None), (store, baskets.store_ids)):
        keep = codes >= 0 if names is not None else np.ones(len(basket), dtype=bool)
        keys = np.stack([codes[keep], day[basket[keep]], window.col[keep]], axis=1)
        unique, tally = np.unique(keys, axis=0, return_counts=True)
        for (code, d, item), baskets_n in zip(unique.tolist(), tally.tolist(), strict=True):
            store_id = feed.ALL_STORES if names is None else names[code]
            rows.append((store_id, int(d), baskets.skus[item], int(baskets_n)))
    return rows


def _personal_lists(
    baskets: _Baskets,
    w: npt.NDArray[np.float64],
    also_bought: recommender.AlsoBought,
    counts: npt.NDArray[np.float64],
    browsing: tuple[list[UUID], list[str], list[str], npt.NDArray[np.float64]],
    reference: datetime,
    config: RecsConfig,
    categories: Mapping[str, str],
    merch: Merchandising,
    scopes: Mapping[str, list[str]],
) -> list[tuple[Computed, Sequence[str]]]:
    """``personal_lists`` for every customer at once, as sparse products: history (customers x
    items: decayed purchases plus weighted browsing) times the also-bought scores (items x
    items), plus the browsing itself; bought items and staples left out, the chain's
    bestsellers filling short lists with score 0."""
    from scipy import sparse

    x = baskets.matrix
    codes: dict[UUID, int] = {}
    owner = np.array(
        [-1 if c is None else codes.setdefault(UUID(c), len(codes)) for c in baskets.customer],
        dtype=np.int64,
    )
    b_customers, b_kinds, b_skus, b_times = browsing
    skus = list(baskets.skus)
    index = {s: i for i, s in enumerate(skus)}
    b_rows = np.array([codes.setdefault(c, len(codes)) for c in b_customers], dtype=np.int64)
    b_cols = np.array([index.setdefault(s, len(index)) for s in b_skus], dtype=np.int64)
    skus.extend(s for s in list(index)[len(skus) :])
    if not codes:
        return []
    n_items, n_customers = len(skus), len(codes)
    known = owner >= 0
    by_customer = sparse.csr_matrix(
        (w[known], (owner[known], np.flatnonzero(known))), shape=(n_customers, x.shape[0])
    )
    purchases = (by_customer @ x).tocsr()
    purchases = sparse.csr_matrix(
        (purchases.data, purchases.indices, purchases.indptr), shape=(n_customers, n_items)
    )
    b_weights = np.array([BROWSE_WEIGHTS[k] for k in b_kinds], dtype=np.float64) * decay_weight(
        b_times, reference=reference, half_life_days=config.half_life_days
    )
    browsed = sparse.csr_matrix((b_weights, (b_rows, b_cols)), shape=(n_customers, n_items))
    browsed.sum_duplicates()
    rows: list[npt.NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)]
    cols: list[npt.NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)]
    vals: list[npt.NDArray[np.float64]] = [np.zeros(0, dtype=np.float64)]
    for item in range(also_bought.n_items):
        items, scores = also_bought.row(item)
        rows.append(np.full(len(items), item, dtype=np.int64))
        cols.append(items)
        vals.append(scores)
    scores_matrix = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
    all_counts = np.zeros(n_items, dtype=np.float64)
    all_counts[: len(counts)] = counts
    staples = staple_items(all_counts, float(w[np.diff(x.indptr) > 0].sum()))
    keep = np.ones(n_items)
    keep[list(staples)] = 0.0
    candidates = ((purchases + browsed) @ scores_matrix).tocsr()
    if browsed.nnz:
        candidates = (candidates + browsed).tocsr()
    # Exclusions per customer below, not as matrix operations: the candidates matrix is the
    # big one (customers x a few hundred partners each), and every operation on it copies it.
    allowed = keep > 0
    blocked = np.zeros(n_items, dtype=bool)  # scratch: the customer's own purchases
    want = config.top_n * CANDIDATES
    rank = _name_ranks(skus)
    by_count = np.lexsort((rank, -all_counts))
    fallback = [int(i) for i in by_count if all_counts[i] > 0 and int(i) not in staples]
    out: list[tuple[Computed, Sequence[str]]] = []
    for customer, row in codes.items():
        lo, hi = candidates.indptr[row], candidates.indptr[row + 1]
        s, b = candidates.data[lo:hi], candidates.indices[lo:hi]
        own = purchases.indices[purchases.indptr[row] : purchases.indptr[row + 1]]
        blocked[own] = True
        usable = allowed[b] & (s > 0) & ~blocked[b]
        blocked[own] = False
        s, b = s[usable], b[usable]
        if len(s) > want:
            # The best ``want`` and every candidate tied with the last of them, then sorted.
            cut = np.partition(-s, want - 1)[want - 1]
            top = -s <= cut
            s, b = s[top], b[top]
        order = np.lexsort((rank[b], -s))[:want]
        ranked = list(zip([skus[i] for i in b[order].tolist()], s[order].tolist(), strict=True))
        mine = set(own.tolist())
        chosen = {sku for sku, _ in ranked}
        for i in fallback:
            if len(ranked) >= want:
                break
            if i not in mine and skus[i] not in chosen:
                ranked.append((skus[i], 0.0))
                chosen.add(skus[i])
        key = str(customer)
        listed = merch.apply(ranked, categories=categories, n=config.top_n)
        out.append((Computed(PERSONAL, key, listed), scopes.get(key, [])))
    return out


#: A product in at least this share of all baskets (one in about thirteen) is a staple (milk,
#: bread, eggs): customers buy it again anyway, so a personal list never spends a place on it.
#: Everyday groceries sit between 5 and 20 % of baskets; the next products far below.
STAPLE_SHARE = 0.075


def staple_items(counts: npt.NDArray[np.float64], total: float) -> set[int]:
    if total <= 0:
        return set()
    return {int(i) for i in np.flatnonzero(counts / total >= STAPLE_SHARE)}


# ---------------------------------------------------------------------------------------------
# Incremental updates


def update_incremental(
    db: Database,
    *,
    config: RecsConfig | None = None,
    busy: Callable[[], bool] | None = None,
) -> int:
    """One round of the background job: count new orders, then recompute dirty lists.

    Returns how many orders and lists it handled (0 when there was nothing to do), so the
    server's loop goes on at once while work is waiting. While ``busy()`` is true (tills are
    pushing) a round counts at most ``BATCH_ORDERS_BUSY`` orders, so its write is short.
    """
    config = config or default_config()
    limit = BATCH_ORDERS_BUSY if busy is not None and busy() else BATCH_ORDERS
    return count_new_orders(db, config=config, limit=limit) + refresh_dirty_items(db, config=config)


def _lock_state(conn: Connection) -> Any:
    pick = sa.select(recs_state).where(recs_state.c.id == _STATE_ID)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    row = conn.execute(pick).first()
    if row is not None:
        return row
    # Never rebuilt: counting starts now, with the decay's reference here.
    conn.execute(
        _insert(conn, recs_state)
        .values(id=_STATE_ID, reference_at=utc_now(), total_weight=0.0)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return conn.execute(pick).first()


def count_new_orders(
    db: Database,
    *,
    config: RecsConfig,
    limit: int = BATCH_ORDERS,
    trend: TrendConfig | None = None,
) -> int:
    """Add the orders ingested since the watermark to the counts; mark their SKUs, stores and
    customers dirty.

    Two steps, so the database's write lock is held only while the counts are added: read the
    watermark, the new orders and their lines and add them up with reads only; then, in one
    write transaction, check the watermark (and the decay's reference) did not move meanwhile
    (another process counted, or a rebuild reset the counts: nothing is written and the next
    round starts from the new watermark) and add the sums through the driver in bulk.
    """
    trend = trend or TrendConfig()
    now = utc_now()
    first_day, _, today = trend_window(now, trend)
    with db.read() as conn:
        state = conn.execute(_STATE).first()
        if state is None:
            with db.write() as wconn:
                _lock_state(wconn)  # never rebuilt: counting starts now
            return 1  # go on at once
        new = conn.execute(
            _NEW_ORDERS if state.watermark_at is None else _NEW_ORDERS_AFTER,
            {
                "settled": now - SETTLE,
                "limit": limit,
                "at": state.watermark_at,
                "order": state.watermark_order,
            },
        ).all()
        if not new:
            return 0
        ids = [r.order_id for r in new]
        basket: dict[Any, set[str]] = defaultdict(set)
        for first in range(0, len(ids), 500):
            for order_id, sku in conn.execute(_LINES_OF, {"ids": ids[first : first + 500]}):
                basket[order_id].add(sku)
    singles: dict[str, float] = defaultdict(float)
    both: dict[tuple[str, str], float] = defaultdict(float)
    by_store: dict[tuple[str, str], float] = defaultdict(float)
    by_day: dict[tuple[str, int, str], int] = defaultdict(int)
    dirty_stores: set[str] = set()
    dirty_customers: set[str] = set()
    total = 0.0
    for r in new:
        held = sorted(basket.get(r.order_id, ()))
        if not held:
            continue
        weight = decay_weight(
            r.created_at, reference=state.reference_at, half_life_days=config.half_life_days
        )
        total += weight
        day = day_number(r.created_at)
        recent = first_day <= day <= today
        if r.store_id is not None:
            dirty_stores.add(r.store_id)
        if recent:
            dirty_stores.add(feed.ALL_STORES)
        if r.customer_id is not None:
            dirty_customers.add(str(UUID(str(r.customer_id))))
        for a in held:
            singles[a] += weight
            if r.store_id is not None:
                by_store[(r.store_id, a)] += weight
            if recent:
                by_day[(feed.ALL_STORES, day, a)] += 1
                if r.store_id is not None:
                    by_day[(r.store_id, day, a)] += 1
            for b in held:
                if a != b:
                    both[(a, b)] += weight
    with db.write() as conn:
        locked = _lock_state(conn)
        if locked is None:
            return 0  # another process is counting (PostgreSQL)
        if (locked.watermark_at, locked.watermark_order, locked.reference_at) != (
            state.watermark_at,
            state.watermark_order,
            state.reference_at,
        ):
            return 1  # counted or rebuilt meanwhile: read again from the new watermark
        bulk_add(conn, item_counts, ("sku",), "weight", list(singles.items()))
        bulk_add(conn, item_pairs, ("a", "b"), "weight", [(a, b, v) for (a, b), v in both.items()])
        bulk_add(
            conn,
            store_item_counts,
            ("store_id", "sku"),
            "weight",
            [(st, sku, v) for (st, sku), v in by_store.items()],
        )
        bulk_add(
            conn,
            item_days,
            ("store_id", "day", "sku"),
            "baskets",
            [(st, d, sku, v) for (st, d, sku), v in by_day.items()],
        )
        last = new[-1]
        conn.execute(
            recs_state.update()
            .where(recs_state.c.id == _STATE_ID)
            .values(
                watermark_at=last.ingested_at,
                watermark_order=last.order_id,
                total_weight=recs_state.c.total_weight + total,
            )
        )
        mark_dirty(conn, singles)
        mark_lists_dirty(conn, DIRTY_STORE, dirty_stores)
        mark_lists_dirty(conn, DIRTY_PERSONAL, dirty_customers)
        for store_id in sorted({st for st, _, _ in by_day}):
            # Days that left the trending windows are never read again (a key range).
            conn.execute(
                item_days.delete().where(
                    item_days.c.store_id == store_id, item_days.c.day < first_day
                )
            )
    return len(new)


# Built once (a statement built per call costs more than running it).
_STATE = sa.select(recs_state).where(recs_state.c.id == _STATE_ID)
_NEW_ORDER_COLUMNS = (
    orders.c.order_id,
    orders.c.created_at,
    orders.c.ingested_at,
    orders.c.store_id,
    orders.c.customer_id,
)
_NEW_ORDERS = (
    sa.select(*_NEW_ORDER_COLUMNS)
    .where(orders.c.ingested_at <= sa.bindparam("settled", type_=orders.c.ingested_at.type))
    .order_by(orders.c.ingested_at, orders.c.order_id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
# Row-value comparison: both engines walk ix_orders_ingested from the watermark on.
_NEW_ORDERS_AFTER = _NEW_ORDERS.where(
    sa.tuple_(orders.c.ingested_at, orders.c.order_id)
    > sa.tuple_(
        sa.bindparam("at", type_=orders.c.ingested_at.type),
        sa.bindparam("order", type_=orders.c.order_id.type),
    )
)
_LINES_OF = sa.select(order_lines.c.order_id, order_lines.c.sku).where(
    order_lines.c.order_id.in_(sa.bindparam("ids", expanding=True))
)


def mark_dirty(conn: Connection, skus: Iterable[str]) -> None:
    rows = [{"sku": s, "version": 0} for s in sorted(set(skus))]
    if not rows:
        return
    stmt = _insert(conn, dirty_items).on_conflict_do_update(
        index_elements=["sku"], set_={"version": dirty_items.c.version + 1}
    )
    conn.execute(stmt, rows)


def mark_lists_dirty(conn: Connection, kind: str, keys: Iterable[str]) -> None:
    """Queue lists for ``refresh_dirty_lists``: a store's (``DIRTY_STORE``, store id or ``*``)
    or a customer's personal list (``DIRTY_PERSONAL``, customer id)."""
    rows = [{"kind": kind, "key": k, "version": 0} for k in sorted(set(keys))]
    if not rows:
        return
    stmt = _insert(conn, dirty_lists).on_conflict_do_update(
        index_elements=["kind", "key"], set_={"version": dirty_lists.c.version + 1}
    )
    conn.execute(stmt, rows)


def also_bought_lists(
    conn: Connection, skus: Sequence[str], *, config: RecsConfig
) -> dict[str, Computed]:
    """The also-bought lists of ``skus`` from the stored counts, rules applied."""
    partners = _partner_scores(conn, skus, config=config, keep=config.top_n * CANDIDATES)
    merch = load_merchandising(conn)
    categories = _categories(
        conn, set(skus) | {b for rows in partners.values() for b, _ in rows} | merch.skus
    )
    return {
        a: Computed(
            ALSO_BOUGHT,
            a,
            merch.apply(partners.get(a, []), categories=categories, n=config.top_n, key_sku=a),
        )
        for a in skus
    }


def refresh_dirty_items(db: Database, *, config: RecsConfig, limit: int = DIRTY_BATCH) -> int:
    """Recompute the also-bought lists of up to ``limit`` dirty SKUs; send those that changed.

    Lease, compute with reads only, then write the lists of SKUs whose version is unchanged and
    clear their rows (the pattern of ``cards.refresh_dirty_cards``).
    """
    now = utc_now()
    with db.write() as conn:
        pick = (
            sa.select(dirty_items.c.sku, dirty_items.c.version)
            .where(sa.or_(dirty_items.c.leased_until.is_(None), dirty_items.c.leased_until < now))
            .order_by(dirty_items.c.sku)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        leased = {r.sku: int(r.version) for r in conn.execute(pick)}
        if not leased:
            return 0
        conn.execute(
            dirty_items.update()
            .where(dirty_items.c.sku.in_(list(leased)))
            .values(leased_until=now + LEASE)
        )
    with db.read() as conn:
        lists = also_bought_lists(conn, sorted(leased), config=config)
    with db.write() as conn:
        current = dict(
            conn.execute(
                sa.select(dirty_items.c.sku, dirty_items.c.version).where(
                    dirty_items.c.sku.in_(list(leased))
                )
            ).all()
        )
        unchanged = [s for s, v in leased.items() if current.get(s) == v]
        publish(conn, [(lists[s], [feed.ALL_STORES]) for s in unchanged])
        if unchanged:
            conn.execute(dirty_items.delete().where(dirty_items.c.sku.in_(unchanged)))
        changed = [s for s in leased if s in current and s not in set(unchanged)]
        if changed:
            conn.execute(
                dirty_items.update().where(dirty_items.c.sku.in_(changed)).values(leased_until=None)
            )
    return len(leased)


def refresh_dirty_lists(
    db: Database,
    *,
    config: RecsConfig,
    limit: int = DIRTY_LISTS_BATCH,
    trend: TrendConfig | None = None,
) -> int:
    """Recompute the bestsellers and trending lists of dirty stores and the personal lists of
    dirty customers (up to ``limit`` of them); send the lists that changed.

    Lease, compute with reads only, write: as ``refresh_dirty_items``.
    """
    now = utc_now()
    with db.write() as conn:
        pick = (
            sa.select(dirty_lists.c.kind, dirty_lists.c.key, dirty_lists.c.version)
            .where(sa.or_(dirty_lists.c.leased_until.is_(None), dirty_lists.c.leased_until < now))
            .order_by(dirty_lists.c.kind.desc(), dirty_lists.c.key)  # stores first
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        leased = {(r.kind, r.key): int(r.version) for r in conn.execute(pick)}
        if not leased:
            return 0
        for kind in {k for k, _ in leased}:
            conn.execute(
                dirty_lists.update()
                .where(
                    dirty_lists.c.kind == kind,
                    dirty_lists.c.key.in_([key for k, key in leased if k == kind]),
                )
                .values(leased_until=now + LEASE)
            )
    store_keys = [key for kind, key in leased if kind == DIRTY_STORE]
    customers = []
    for kind, key in leased:
        if kind == DIRTY_PERSONAL:
            try:
                customers.append(UUID(key))
            except ValueError:
                log.warning("dropping a malformed dirty personal list key %r", key)
    with db.read() as conn:
        computed = store_lists(conn, store_keys, config=config, now=now, trend=trend)
        computed += personal_lists(conn, customers, config=config, now=now)

    def owner(lst: Computed) -> tuple[str, str]:
        if lst.kind == PERSONAL:
            return DIRTY_PERSONAL, lst.key
        return DIRTY_STORE, lst.key.partition("/")[0]

    with db.write() as conn:
        current: dict[tuple[str, str], int] = {}
        for kind in {k for k, _ in leased}:
            keys = [key for k, key in leased if k == kind]
            for start in range(0, len(keys), 500):
                for r in conn.execute(
                    sa.select(dirty_lists.c.key, dirty_lists.c.version).where(
                        dirty_lists.c.kind == kind,
                        dirty_lists.c.key.in_(keys[start : start + 500]),
                    )
                ):
                    current[(kind, r.key)] = int(r.version)
        unchanged = {k for k, v in leased.items() if current.get(k) == v}
        publish(conn, [(lst, scopes) for lst, scopes in computed if owner(lst) in unchanged])
        for kind in {k for k, _ in unchanged}:
            keys = [key for k, key in unchanged if k == kind]
            for start in range(0, len(keys), 500):
                conn.execute(
                    dirty_lists.delete().where(
                        dirty_lists.c.kind == kind,
                        dirty_lists.c.key.in_(keys[start : start + 500]),
                    )
                )
        again = [k for k in leased if k in current and k not in unchanged]
        for kind, key in again:
            conn.execute(
                dirty_lists.update()
                .where(dirty_lists.c.kind == kind, dirty_lists.c.key == key)
                .values(leased_until=None)
            )
    return len(leased)


# ---------------------------------------------------------------------------------------------
# Reading lists (the API)


def read_list(conn: Connection, kind: str, key: str) -> RecommendationList | None:
    """A stored list as the API answers it, or None."""
    data = conn.execute(
        sa.select(recommendation_lists.c.data).where(
            recommendation_lists.c.kind == kind, recommendation_lists.c.key == key
        )
    ).scalar_one_or_none()
    return None if data is None else RecommendationList.model_validate_json(data)
