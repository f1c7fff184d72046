"""Item-to-item recommendations: "bought also bought", bestsellers and personal lists.

Pure numpy/scipy code: no database, no web framework. The server keeps the counts in its
database and calls :func:`pair_scores` on them; :func:`fit` computes every list at once from a
list of baskets (full rebuilds and the offline evaluation, ``omnitill eval-recs``).

Counts
    Each basket (an order, a sale) counts once per distinct item, whatever the quantity: a pack
    of six yoghurts is one vote for "yoghurt goes with granola", not six. ``c_a`` is the
    (time-decayed) number of baskets with item ``a``, ``c_ab`` the number with both ``a`` and
    ``b``, ``n_baskets`` the (time-decayed) number of baskets.

Normalization (chosen by measurement, see ``docs/recommendations.md``)
    Raw co-occurrence ``c_ab`` ranks the bestsellers (milk, bread) first for every product; raw
    lift ``c_ab * n / (c_a * c_b)`` rewards pairs seen once or twice between rare items. The
    score used here is a popularity-damped association with a shrinkage factor::

        score(a -> b) = c_ab / (c_a ** alpha * c_b ** (1 - alpha)) * c_ab / (c_ab + shrink)

    ``alpha = 1`` is confidence P(b | a) (repeats bestsellers), ``alpha = 0.5`` is cosine,
    ``alpha -> 0`` approaches lift. The shrink factor pulls scores backed by few baskets toward
    zero, and pairs seen in fewer than ``min_support`` (decayed) baskets score 0. Lists of
    several items (a basket, a customer's history) combine by summing scores; ``power`` above 1
    lets one strong partner outweigh several weak ones there. The defaults of
    :class:`RecsConfig` are the best of a grid measured on a validation split carved out of the
    demo data's training split (never on the test split).

Forward time decay
    A basket at time ``t`` weighs ``2 ** ((t - reference) / half_life)``: weights *grow* with
    time instead of old ones shrinking, so a new sale is added to the counts as they stand,
    without rescaling every stored count. The score is a ratio of counts of the same degree
    (``c_ab / (c_a ** alpha * c_b ** (1 - alpha))`` is unchanged when every count is multiplied
    by the same factor), so the reference cancels: only ``min_support`` and ``shrink`` are in
    units of "baskets at the reference time". The server keeps the reference near the present
    and moves it forward (rescaling the stored counts once) long before weights outgrow float
    precision (``2 ** 1000`` is about 500 years at a 180-day half-life).

Personal lists
    A customer's history is a list of ``(item, weight)``: purchases, views and cart adds
    weighted by the caller. Candidates are scored by the weighted sum of the also-bought scores
    of the history items. Staples the customer buys regularly (``exclude_staples``: milk every
    week) are never recommended as discoveries; they are already in the basket by habit. Items
    the customer only looked at or left in a cart may be recommended when they go with the rest
    of the history. Without any usable history (a new customer) the list is the bestsellers the
    caller passes as ``fallback``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, kw_only=True)
class RecsConfig:
    """The knobs of the recommender.

    ``half_life_days``
        Forward time decay: a basket ``half_life_days`` older than another weighs half as
        much. ``0`` or ``inf`` switches decay off (every basket weighs 1).
    ``min_support``
        Pairs seen in fewer (decayed) baskets than this score 0: one shared basket is chance.
    ``shrink``
        Shrinkage of the association toward 0 for pairs with little evidence: the score is
        multiplied by ``c_ab / (c_ab + shrink)``.
    ``alpha``
        Popularity damping between confidence (``1``: repeats bestsellers) and lift-like
        (``0``: favours rare partners). Chosen by measurement.
    ``power``
        The association is raised to this power. It does not change the order of one
        product's list, only how lists combine when several items are summed (a basket, a
        customer's history): above 1, one strong partner outweighs several weak ones.
    ``top_n``
        How many also-bought items are kept per product.
    """

    half_life_days: float = 365.0
    min_support: float = 1.0
    shrink: float = 0.0
    alpha: float = 0.8
    power: float = 2.0
    top_n: int = 20

    def __post_init__(self) -> None:
        if self.half_life_days < 0:
            raise ValueError(f"half_life_days must be >= 0, got {self.half_life_days}")
        if self.min_support < 0 or self.shrink < 0:
            raise ValueError("min_support and shrink must be >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.power <= 0:
            raise ValueError(f"power must be > 0, got {self.power}")
        if self.top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {self.top_n}")

    @property
    def decays(self) -> bool:
        """Whether baskets are weighted by age at all."""
        return 0.0 < self.half_life_days < float("inf")


def pair_scores(
    c_ab: npt.ArrayLike,
    c_a: npt.ArrayLike,
    c_b: npt.ArrayLike,
    n_baskets: float,
    config: RecsConfig,
) -> FloatArray:
    """The also-bought score of ``b`` for a customer buying ``a``, elementwise.

    ``c_ab`` pair counts, ``c_a`` and ``c_b`` item counts (all time-decayed the same way) and
    ``n_baskets`` the total basket weight, which only guards against empty data here: the
    chosen form is a ratio of counts and needs no total. Pairs below ``min_support`` score 0.
    """
    ab = np.asarray(c_ab, dtype=np.float64)
    a = np.asarray(c_a, dtype=np.float64)
    b = np.asarray(c_b, dtype=np.float64)
    if n_baskets <= 0:
        return np.zeros(np.broadcast(ab, a, b).shape, dtype=np.float64)
    alpha = config.alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = np.power(a, alpha) * np.power(b, 1.0 - alpha)
        score = np.power(ab / denominator * (ab / (ab + config.shrink)), config.power)
    keep = (ab >= config.min_support) & (ab > 0) & (denominator > 0)
    return np.where(keep, score, 0.0)


@overload
def decay_weight(at: datetime, *, reference: datetime, half_life_days: float) -> float: ...


@overload
def decay_weight(
    at: npt.NDArray[np.float64] | npt.NDArray[np.datetime64],
    *,
    reference: datetime,
    half_life_days: float,
) -> FloatArray: ...


def decay_weight(
    at: datetime | npt.NDArray[np.float64] | npt.NDArray[np.datetime64],
    *,
    reference: datetime,
    half_life_days: float,
) -> float | FloatArray:
    """Forward-decay weight ``2 ** ((at - reference) / half_life)`` of a basket made at ``at``.

    ``at`` is an aware datetime, an array of ``datetime64`` or an array of POSIX seconds.
    Later baskets weigh more; ``half_life_days`` of 0 or infinity gives weight 1.
    """
    if reference.tzinfo is None:
        raise ValueError("the decay reference must be a timezone-aware UTC datetime")
    decays = 0.0 < half_life_days < float("inf")
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("basket times must be timezone-aware UTC datetimes")
        if not decays:
            return 1.0
        elapsed = (at - reference).total_seconds() / SECONDS_PER_DAY
        return float(2.0 ** (elapsed / half_life_days))
    seconds = _posix_seconds(at)
    if not decays:
        return np.ones(seconds.shape, dtype=np.float64)
    days = (seconds - reference.timestamp()) / SECONDS_PER_DAY
    return np.asarray(np.exp2(days / half_life_days), dtype=np.float64)


def _posix_seconds(at: npt.NDArray[np.float64] | npt.NDArray[np.datetime64]) -> FloatArray:
    array = np.asarray(at)
    if np.issubdtype(array.dtype, np.datetime64):
        return array.astype("datetime64[ms]").astype(np.int64).astype(np.float64) / 1000.0
    return array.astype(np.float64)


class AlsoBought:
    """The top also-bought items of every product, kept as compressed rows (like CSR)."""

    __slots__ = ("_indptr", "_items", "_scores", "n_items")

    def __init__(
        self, *, indptr: IntArray, items: IntArray, scores: FloatArray, n_items: int
    ) -> None:
        if indptr.shape != (n_items + 1,) or items.shape != scores.shape:
            raise ValueError("indptr must have n_items + 1 entries and items match scores")
        self._indptr = indptr
        self._items = items
        self._scores = scores
        self.n_items = n_items

    @classmethod
    def from_pairs(
        cls,
        a: npt.ArrayLike,
        b: npt.ArrayLike,
        scores: npt.ArrayLike,
        *,
        n_items: int,
        top_n: int,
    ) -> AlsoBought:
        """Keep the ``top_n`` best ``b`` of every ``a`` (score > 0, ``b != a``), best first."""
        rows = np.asarray(a, dtype=np.int64)
        cols = np.asarray(b, dtype=np.int64)
        values = np.asarray(scores, dtype=np.float64)
        keep = (values > 0) & (rows != cols)
        rows, cols, values = rows[keep], cols[keep], values[keep]
        # Best first within each row; ties broken by item number so lists are deterministic.
        order = np.lexsort((cols, -values, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        counts = np.bincount(rows, minlength=n_items)
        starts = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        rank = np.arange(rows.size, dtype=np.int64) - starts[rows]
        top = rank < top_n
        rows, cols, values = rows[top], cols[top], values[top]
        indptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_items), out=indptr[1:])
        return cls(indptr=indptr, items=cols, scores=values, n_items=n_items)

    def top(self, item: int, n: int) -> list[tuple[int, float]]:
        """The ``n`` best also-bought items of ``item`` as ``(item, score)``, best first."""
        if not 0 <= item < self.n_items:
            return []
        start = int(self._indptr[item])
        stop = min(int(self._indptr[item + 1]), start + max(n, 0))
        return [
            (int(i), float(s))
            for i, s in zip(self._items[start:stop], self._scores[start:stop], strict=True)
        ]

    def lists(self, n: int) -> dict[int, list[tuple[int, float]]]:
        """Every non-empty list, cut to ``n`` items."""
        nonempty = np.flatnonzero(np.diff(self._indptr) > 0)
        return {int(item): self.top(int(item), n) for item in nonempty}

    def row(self, item: int) -> tuple[IntArray, FloatArray]:
        """The stored list of ``item`` as arrays (items, scores), best first."""
        start, stop = int(self._indptr[item]), int(self._indptr[item + 1])
        return self._items[start:stop], self._scores[start:stop]

    def combined(
        self, weighted_items: Iterable[tuple[int, float]], *, exclude: Iterable[int] = ()
    ) -> dict[int, float]:
        """Sum of ``weight * score`` over the lists of several items, minus ``exclude``."""
        totals: dict[int, float] = {}
        for item, weight in weighted_items:
            if not 0 <= item < self.n_items or weight <= 0:
                continue
            items, scores = self.row(item)
            for other, score in zip(items.tolist(), scores.tolist(), strict=True):
                totals[other] = totals.get(other, 0.0) + weight * score
        for item in exclude:
            totals.pop(item, None)
        return totals


@dataclass(frozen=True)
class Counts:
    """Decayed counts of one fit: pair counts (sparse, symmetric), item counts, total."""

    pairs: sp.csr_matrix
    items: FloatArray
    n_baskets: float


def basket_matrix(
    baskets: Sequence[Sequence[int]], *, n_items: int, weights: FloatArray | None = None
) -> sp.csr_matrix:
    """Baskets x items, one entry per distinct item of a basket, valued by the basket weight."""
    lengths = np.fromiter((len(b) for b in baskets), dtype=np.int64, count=len(baskets))
    indptr = np.zeros(len(baskets) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.fromiter(
        (item for basket in baskets for item in basket), dtype=np.int64, count=int(indptr[-1])
    )
    if indices.size and (indices.min() < 0 or indices.max() >= n_items):
        raise ValueError(f"basket items must be in 0..{n_items - 1}")
    data = (
        np.ones(indices.size, dtype=np.float64)
        if weights is None
        else np.repeat(np.asarray(weights, dtype=np.float64), lengths)
    )
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(baskets), n_items))
    # Duplicate lines of one item in a basket count once: sum_duplicates adds them, so set the
    # data back to the basket weight.
    matrix.sum_duplicates()
    if weights is None:
        matrix.data[:] = 1.0
    else:
        row_of = np.repeat(np.arange(len(baskets)), np.diff(matrix.indptr))
        matrix.data[:] = np.asarray(weights, dtype=np.float64)[row_of]
    return matrix


def count(
    baskets: Sequence[Sequence[int]],
    *,
    n_items: int,
    times: npt.NDArray[np.float64] | npt.NDArray[np.datetime64] | None = None,
    config: RecsConfig,
    reference: datetime | None = None,
) -> Counts:
    """Decayed pair and item counts of ``baskets``: ``X^T X`` of the weighted basket matrix."""
    weights: FloatArray | None = None
    if times is not None and config.decays:
        seconds = _posix_seconds(times)
        if seconds.shape != (len(baskets),):
            raise ValueError("times must have one entry per basket")
        ref = reference or datetime.fromtimestamp(float(seconds.max(initial=0.0)), tz=UTC)
        weights = decay_weight(seconds, reference=ref, half_life_days=config.half_life_days)
    weighted = basket_matrix(baskets, n_items=n_items, weights=weights)
    binary = weighted.copy()
    binary.data[:] = 1.0
    pairs = sp.csr_matrix(weighted.T @ binary)
    items = np.asarray(weighted.sum(axis=0), dtype=np.float64).ravel()
    total = float(weights.sum()) if weights is not None else float(len(baskets))
    return Counts(pairs=pairs, items=items, n_baskets=total)


def also_bought_from_counts(counts: Counts, config: RecsConfig) -> AlsoBought:
    """Score every counted pair with :func:`pair_scores` and keep each item's top list."""
    pairs = counts.pairs.tocoo()
    rows = pairs.row.astype(np.int64)
    cols = pairs.col.astype(np.int64)
    scores = pair_scores(
        pairs.data, counts.items[rows], counts.items[cols], counts.n_baskets, config
    )
    return AlsoBought.from_pairs(rows, cols, scores, n_items=counts.items.size, top_n=config.top_n)


