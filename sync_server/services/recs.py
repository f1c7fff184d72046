"""Recommendation lists at HQ: counted from every channel's orders, kept current, sent to tills.

What is counted
    Every order (till sales, web-shop orders, imported history) is one *basket*: the set of
    SKUs on its lines. ``item_counts`` holds, per SKU, the number of baskets that held it and
    ``item_pairs`` the number that held both ``a`` and ``b`` (both directions, so a product's
    partners are one key range). Counts are *forward-decayed*: a basket made at ``t`` counts
    ``2 ** ((t - reference) / half_life)`` (``recommender.decay_weight``), so a new basket only
    adds to the counts — old ones never need re-weighting — and every ratio the scores use
    weighs recent baskets more. ``recs_state`` keeps the decayed total of all baskets, the
    decay's reference time and the *watermark*: the last order (by ``ingested_at``, then
    ``order_id``) already counted.

How lists are scored
    ``recommender.pair_scores`` is the one normalization (chosen by measurement, see
    ``recommender``); below its minimum support a pair scores nothing. Bestsellers are the
    decayed basket counts of a store (plus a small share of the chain's, so a new store or a
    thin category still has a list); personal lists come from a customer's own baskets through
    the also-bought lists (``recommender.personal``).

Staying current (``update_incremental``, a background loop of every server process)
    1. In one write transaction, the orders ingested since the watermark (at most
       ``BATCH_ORDERS``, and only those older than ``SETTLE``: a push transaction stamps
       ``ingested_at`` before it commits) are added to the counts with SQL upserts, the
       watermark moves and their SKUs are marked dirty (``dirty_items``, versioned). On
       PostgreSQL the state row is locked ``SKIP LOCKED``: one process counts a batch, the
       others go on to step 2.
    2. Dirty SKUs are leased in batches (as customer cards are, see ``cards``), their lists are
       recomputed from their ``item_pairs`` rows with reads only, and in a last short
       transaction each list whose items changed is written to ``recommendation_lists`` and
       the change feed (entity ``recommendation``, key ``also_bought:<sku>``, every store) —
       lists that came out the same are not sent again. A SKU dirtied again meanwhile keeps
       its row and is recomputed next round.

    A sale thus reaches every till's also-bought lists about ``SETTLE`` plus two worker
    intervals after it is ingested. Only the lists of the basket's own SKUs are recomputed;
    other lists that merely mention them drift until their own SKUs sell or the next rebuild.
    Bestsellers and personal lists are recomputed by ``rebuild`` (``omnitill admin
    rebuild-recs``, e.g. nightly).

Merchandising rules (``merchandising_rules``) apply on top of every list HQ serves or sends:
``exclude`` drops a product or a whole category from every list, ``boost`` multiplies its
score by ``weight``, ``pin`` puts a product first in one product's list (``target_sku``) or in
the lists of every product of a category. A rule change marks every also-bought list dirty.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shared.errors import InvalidInput, NotFound
from shared.recommendations import RecommendationList
from shared.wire import utc_now
from sync_server.db.bulk import bulk_insert
from sync_server.db.engine import Database
from sync_server.db.schema import (
    customer_stores,
    dirty_items,
    item_counts,
    item_pairs,
    merchandising_rules,
    order_lines,
    orders,
    products,
    recommendation_lists,
    recs_state,
    stores,
)
from sync_server.services import feed, identity, recommender
from sync_server.services.recommender import RecsConfig, decay_weight, pair_scores

log = logging.getLogger(__name__)

#: Orders younger than this are left for the next round: their transaction may still commit
#: orders stamped earlier.
SETTLE = timedelta(seconds=2)
#: Most orders counted in one incremental transaction.
BATCH_ORDERS = 5000
#: Dirty SKUs recomputed per lease, and how long a worker may hold them.
DIRTY_BATCH = 500
LEASE = timedelta(seconds=60)
#: Candidates kept per list before rules, as a multiple of the list's length: rules may exclude
#: some and boost others past those above them.
CANDIDATES = 3
#: Share of the chain's sales added to a store's own in its bestsellers (cold start).
CHAIN_PRIOR = 0.05
ALSO_BOUGHT = "also_bought"
BESTSELLERS = "bestsellers"
PERSONAL = "personal"
RULE_KINDS = ("pin", "boost", "exclude")
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
            plain: list[tuple[str, float, str | None]] = [
                (sku, score, None) for sku, score in items if sku != key_sku
            ]
            return plain[:n]
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
    """Every product with counts gets its also-bought list recomputed (after a rule change)."""
    select = sa.select(item_counts.c.sku, sa.literal(0), sa.null()).where(sa.true())
    insert = _insert(conn, dirty_items).from_select(["sku", "version", "leased_until"], select)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["sku"], set_={"version": dirty_items.c.version + 1}
        )
    )


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

    def summary(self) -> str:
        return (
            f"counted {self.orders:,} orders ({self.lines:,} lines): {self.items:,} products, "
            f"{self.pairs:,} pairs; {self.lists:,} lists, {self.changed:,} changed "
            f"({self.seconds:.1f} s)"
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


def rebuild(
    db: Database, *, config: RecsConfig | None = None, settle: timedelta = SETTLE
) -> RebuildReport:
    """Recount everything from all orders and recompute every list; send those that changed.

    It first waits ``settle``, so that orders stamped before it started by pushes still in
    flight are committed and counted (0 when nothing else writes, as in tests).
    """
    config = config or default_config()
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
        categories = _categories(conn, baskets.skus)
        merch = load_merchandising(conn)
        scopes: dict[str, list[str]] = defaultdict(list)
        for customer_id, store_id in conn.execute(
            sa.select(customer_stores.c.customer_id, customer_stores.c.store_id)
        ).all():
            scopes[str(customer_id)].append(store_id)
        categories.update(_categories(conn, merch.skus - set(categories)))
    w = decay_weight(baskets.times, reference=reference, half_life_days=config.half_life_days)
    x = baskets.matrix
    nonempty = np.diff(x.indptr) > 0
    total = float(w[nonempty].sum())
    counts = np.asarray(x.T @ w, dtype=np.float64).ravel()
    from scipy import sparse

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

    best = _bestseller_lists(baskets, w, counts, categories, merch, all_stores, n)
    personal = _personal_lists(baskets, w, also_bought, counts, categories, merch, scopes, n)

    with db.write() as conn:
        conn.execute(item_pairs.delete())
        conn.execute(item_counts.delete())
        conn.execute(dirty_items.delete())
        bulk_insert(
            conn,
            item_counts,
            [{"sku": skus[i], "weight": float(c)} for i, c in enumerate(counts) if c > 0],
        )
        coo = pairs.tocoo()
        for start in range(0, coo.nnz, 200_000):
            stop = start + 200_000
            bulk_insert(
                conn,
                item_pairs,
                [
                    {"a": skus[a], "b": skus[b], "weight": float(v)}
                    for a, b, v in zip(
                        coo.row[start:stop].tolist(),
                        coo.col[start:stop].tolist(),
                        coo.data[start:stop].tolist(),
                        strict=True,
                    )
                ],
            )
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
    changed = 0
    every = also + best + personal
    for start in range(0, len(every), 5000):
        with db.write() as conn:
            changed += publish(conn, every[start : start + 5000])
    report = RebuildReport(
        orders=len(baskets.times),
        lines=baskets.lines,
        items=int((counts > 0).sum()),
        pairs=int(pairs.nnz),
        lists=len(every),
        changed=changed,
        seconds=time.perf_counter() - started,
    )
    log.info("recommendations rebuilt: %s", report.summary())
    return report


def _bestseller_lists(
    baskets: _Baskets,
    w: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    categories: Mapping[str, str],
    merch: Merchandising,
    all_stores: Sequence[str],
    n: int,
) -> list[tuple[Computed, Sequence[str]]]:
    from scipy import sparse

    skus = baskets.skus
    store_ids = list(dict.fromkeys([*baskets.store_ids, *all_stores]))
    code = {s: i for i, s in enumerate(baskets.store_ids)}
    has_store = baskets.store >= 0
    x = baskets.matrix
    by_store = sparse.csr_matrix(
        (w[has_store], (baskets.store[has_store], np.flatnonzero(has_store))),
        shape=(max(len(baskets.store_ids), 1), x.shape[0]),
    )
    per_store = np.asarray((by_store @ x).todense()) if x.shape[1] else np.zeros((1, 0))
    cat_of = np.array([categories.get(s, "") for s in skus], dtype=object)
    cats = sorted({c for c in cat_of if c})
    chain = counts / max(float(counts.max(initial=0.0)), 1e-12)
    out: list[tuple[Computed, Sequence[str]]] = []
    for store in store_ids:
        own = per_store[code[store]] if store in code else np.zeros(len(skus))
        scale = max(float(own.max(initial=0.0)), 1e-12)
        score = own / scale + CHAIN_PRIOR * chain
        for category in ["*", *cats]:
            mask = np.ones(len(skus), dtype=bool) if category == "*" else cat_of == category
            idx = np.flatnonzero(mask & (score > 0))
            top = idx[np.lexsort((idx, -score[idx]))][: n * CANDIDATES]
            ranked = merch.apply(
                [(skus[i], float(score[i])) for i in top], categories=categories, n=n
            )
            out.append((Computed(BESTSELLERS, f"{store}/{category}", ranked), [store]))
    return out


def _personal_lists(
    baskets: _Baskets,
    w: npt.NDArray[np.float64],
    also_bought: recommender.AlsoBought,
    counts: npt.NDArray[np.float64],
    categories: Mapping[str, str],
    merch: Merchandising,
    scopes: Mapping[str, list[str]],
    n: int,
) -> list[tuple[Computed, Sequence[str]]]:
    """``recommender.personal`` for every customer at once, as sparse products: history
    (customers x items, decayed weights) times the also-bought scores (items x items), staples
    left out, the chain's bestsellers filling short lists with score 0."""
    from scipy import sparse

    x = baskets.matrix
    codes: dict[str, int] = {}
    owner = np.array(
        [-1 if c is None else codes.setdefault(c, len(codes)) for c in baskets.customer],
        dtype=np.int64,
    )
    if not codes:
        return []
    known = owner >= 0
    by_customer = sparse.csr_matrix(
        (w[known], (owner[known], np.flatnonzero(known))), shape=(len(codes), x.shape[0])
    )
    history = (by_customer @ x).tocsr()
    n_items = x.shape[1]
    rows, cols, vals = [], [], []
    for item in range(n_items):
        items, scores = also_bought.row(item)
        rows.append(np.full(len(items), item, dtype=np.int64))
        cols.append(items)
        vals.append(scores)
    scores_matrix = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
    staples = staple_items(counts, float(w.sum()))
    keep = np.ones(n_items)
    keep[list(staples)] = 0.0
    personal = (history @ scores_matrix @ sparse.diags(keep)).tocsr()
    personal.eliminate_zeros()
    want = n * CANDIDATES
    fallback = [i for i in recommender.bestsellers(counts, want + len(staples)) if i not in staples]
    skus = baskets.skus
    out: list[tuple[Computed, Sequence[str]]] = []
    for customer, row in codes.items():
        lo, hi = personal.indptr[row], personal.indptr[row + 1]
        s, b = personal.data[lo:hi], personal.indices[lo:hi]
        if len(s) > want:
            part = np.argpartition(-s, want)[:want]
            s, b = s[part], b[part]
        order = np.lexsort((b, -s))
        ranked = [(skus[b[i]], float(s[i])) for i in order]
        chosen = {sku for sku, _ in ranked}
        ranked += [(skus[i], 0.0) for i in fallback if skus[i] not in chosen][: want - len(ranked)]
        key = str(UUID(customer))
        listed = merch.apply(ranked, categories=categories, n=n)
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


