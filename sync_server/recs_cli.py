"""``omnitill eval-recs``: offline evaluation of the recommender against the usual baselines.

The method (also in ``docs/recommendations.md``):

1. Read the baskets: a Groceries-style file (one basket per line, comma-separated item names)
   or the demo data's ``orders.jsonl`` (one order per line; its SKUs are the items and its
   ``created_at`` the basket time, which turns on the time decay).
2. Shuffle the baskets with the seed and keep ``--test-fraction`` of them for testing. Nothing
   about the test baskets is used for training or for choosing parameters.
3. In every test basket with two or more distinct items, hide one item (chosen with the seed);
   each method ranks candidates from the visible items, never proposing a visible item.
4. Report hit rate at 1, 3, 5 and 10 (the hidden item is in the top k) and MRR (reciprocal rank
   of the hidden item in the top 10, 0 when absent), plus the training time in seconds.

Methods: ``omnitill`` (:func:`sync_server.services.recommender.fit`, lists of the visible items
summed), ``popularity`` (bestsellers), ``cooccurrence`` (raw pair counts summed) and ``mlxtend``
(fpgrowth + association_rules, rules whose antecedent is a subset of the visible items ranked by
confidence then lift). ``--grid`` instead tunes Omnitill's knobs on a validation split carved
out of the *training* baskets, with raw lift shown for comparison.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any, Final

import click
import numpy as np
import numpy.typing as npt

from sync_server.services.recommender import (
    AlsoBought,
    RecsConfig,
    bestsellers,
    count,
    fit,
)

logger = logging.getLogger(__name__)

KS: Final = (1, 3, 5, 10)
METHODS: Final = ("omnitill", "popularity", "cooccurrence", "mlxtend")
#: mlxtend's minimum itemset support: 0.0002 (itemsets in ~5 of the 24,000 training baskets of
#: the default demo data) is where its quality stops improving (0.0001 is barely better and
#: twice as slow; 0.001 and above lose a fifth of the MRR); measured in docs/recommendations.md.
DEFAULT_MLXTEND_SUPPORT: Final = 0.0002
#: How far down the combined lists a method looks.
DEPTH: Final = 10


@dataclass(frozen=True)
class BasketData:
    """Baskets as lists of distinct item numbers, the item names, and optional basket times."""

    baskets: list[list[int]]
    names: list[str]
    times: npt.NDArray[np.float64] | None


def read_baskets(path: Path) -> BasketData:
    """Read a Groceries-style basket file or a demo ``orders.jsonl`` (detected by content)."""
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    if path.suffix in {".jsonl", ".json"} or first.lstrip().startswith("{"):
        return _read_orders(path)
    return _read_groceries(path)


def _intern(names: dict[str, int], items: Iterable[str]) -> list[int]:
    basket: list[int] = []
    seen: set[int] = set()
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        number = names.setdefault(name, len(names))
        if number not in seen:
            seen.add(number)
            basket.append(number)
    return basket


def _read_groceries(path: Path) -> BasketData:
    names: dict[str, int] = {}
    baskets: list[list[int]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            basket = _intern(names, line.split(","))
            if basket:
                baskets.append(basket)
    return BasketData(baskets=baskets, names=list(names), times=None)


def _read_orders(path: Path) -> BasketData:
    names: dict[str, int] = {}
    baskets: list[list[int]] = []
    times: list[float] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                order = json.loads(line)
                skus = [str(entry["sku"]) for entry in order["lines"]]
                created = datetime.fromisoformat(str(order["created_at"]).replace("Z", "+00:00"))
            except (ValueError, KeyError, TypeError) as exc:
                raise click.ClickException(
                    f"{path}, line {number}: not an order with 'lines' of 'sku' and a "
                    f"'created_at' ({exc})"
                ) from exc
            basket = _intern(names, skus)
            if basket:
                baskets.append(basket)
                times.append(created.timestamp())
    return BasketData(baskets=baskets, names=list(names), times=np.asarray(times))


@dataclass(frozen=True)
class Split:
    """Training baskets (and their times) and the test cases: (visible items, hidden item)."""

    train: list[list[int]]
    train_times: npt.NDArray[np.float64] | None
    cases: list[tuple[list[int], int]]


def split(data: BasketData, *, seed: int, test_fraction: float) -> Split:
    """Shuffle with ``seed``, hold out ``test_fraction`` and hide one item per test basket."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.baskets))
    n_test = round(len(order) * test_fraction)
    test_idx, train_idx = order[:n_test], np.sort(order[n_test:])
    cases: list[tuple[list[int], int]] = []
    for index in test_idx:
        basket = data.baskets[int(index)]
        if len(basket) < 2:
            continue
        hidden = int(rng.integers(len(basket)))
        cases.append((basket[:hidden] + basket[hidden + 1 :], basket[hidden]))
    train = [data.baskets[int(i)] for i in train_idx]
    times = data.times[train_idx] if data.times is not None else None
    return Split(train=train, train_times=times, cases=cases)