def fit(
    baskets: Sequence[Sequence[int]],
    *,
    n_items: int,
    times: npt.NDArray[np.float64] | npt.NDArray[np.datetime64] | None = None,
    config: RecsConfig | None = None,
) -> AlsoBought:
    """Every product's also-bought list from ``baskets`` (lists of item numbers).

    ``times`` (POSIX seconds or ``datetime64``, one per basket) turns on the time decay, with
    the latest basket as the reference.
    """
    config = config or RecsConfig()
    return also_bought_from_counts(
        count(baskets, n_items=n_items, times=times, config=config), config
    )


def bestsellers(counts: npt.ArrayLike, n: int) -> list[int]:
    """The ``n`` items with the highest counts, best first (ties: lower item number first)."""
    values = np.asarray(counts, dtype=np.float64)
    if n <= 0 or values.size == 0:
        return []
    order = np.lexsort((np.arange(values.size), -values))
    return [int(i) for i in order[:n] if values[i] > 0]


def personal(
    history: Sequence[tuple[int, float]],
    also_bought: AlsoBought,
    *,
    exclude_staples: set[int] | None = None,
    n: int,
    fallback: Sequence[int] = (),
) -> list[tuple[int, float]]:
    """A customer's recommendations from their weighted history, best first.

    Scores are ``sum(weight(h) * score(h -> c))`` over history items ``h``. Staples in
    ``exclude_staples`` are never recommended (they are habit, not discovery). When the history
    gives fewer than ``n`` items, ``fallback`` (the bestsellers) fills the list, with score 0,
    skipping staples and items already listed.
    """
    staples = exclude_staples or set()
    weights: dict[int, float] = {}
    for item, weight in history:
        weights[item] = weights.get(item, 0.0) + weight
    totals = also_bought.combined(weights.items(), exclude=staples)
    ranked = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))[: max(n, 0)]
    chosen = {item for item, _ in ranked}
    for item in fallback:
        if len(ranked) >= n:
            break
        if item not in chosen and item not in staples:
            ranked.append((item, 0.0))
            chosen.add(item)
    return ranked