def update_incremental(db: Database, *, config: RecsConfig | None = None) -> int:
    """One round of the background job: count new orders, then recompute dirty lists.

    Returns how many orders and lists it handled (0 when there was nothing to do), so the
    server's loop goes on at once while work is waiting.
    """
    config = config or default_config()
    return count_new_orders(db, config=config) + refresh_dirty_items(db, config=config)


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


def count_new_orders(db: Database, *, config: RecsConfig, limit: int = BATCH_ORDERS) -> int:
    """Add the orders ingested since the watermark to the counts; mark their SKUs dirty."""
    now = utc_now()
    with db.write() as conn:
        state = _lock_state(conn)
        if state is None:
            return 0  # another process is counting (PostgreSQL)
        query = (
            sa.select(orders.c.order_id, orders.c.created_at, orders.c.ingested_at)
            .where(orders.c.ingested_at <= now - SETTLE)
            .order_by(orders.c.ingested_at, orders.c.order_id)
            .limit(limit)
        )
        if state.watermark_at is not None:
            query = query.where(
                sa.tuple_(orders.c.ingested_at, orders.c.order_id)
                > sa.tuple_(
                    sa.literal(state.watermark_at, orders.c.ingested_at.type),
                    sa.literal(state.watermark_order, orders.c.order_id.type),
                )
            )
        new = conn.execute(query).all()
        if not new:
            return 0
        ids = [r.order_id for r in new]
        basket: dict[Any, set[str]] = defaultdict(set)
        for start in range(0, len(ids), 500):
            for order_id, sku in conn.execute(
                sa.select(order_lines.c.order_id, order_lines.c.sku).where(
                    order_lines.c.order_id.in_(ids[start : start + 500])
                )
            ).all():
                basket[order_id].add(sku)
        singles: dict[str, float] = defaultdict(float)
        both: dict[tuple[str, str], float] = defaultdict(float)
        total = 0.0
        for r in new:
            held = sorted(basket.get(r.order_id, ()))
            if not held:
                continue
            weight = decay_weight(
                r.created_at, reference=state.reference_at, half_life_days=config.half_life_days
            )
            total += weight
            for a in held:
                singles[a] += weight
                for b in held:
                    if a != b:
                        both[(a, b)] += weight
        _add(conn, item_counts, ["sku"], [{"sku": k, "weight": v} for k, v in singles.items()])
        _add(
            conn,
            item_pairs,
            ["a", "b"],
            [{"a": a, "b": b, "weight": v} for (a, b), v in both.items()],
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
    return len(new)


def _add(conn: Connection, table: sa.Table, key: list[str], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=key, set_={"weight": table.c.weight + stmt.excluded.weight}
    )
    for start in range(0, len(rows), 5000):
        conn.execute(stmt, rows[start : start + 5000])


def mark_dirty(conn: Connection, skus: Iterable[str]) -> None:
    rows = [{"sku": s, "version": 0} for s in sorted(set(skus))]
    if not rows:
        return
    stmt = _insert(conn, dirty_items).on_conflict_do_update(
        index_elements=["sku"], set_={"version": dirty_items.c.version + 1}
    )
    conn.execute(stmt, rows)


def also_bought_lists(
    conn: Connection, skus: Sequence[str], *, config: RecsConfig
) -> dict[str, Computed]:
    """The also-bought lists of ``skus`` from the stored counts, rules applied."""
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
    needed = set(skus) | {b for rows in partners.values() for b, _ in rows}
    counts: dict[str, float] = {}
    wanted = list(needed)
    for start in range(0, len(wanted), 500):
        counts.update(
            (sku, float(weight))
            for sku, weight in conn.execute(
                sa.select(item_counts.c.sku, item_counts.c.weight).where(
                    item_counts.c.sku.in_(wanted[start : start + 500])
                )
            )
        )
    merch = load_merchandising(conn)
    categories = _categories(conn, needed | merch.skus)
    out: dict[str, Computed] = {}
    keep = config.top_n * CANDIDATES
    for a in skus:
        rows = partners.get(a, [])
        scored: list[tuple[str, float]] = []
        if rows and total:
            c_ab = np.array([w for _, w in rows], dtype=np.float64)
            c_b = np.array([counts.get(b, 0.0) for b, _ in rows], dtype=np.float64)
            c_a = np.full(len(rows), counts.get(a, 0.0), dtype=np.float64)
            s = np.asarray(pair_scores(c_ab, c_a, c_b, float(total), config), dtype=np.float64)
            scored = sorted(
                (
                    (b, float(v))
                    for (b, _), v in zip(rows, s, strict=True)
                    if np.isfinite(v) and v > 0
                ),
                key=lambda item: (-item[1], item[0]),
            )[:keep]
        ranked = merch.apply(scored, categories=categories, n=config.top_n, key_sku=a)
        out[a] = Computed(ALSO_BOUGHT, a, ranked)
    return out


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


# ---------------------------------------------------------------------------------------------
# Reading lists (the API)


def read_list(conn: Connection, kind: str, key: str) -> RecommendationList | None:
    data = conn.execute(
        sa.select(recommendation_lists.c.data).where(
            recommendation_lists.c.kind == kind, recommendation_lists.c.key == key
        )
    ).scalar_one_or_none()
    return None if data is None else RecommendationList.model_validate_json(data)