Ranker = Callable[[Sequence[int]], list[int]]


def metrics(ranker: Ranker, cases: Sequence[tuple[list[int], int]]) -> dict[str, float]:
    """hr@1, hr@3, hr@5, hr@10 and MRR (over the top 10) of ``ranker`` on the test cases."""
    hits = dict.fromkeys(KS, 0)
    reciprocal = 0.0
    for visible, hidden in cases:
        ranked = ranker(visible)[:DEPTH]
        if hidden in ranked:
            rank = ranked.index(hidden) + 1
            reciprocal += 1.0 / rank
            for k in KS:
                hits[k] += rank <= k
    total = max(len(cases), 1)
    result = {f"hr@{k}": hits[k] / total for k in KS}
    result["mrr"] = reciprocal / total
    return result


def _top(totals: dict[int, float], n: int) -> list[int]:
    return [item for item, _ in sorted(totals.items(), key=lambda p: (-p[1], p[0]))[:n]]


def list_ranker(lists: AlsoBought, fallback: Sequence[int] = ()) -> Ranker:
    """Sum the lists of the visible items; pad with ``fallback`` (bestsellers) if short."""

    def rank(visible: Sequence[int]) -> list[int]:
        shown = set(visible)
        ranked = _top(lists.combined(((v, 1.0) for v in visible), exclude=shown), DEPTH)
        for item in fallback:
            if len(ranked) >= DEPTH:
                break
            if item not in shown and item not in ranked:
                ranked.append(item)
        return ranked

    return rank


def train_omnitill(train: Split, n_items: int, config: RecsConfig) -> Ranker:
    """Omnitill: decayed counts, :func:`pair_scores`, lists summed; bestsellers pad."""
    lists = fit(train.train, n_items=n_items, times=train.train_times, config=config)
    popular = bestsellers(_item_counts(train.train, n_items), DEPTH * 3)
    return list_ranker(lists, popular)


def _item_counts(baskets: Sequence[Sequence[int]], n_items: int) -> npt.NDArray[np.float64]:
    flat = np.fromiter((i for b in baskets for i in b), dtype=np.int64)
    return np.bincount(flat, minlength=n_items).astype(np.float64)


def train_popularity(train: Split, n_items: int) -> Ranker:
    """Popularity: the bestsellers not already in the basket."""
    popular = bestsellers(_item_counts(train.train, n_items), DEPTH + 64)

    def rank(visible: Sequence[int]) -> list[int]:
        shown = set(visible)
        return [item for item in popular if item not in shown][:DEPTH]

    return rank


def _raw_lists(train: Split, n_items: int, *, lift: bool, top_n: int = 50) -> AlsoBought:
    counts = count(train.train, n_items=n_items, config=RecsConfig(half_life_days=0))
    pairs = counts.pairs.tocoo()
    values = pairs.data.astype(np.float64)
    if lift:
        values = values * counts.n_baskets / (counts.items[pairs.row] * counts.items[pairs.col])
    return AlsoBought.from_pairs(pairs.row, pairs.col, values, n_items=n_items, top_n=top_n)