@dataclass(frozen=True, kw_only=True)
class TrendConfig:
    """What makes an item *trending*: it sells clearly more in the last days than before.

    ``recent_days``
        The recent window (a week: a weekday's rhythm cancels out).
    ``baseline_days``
        The window just before it that says what is normal for the item.
    ``min_baskets``
        Baskets the item needs in the recent window at all: three sales of a rare item are
        chance, not a trend.
    ``min_rise``
        The recent rate must be at least this multiple of the baseline rate.
    ``prior``
        Baskets added to the expected count under the square root: a new item (no baseline)
        still needs ``min_baskets`` and scores ``recent / sqrt(prior)``, not infinity.
    ``min_score``
        The rise must be at least this many standard deviations: among thousands of items
        some always sell 1.5 times their usual few by chance.
    """

    recent_days: int = 7
    baseline_days: int = 28
    min_baskets: int = 5
    min_rise: float = 1.5
    prior: float = 5.0
    min_score: float = 2.0

    def __post_init__(self) -> None:
        if self.recent_days < 1 or self.baseline_days < 1:
            raise ValueError("recent_days and baseline_days must be at least 1")
        if self.min_baskets < 1 or self.min_rise < 1.0 or self.prior <= 0 or self.min_score < 0:
            raise ValueError(
                "min_baskets >= 1, min_rise >= 1, prior > 0 and min_score >= 0 are required"
            )


def trending_scores(
    recent: npt.ArrayLike, baseline: npt.ArrayLike, config: TrendConfig
) -> FloatArray:
    """How strongly each item trends, elementwise; 0 for items that do not.

    ``recent`` and ``baseline`` are basket counts in the two windows. The baseline gives the
    expected count of the recent window, ``e = baseline * recent_days / baseline_days``; the
    score is the rise in standard deviations of a Poisson count, ``(recent - e) / sqrt(e +
    prior)``. So a big, steady seller needs a large rise in absolute terms, a small one a large
    rise relative to its own past, and either needs ``min_baskets`` recent baskets,
    ``min_rise`` times its baseline rate and a score of ``min_score``.
    """
    r = np.asarray(recent, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    expected = b * (config.recent_days / config.baseline_days)
    score = (r - expected) / np.sqrt(expected + config.prior)
    keep = (
        (r >= config.min_baskets)
        & (r >= config.min_rise * expected)
        & (score >= config.min_score)
        & (score > 0)
    )
    return np.where(keep, score, 0.0)