def train_cooccurrence(train: Split, n_items: int) -> Ranker:
    """Raw co-occurrence: pair counts summed over the visible items."""
    return list_ranker(_raw_lists(train, n_items, lift=False))


def train_lift(train: Split, n_items: int) -> Ranker:
    """Raw lift (shown by ``--grid`` only): ``c_ab * n / (c_a * c_b)`` summed."""
    return list_ranker(_raw_lists(train, n_items, lift=True))


def train_mlxtend(train: Split, n_items: int, *, min_support: float) -> Ranker:
    """Association rules: fpgrowth + association_rules, matched on antecedent subsets."""
    import pandas as pd  # type: ignore[import-untyped]
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    used = np.unique(np.fromiter((i for b in train.train for i in b), dtype=np.int64))
    column = {int(item): position for position, item in enumerate(used)}
    onehot = np.zeros((len(train.train), used.size), dtype=bool)
    for row, basket in enumerate(train.train):
        onehot[row, [column[i] for i in basket]] = True
    frame = pd.DataFrame(onehot, columns=[int(i) for i in used])
    itemsets = fpgrowth(frame, min_support=min_support, use_colnames=True)
    rules_by_antecedent: dict[frozenset[int], list[tuple[float, float, frozenset[int]]]] = {}
    max_len = 0
    if len(itemsets):
        rules = association_rules(itemsets, num_itemsets=len(frame), min_threshold=0.0)
        for antecedent, consequent, confidence, lift in zip(
            rules["antecedents"],
            rules["consequents"],
            rules["confidence"],
            rules["lift"],
            strict=True,
        ):
            key = frozenset(int(i) for i in antecedent)
            rules_by_antecedent.setdefault(key, []).append(
                (float(confidence), float(lift), frozenset(int(i) for i in consequent))
            )
            max_len = max(max_len, len(key))

    def rank(visible: Sequence[int]) -> list[int]:
        shown = set(visible)
        best: dict[int, tuple[float, float]] = {}
        for size in range(1, min(max_len, len(visible)) + 1):
            for subset in combinations(sorted(shown), size):
                for confidence, lift, consequent in rules_by_antecedent.get(frozenset(subset), ()):
                    for item in consequent - shown:
                        if (confidence, lift) > best.get(item, (-1.0, -1.0)):
                            best[item] = (confidence, lift)
        ordered = sorted(best.items(), key=lambda p: (-p[1][0], -p[1][1], p[0]))
        return [item for item, _ in ordered[:DEPTH]]

    return rank


def _timed(train: Callable[[], Ranker]) -> tuple[Ranker, float]:
    started = time.perf_counter()
    ranker = train()
    return ranker, time.perf_counter() - started


def evaluate(
    data: BasketData,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    config: RecsConfig | None = None,
    mlxtend_support: float = DEFAULT_MLXTEND_SUPPORT,
    methods: Sequence[str] = METHODS,
) -> dict[str, dict[str, float]]:
    """Metrics and training seconds of every method, keyed by method name."""
    config = config or RecsConfig()
    parts = split(data, seed=seed, test_fraction=test_fraction)
    n_items = len(data.names)
    trainers: dict[str, Callable[[], Ranker]] = {
        "omnitill": lambda: train_omnitill(parts, n_items, config),
        "popularity": lambda: train_popularity(parts, n_items),
        "cooccurrence": lambda: train_cooccurrence(parts, n_items),
        "mlxtend": lambda: train_mlxtend(parts, n_items, min_support=mlxtend_support),
        "lift": lambda: train_lift(parts, n_items),
    }
    results: dict[str, dict[str, float]] = {}
    for name in methods:
        ranker, seconds = _timed(trainers[name])
        results[name] = {**metrics(ranker, parts.cases), "seconds": seconds}
        logger.info("%s: %s", name, results[name])
    return results


#: The grid searched by ``--grid`` (on a validation split of the training baskets).
GRID: Final[dict[str, tuple[float, ...]]] = {
    "alpha": (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    "shrink": (0.0, 1.0, 2.0, 5.0, 20.0),
    "min_support": (1.0, 2.0, 3.0),
    "half_life_days": (0.0, 90.0, 180.0, 365.0, 730.0),
    "power": (1.0, 2.0, 3.0, 5.0),
    "top_n": (20.0, 50.0),
}


def tune(
    data: BasketData, *, seed: int, test_fraction: float
) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Grid results on a validation split of the training baskets only (best mrr first).

    One knob moves at a time from the defaults (coordinate search), plus raw lift and raw
    co-occurrence as rows with an empty configuration, so the table shows why they fail.
    """
    parts = split(data, seed=seed, test_fraction=test_fraction)
    inner = BasketData(baskets=parts.train, names=data.names, times=parts.train_times)
    rows: list[tuple[dict[str, float], dict[str, float]]] = []
    base = RecsConfig()
    for knob, values in GRID.items():
        for value in values:
            setting: dict[str, Any] = {knob: int(value) if knob == "top_n" else value}
            config = replace(base, **setting)
            result = evaluate(
                inner,
                seed=seed + 1,
                test_fraction=test_fraction,
                config=config,
                methods=("omnitill",),
            )["omnitill"]
            rows.append(({knob: value}, result))
    for name in ("lift", "cooccurrence"):
        baseline = evaluate(inner, seed=seed + 1, test_fraction=test_fraction, methods=(name,))
        rows.append(({name: 1.0}, baseline[name]))
    return rows


def _table(results: dict[str, dict[str, float]]) -> str:
    header = f"{'method':<14}" + "".join(f"{c:>9}" for c in (*_columns(), "seconds"))
    lines = [header, "-" * len(header)]
    for name, values in results.items():
        cells = "".join(f"{values[c]:>9.4f}" for c in _columns())
        lines.append(f"{name:<14}{cells}{values['seconds']:>9.3f}")
    return "\n".join(lines)


def _columns() -> tuple[str, ...]:
    return (*(f"hr@{k}" for k in KS), "mrr")


@click.command("eval-recs")
@click.option(
    "--baskets",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Groceries-style file (one basket per line, comma-separated item names) or a demo "
    "orders.jsonl.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option(
    "--test-fraction",
    type=click.FloatRange(0.01, 0.9),
    default=0.2,
    show_default=True,
    help="Share of the baskets held out for testing.",
)
@click.option(
    "--mlxtend-support",
    type=click.FloatRange(0.0001, 1.0),
    default=DEFAULT_MLXTEND_SUPPORT,
    show_default=True,
    help="min_support of mlxtend's fpgrowth (share of training baskets).",
)
@click.option(
    "--grid",
    is_flag=True,
    help="Tune Omnitill's knobs on a validation split of the training baskets instead.",
)
def eval_recs(
    path: Path,
    as_json: bool,
    seed: int,
    test_fraction: float,
    mlxtend_support: float,
    grid: bool,
) -> None:
    """Evaluate the recommender against popularity, co-occurrence and mlxtend rules.

    Hides one item of each test basket and reports hit rate at 1, 3, 5 and 10, MRR and
    training seconds of every method.
    """
    data = read_baskets(path)
    if len(data.baskets) < 10:
        raise click.ClickException(f"{path} has {len(data.baskets)} baskets; at least 10 needed")
    if grid:
        rows = tune(data, seed=seed, test_fraction=test_fraction)
        if as_json:
            click.echo(json.dumps([{"config": c, **r} for c, r in rows]))
        else:
            for config, result in rows:
                label = ", ".join(f"{k}={v:g}" for k, v in config.items())
                cells = " ".join(f"{c}={result[c]:.4f}" for c in _columns())
                click.echo(f"{label:<22} {cells}")
        return
    results = evaluate(
        data, seed=seed, test_fraction=test_fraction, mlxtend_support=mlxtend_support
    )
    if as_json:
        payload: dict[str, Any] = results
        click.echo(json.dumps(payload))
    else:
        click.echo(_table(results))
