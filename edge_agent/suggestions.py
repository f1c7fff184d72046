"""What to suggest for the basket on the counter, and a reason the cashier can say.

Pure: lists in, ranked suggestions out; the sale engine fetches the lists from the catalogue.
A list is HQ's ``RecommendedItem`` s or the catalogue's ``(sku, score, reason)`` tuples (see
:data:`ItemTuple`). This runs on every scan, for every item of every basket item's list, so its
loops are kept bare; the scaled form of a list the catalogue hands out (an immutable tuple, the
same object scan after scan) is remembered, not recomputed.

Ranking
-------
A candidate's score is the sum of what each source gives it:

- **Also bought.** Every basket item's also-bought list counts, weighted by how recently the item
  was scanned: the newest item weighs 1, the one before 1/2, then 1/3... (``1 / (1 + age)``,
  where ``age`` counts the distinct items scanned after it). A harmonic weight rather than an
  exponential one: what was just scanned leads, but the first items of a long basket still
  count, so a suggestion that fits several items rises. Each list is scaled so its best item
  scores 1 (HQ's scores are only comparable within one list), and only its first
  ``LIST_DEPTH`` items count (lists are sorted best first; the tail never reaches the top 3 and
  would only cost time on the scan path). A candidate suggested by several basket items sums
  their contributions; its reason names the basket item that contributed most.
- **Personal.** The customer's personal list, scaled the same way, times ``PERSONAL_WEIGHT``.
- **Online cart** and **recently viewed** items get strong boosts (``CART_BOOST``,
  ``VIEWED_BOOST``), halved for every ``ONLINE_HALF_LIFE_DAYS`` since it happened: something
  left in the cart yesterday is a better thing to mention than anything a list can guess.

Dropped: items already in the basket, items the customer bought recently (``exclude``), and
items the till does not sell (no name in ``names``). Ties are broken by SKU, so the result is
deterministic.

The reason shown is the one of the source that contributed most to the score: "Left in online
cart on Tuesday", "Viewed online on Tuesday" (the weekday in the store's time zone, ``tz``; a
date such as "3 Nov" when it is a week old or more), "Often bought with <basket item>",
"Picked for <first name>".

``names`` is only asked (``names.get``) for the suggestions returned, for candidates tried on
the way, and for the basket items a reason cites, so a lazy mapping backed by the catalogue
works and keeps the scan path to a handful of lookups.

:func:`suggest_for_basket` ranks from scratch. The sale engine keeps a :class:`BasketRanker`,
which gives exactly the same suggestions scan after scan while doing the work on each list once
and walking only the lists that can reach the top (see the class).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from heapq import heappop, heappush
from operator import itemgetter

from shared.customer import CardItem
from shared.recommendations import RecommendedItem

__all__ = [
    "CART_BOOST",
    "LIST_DEPTH",
    "ONLINE_HALF_LIFE_DAYS",
    "PERSONAL_WEIGHT",
    "VIEWED_BOOST",
    "BasketRanker",
    "ItemTuple",
    "ListItems",
    "Ranked",
    "Suggestion",
    "recency_weight",
    "suggest_for_basket",
]

#: Items of each also-bought or personal list that count.
LIST_DEPTH = 25
#: A personal list's best item is worth this much of the newest basket item's best partner.
PERSONAL_WEIGHT = 0.6
#: Boosts for items the customer left in the online cart or looked at online.
CART_BOOST = 4.0
VIEWED_BOOST = 2.5
#: Online signals lose half their boost every this many days.
ONLINE_HALF_LIFE_DAYS = 7.0
_SCORE_DECIMALS = 9
#: An online signal with no time counts as this many days old.
_UNKNOWN_AGE_DAYS = 7.0

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One suggestion: ``because_of`` is the basket SKU an also-bought suggestion goes with."""

    sku: str
    name: str
    score: float
    reason: str
    price_minor: int | None = None
    because_of: str | None = None


def recency_weight(age: int) -> float:
    """Weight of a basket item scanned ``age`` distinct items ago (0 = the newest)."""
    return 1.0 / (1.0 + age)


#: A list item as the catalogue caches it: ``(sku, score, reason)``. Plain tuples of strings and
#: floats cost the garbage collector nothing once it has seen them (it stops tracking them),
#: where a cached pydantic item is two more objects to walk at every collection.
ItemTuple = tuple[str, float, str | None]
#: An also-bought or personal list, best first: HQ's items or the catalogue's tuples.
ListItems = Sequence[RecommendedItem] | Sequence[ItemTuple]

#: A scaled list: ``(sku, score scaled to the list's best)`` pairs, and each SKU's best scaled
#: score in the list (to find which basket item contributed most to a candidate).
_Scaled = tuple[tuple[tuple[str, float], ...], dict[str, float]]
#: Scaled lists by the identity of the tuple they were computed from (see ``_scaled``).
_SCALED: dict[int, tuple[ListItems, _Scaled]] = {}
#: More distinct lists than any basket has; the memo is dropped wholesale when full.
_SCALED_MAX = 1024


def _scale(items: ListItems) -> _Scaled:
    head = items[:LIST_DEPTH]
    skus = [item[0] if isinstance(item, tuple) else item.sku for item in head]
    scores = [item[1] if isinstance(item, tuple) else item.score for item in head]
    best = max(scores, default=0.0)
    if best <= 0:
        # No usable scores: keep HQ's order with gently falling weights.
        scaled = [1.0 / (1 + i) for i in range(len(skus))]
    else:
        scaled = [score / best for score in scores]
    pairs = tuple(zip(skus, scaled, strict=True))
    if len(set(skus)) == len(skus):
        by_sku = {sku: value for sku, value in pairs if value > -1.0}
    else:
        # A SKU twice in one list: its best entry counts for the reason.
        by_sku = {}
        for sku, value in pairs:
            if value > by_sku.get(sku, -1.0):
                by_sku[sku] = value
    return pairs, by_sku


def _scaled(items: ListItems) -> _Scaled:
    """The head of a list scaled to its best item (see :data:`_Scaled`).

    A tuple of immutable items (tuples or frozen models) cannot change, so its scaled form is
    remembered by the tuple's identity: the catalogue hands out the same tuple for a SKU scan
    after scan, and the basket's other 19 lists then cost nothing to rescale. The memo holds the
    tuple itself, so its id cannot be reused by another object while it is remembered. Other
    sequences are scaled every time.
    """
    if type(items) is not tuple:
        return _scale(items)
    key = id(items)
    hit = _SCALED.get(key)
    if hit is not None and hit[0] is items:
        return hit[1]
    scaled = _scale(items)
    if len(_SCALED) >= _SCALED_MAX:
        _SCALED.clear()
    _SCALED[key] = (items, scaled)
    return scaled


def _when(at: datetime | None, now: datetime, tz: tzinfo) -> str:
    if at is None:
        return ""
    local, today = at.astimezone(tz), now.astimezone(tz)
    days = (today.date() - local.date()).days
    if days == 0:
        return " today"
    if 0 < days < 7:
        return f" on {_WEEKDAYS[local.weekday()]}"
    return f" on {local.day} {_MONTHS[local.month - 1]}"


def _decay(at: datetime | None, now: datetime) -> float:
    age_days = _UNKNOWN_AGE_DAYS if at is None else max(0.0, (now - at).total_seconds() / 86400)
    return float(0.5 ** (age_days / ONLINE_HALF_LIFE_DAYS))


def _ranked(score: Mapping[str, float]) -> Iterator[tuple[str, float]]:
    """Candidates by score rounded to ``_SCORE_DECIMALS``, best first, ties by SKU.

    Rounded because sums of floats that are equal on paper may differ in the last bit, and equal
    scores must fall back to the SKU order. Rounding is monotonic, so candidates sorted by their
    raw scores are also sorted by their rounded ones, with equal rounded scores next to each
    other: only the candidates actually walked are rounded (``round`` is slow, and the caller
    stops after a few), and each run of equal rounded scores is put in SKU order.
    """
    run: list[str] = []
    run_score = 0.0
    for sku in sorted(score, key=score.__getitem__, reverse=True):
        value = round(score[sku], _SCORE_DECIMALS)
        if run and value != run_score:
            run.sort()
            for member in run:
                yield member, run_score
            run.clear()
        run.append(sku)
        run_score = value
    run.sort()
    for member in run:
        yield member, run_score


def suggest_for_basket(
    basket: Sequence[str],
    also_bought: Mapping[str, ListItems],
    *,
    names: Mapping[str, str],
    exclude: Collection[str] = (),
    personal: ListItems = (),
    viewed: Sequence[CardItem] = (),
    cart: Sequence[CardItem] = (),
    now: datetime,
    n: int = 3,
    tz: tzinfo = UTC,
    customer_name: str | None = None,
) -> list[Suggestion]:
    """The top ``n`` suggestions for ``basket`` (SKUs in scan order, newest last).

    ``also_bought`` maps basket SKUs to their lists (missing ones count as empty); lists, and
    ``personal``, hold ``RecommendedItem`` or ``(sku, score, reason)`` tuples;
    ``customer_name`` is the first name used in "Picked for <name>".
    """
    if n <= 0:
        return []
    dropped = set(basket)
    dropped.update(exclude)
    # Scores first, for every candidate (the hot loop of the scan path: one dict update per item
    # of every basket item's list, so nothing else happens in it; candidates in the basket or
    # bought recently are skipped when ranked). Which source gave a candidate its largest
    # contribution, the reason shown, is worked out only for the candidates shown.
    score: dict[str, float] = {}
    get = score.get
    # Newest first: age counts the distinct items scanned after this one.
    lists: list[tuple[str, float, dict[str, float]]] = []
    seen: set[str] = set()
    age = 0
    for sku in reversed(basket):
        if sku in seen:
            continue
        seen.add(sku)
        weight = 1.0 / (1.0 + age)  # recency_weight(age), inlined
        age += 1
        items = also_bought.get(sku)
        if not items:
            continue
        pairs, by_sku = _scaled(items)
        lists.append((sku, weight, by_sku))
        for other, scaled in pairs:
            score[other] = get(other, 0.0) + weight * scaled

    other_best, prices = _add_other_sources(
        score, dropped, _scaled(personal)[0], customer_name, viewed, cart, now, tz
    )

    out: list[Suggestion] = []
    for sku, value in _ranked(score):
        if sku in dropped:
            continue
        name = names.get(sku)
        if not name:
            continue  # not sold here (deleted, inactive or never sent to this till)
        # The basket item that contributed most (the newest wins a tie), unless another
        # source gave more; contributions tie to also-bought, which came first.
        best, partner = -1.0, None
        for basket_sku, weight, by_sku in lists:
            share = by_sku.get(sku)
            if share is not None and weight * share > best:
                best, partner = weight * share, basket_sku
        found = other_best.get(sku)
        if found is not None and found[0] > best:
            reason, partner = found[1], None
        else:
            shown = names.get(partner or "") or partner
            reason = f"Often bought with {shown}"
        out.append(
            Suggestion(
                sku=sku,
                name=name,
                score=value,
                reason=reason,
                price_minor=prices.get(sku),
                because_of=partner,
            )
        )
        if len(out) >= n:
            break
    return out


def _add_other_sources(
    score: dict[str, float],
    dropped: set[str],
    personal_pairs: Sequence[tuple[str, float]],
    customer_name: str | None,
    viewed: Sequence[CardItem],
    cart: Sequence[CardItem],
    now: datetime,
    tz: tzinfo,
) -> tuple[dict[str, tuple[float, str]], dict[str, int]]:
    """Add the sources other than the basket's lists to ``score``, in order (personal list,
    viewed online, left in cart); return each candidate's largest such contribution with its
    reason (the first wins a tie) and the web prices seen."""
    get = score.get
    other_best: dict[str, tuple[float, str]] = {}
    prices: dict[str, int] = {}

    def add(sku: str, points: float, reason: str) -> bool:
        if sku in dropped:
            return False
        score[sku] = get(sku, 0.0) + points
        found = other_best.get(sku)
        if found is None or points > found[0]:
            other_best[sku] = (points, reason)
        return True

    if personal_pairs:
        personal_reason = f"Picked for {customer_name}" if customer_name else "Picked for you"
        for sku, scaled in personal_pairs:
            add(sku, PERSONAL_WEIGHT * scaled, personal_reason)
    for signals, boost, words in (
        (viewed, VIEWED_BOOST, "Viewed online"),
        (cart, CART_BOOST, "Left in online cart"),
    ):
        for item in signals:
            added = add(item.sku, boost * _decay(item.at, now), words + _when(item.at, now, tz))
            if added and item.price_minor is not None:
                prices[item.sku] = item.price_minor
    return other_best, prices


# ---------------------------------------------------------------------------------------------
# The same ranking, scan after scan
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _List:
    """A basket item's also-bought list as :class:`BasketRanker` keeps it."""

    items: ListItems  # what the catalogue gave (kept while the same tuple comes back)
    pairs: tuple[tuple[str, float], ...]  # scaled, in the list's order
    by_sku: dict[str, float]  # each SKU's best scaled score in the list
    best_first: tuple[tuple[str, float], ...]  # ``pairs`` sorted by scaled score, best first
    finite: bool
    exact_gen: int = -1  # the generation of the exact set ``exact_pairs`` was picked for
    exact_pairs: tuple[tuple[str, float], ...] = ()  # pairs whose SKU is in the exact set


_BY_SCORE = itemgetter(1)


def _push(
    heap: list[tuple[float, int, int]],
    kept: _List,
    source: int,
    position: int,
    exact: frozenset[str],
    dropped: set[str],
) -> None:
    """Push the next candidate of ``kept`` (the list of the basket item aged ``source``) from
    ``position`` on, if it has one; the exact set and the dropped are not its to give."""
    best_first = kept.best_first
    while position < len(best_first):
        sku, scaled = best_first[position]
        if sku not in exact and sku not in dropped:
            weight = 1.0 / (1.0 + source)  # recency_weight(source)
            heappush(heap, (-(weight * scaled), source, position))
            return
        position += 1


def _shown(
    run: list[tuple[str, int]],
    run_score: float,
    distinct: list[str],
    order: list[_List],
    names: Mapping[str, str],
    other_best: dict[str, tuple[float, str]],
    prices: dict[str, int],
    out: list[Ranked],
    n: int,
) -> None:
    """Add a run of equal (rounded) scores to ``out`` in SKU order, as the full ranking does."""
    run.sort()
    for sku, source in run:
        name = names.get(sku)
        if not name:
            continue  # not sold here
        best, partner = -1.0, None
        if source >= 0:
            # Named by one entry of one list: that list's basket item is the partner.
            found_share = order[source].by_sku.get(sku)
            if found_share is not None:
                share = 1.0 / (1.0 + source) * found_share
                if share > best:
                    best, partner = share, distinct[source]
        else:
            for age, kept in enumerate(order):
                found_share = kept.by_sku.get(sku)
                if found_share is not None:
                    share = 1.0 / (1.0 + age) * found_share
                    if share > best:
                        best, partner = share, distinct[age]
        found = other_best.get(sku)
        if found is not None and found[0] > best:
            reason, partner = found[1], None
        else:
            shown = names.get(partner or "") or partner
            reason = f"Often bought with {shown}"
        out.append((sku, name, run_score, reason, prices.get(sku), partner))
        if len(out) >= n:
            return


#: A suggestion as :meth:`BasketRanker.ranked` gives it: the fields of :class:`Suggestion`, in
#: order (sku, name, score, reason, price_minor, because_of).
Ranked = tuple[str, str, float, str, int | None, str | None]


class BasketRanker:
    """:func:`suggest_for_basket` for one till's basket, scan after scan, with the same result.

    Every scan ages every basket item by one (the recency weights are harmonic), so every
    candidate's score changes at every scan and no ranking can be patched exactly by adding the
    new item's list alone. What does not change between scans is kept, and updated only for the
    lists that came or went: each basket item's list scaled and sorted best first, and for each
    candidate the number of list entries that name it. A scan then needs only:

    - the score of each candidate named by one entry only (almost all of them) is that entry's
      ``weight * scaled``, the very product the full ranking computes, and within one list these
      come best first. The candidates are read best first by merging the lists' heads (a heap),
      and a list is opened only when its weight (the most any of its entries can score: scaled
      scores are at most 1) could still beat the best candidate waiting. The newest items'
      lists give the top few; the rest of the basket's lists are not walked;
    - candidates named by several entries, or also by the customer's personal list, views or
      online cart (the *exact set*, usually a handful), are summed exactly as the full ranking
      sums them, in the same order, so their floating-point scores are the same to the last bit.

    The lists come from ``also_bought``. When it carries a ``generation`` (the catalogue's lazy
    lists do) that has not changed since the last call, the lists held are still the catalogue's
    and only a basket item new to the ranker is asked for; otherwise every item's list is asked
    for and compared (by identity: a tuple is kept while the same tuple comes back, any other
    sequence is scaled again, as it could have changed in place).

    Ties, rounding, reasons and the calls made to ``names`` are the full ranking's. A list with a
    score that is not a finite number is left to the full ranking itself.
    """

    __slots__ = (
        "_boost_key",
        "_exact",
        "_exact_gen",
        "_generation",
        "_lists",
        "_nonfinite",
        "_refs",
        "_shared",
        "_stale",
    )

    def __init__(self) -> None:
        self._lists: dict[str, _List] = {}
        self._refs: dict[str, int] = {}  # candidate -> list entries naming it
        self._shared: set[str] = set()  # candidates named by two entries or more
        self._stale = True  # the shared set changed since the exact set was made
        self._boost_key: tuple[str, ...] = ()
        self._exact: frozenset[str] = frozenset()
        self._exact_gen = 0
        self._generation: object = None  # of the last ``also_bought`` (see ``ranked``)
        self._nonfinite = 0  # lists held with a score that is not a finite number

    def suggest(
        self,
        basket: Sequence[str],
        also_bought: Mapping[str, ListItems],
        *,
        names: Mapping[str, str],
        exclude: Collection[str] = (),
        personal: ListItems = (),
        viewed: Sequence[CardItem] = (),
        cart: Sequence[CardItem] = (),
        now: datetime,
        n: int = 3,
        tz: tzinfo = UTC,
        customer_name: str | None = None,
    ) -> list[Suggestion]:
        """Exactly ``suggest_for_basket`` with the same arguments."""
        return [
            Suggestion(
                sku=sku,
                name=name,
                score=score,
                reason=reason,
                price_minor=price_minor,
                because_of=because_of,
            )
            for sku, name, score, reason, price_minor, because_of in self.ranked(
                basket,
                also_bought,
                names=names,
                exclude=exclude,
                personal=personal,
                viewed=viewed,
                cart=cart,
                now=now,
                n=n,
                tz=tz,
                customer_name=customer_name,
            )
        ]

    def ranked(
        self,
        basket: Sequence[str],
        also_bought: Mapping[str, ListItems],
        *,
        names: Mapping[str, str],
        exclude: Collection[str] = (),
        personal: ListItems = (),
        viewed: Sequence[CardItem] = (),
        cart: Sequence[CardItem] = (),
        now: datetime,
        n: int = 3,
        tz: tzinfo = UTC,
        customer_name: str | None = None,
    ) -> list[Ranked]:
        """:meth:`suggest` as plain tuples (the sale engine adds prices before it makes the
        suggestions it shows).

        ``also_bought`` may have a ``generation`` attribute (the catalogue's lazy lists have):
        while it stays the same from one call to the next, the lists it holds are taken to be
        unchanged and the ranker asks it only for the basket items it holds no list for.
        """
        if n <= 0:
            return []
        lists = self._lists
        generation = getattr(also_bought, "generation", None)
        trusted = generation is not None and generation == self._generation
        # Forgotten until every list is checked: an error half-way must not leave old lists
        # trusted under the new generation.
        self._generation = None
        # The basket's distinct items, newest first: an item's index is its age.
        distinct = list(dict.fromkeys(reversed(basket)))
        present = set(distinct)
        if trusted:
            # The lists held are the catalogue's now: only items new to the basket need theirs.
            if lists.keys() != present:
                for sku in distinct:
                    if sku not in lists:
                        self._add(sku, also_bought.get(sku))
        else:
            for sku in distinct:
                items = also_bought.get(sku)
                kept = lists.get(sku)
                if kept is not None:
                    if (kept.items is items and type(items) is tuple) or (
                        not items and not kept.pairs
                    ):
                        continue
                    self._drop(sku)
                self._add(sku, items)
        if len(lists) > len(distinct):
            for gone in lists.keys() - present:
                self._drop(gone)
        self._generation = generation
        order = [lists[sku] for sku in distinct]
        personal_pairs = _scaled(personal)[0] if personal else ()
        if self._nonfinite or not all(math.isfinite(x) for _, x in personal_pairs):
            found = suggest_for_basket(
                basket,
                also_bought,
                names=names,
                exclude=exclude,
                personal=personal,
                viewed=viewed,
                cart=cart,
                now=now,
                n=n,
                tz=tz,
                customer_name=customer_name,
            )
            return [(f.sku, f.name, f.score, f.reason, f.price_minor, f.because_of) for f in found]
        dropped = present
        dropped.update(exclude)
        exact = self._exact_set(personal_pairs, viewed, cart)

        # The exact set's scores, summed in the full ranking's order: lists newest first, each in
        # its own order, then the other sources.
        score: dict[str, float] = {}
        get = score.get
        if exact:
            gen = self._exact_gen
            for age, kept in enumerate(order):
                if not kept.pairs:
                    continue
                if kept.exact_gen != gen:
                    kept.exact_pairs = tuple([pair for pair in kept.pairs if pair[0] in exact])
                    kept.exact_gen = gen
                weight = 1.0 / (1.0 + age)  # recency_weight(age)
                for other, scaled in kept.exact_pairs:
                    score[other] = get(other, 0.0) + weight * scaled
        other_best, prices = _add_other_sources(
            score, dropped, personal_pairs, customer_name, viewed, cart, now, tz
        )

        # Candidates best first: a heap of (-score, source, position). Source -1 is the exact
        # set, sorted; source i >= 0 is order[i]'s list (weight 1 / (1 + i)), read best first,
        # skipping the exact set and the dropped. A list joins the heap only once its weight
        # (the most any of its entries can score) could beat the heap's top.
        ranked_exact = sorted(
            [(value, sku) for sku, value in score.items() if sku not in dropped], reverse=True
        )
        heap: list[tuple[float, int, int]] = []
        if ranked_exact:
            heap.append((-ranked_exact[0][0], -1, 0))
        opened = 0
        out: list[Ranked] = []
        run: list[tuple[str, int]] = []
        run_score = 0.0
        while True:
            while opened < len(order) and (not heap or 1.0 / (1.0 + opened) >= -heap[0][0]):
                _push(heap, order[opened], opened, 0, exact, dropped)
                opened += 1
            if not heap:
                break
            value, source, position = heappop(heap)
            if source < 0:
                sku = ranked_exact[position][1]
                if position + 1 < len(ranked_exact):
                    heappush(heap, (-ranked_exact[position + 1][0], -1, position + 1))
            else:
                sku = order[source].best_first[position][0]
                _push(heap, order[source], source, position + 1, exact, dropped)
            rounded = round(-value, _SCORE_DECIMALS)
            if run and rounded != run_score:
                _shown(run, run_score, distinct, order, names, other_best, prices, out, n)
                if len(out) >= n:
                    return out
                run.clear()
            run.append((sku, source))
            run_score = rounded
        if run:
            _shown(run, run_score, distinct, order, names, other_best, prices, out, n)
        return out

    def _exact_set(
        self,
        personal_pairs: tuple[tuple[str, float], ...],
        viewed: Sequence[CardItem],
        cart: Sequence[CardItem],
    ) -> frozenset[str]:
        """Candidates named by several list entries or by another source (see the class)."""
        boost_key = tuple([sku for sku, _ in personal_pairs]) if personal_pairs else ()
        if viewed or cart:
            boost_key += tuple([item.sku for item in viewed]) + tuple([item.sku for item in cart])
        if self._stale or boost_key != self._boost_key:
            exact = frozenset(self._shared.union(boost_key))
            if exact != self._exact:
                self._exact = exact
                self._exact_gen += 1
            self._boost_key = boost_key
            self._stale = False
        return self._exact

    def _add(self, sku: str, items: ListItems | None) -> _List:
        """Hold ``sku``'s list (an empty one too: the basket item still counts for ages)."""
        pairs, by_sku = _scale(items) if items else ((), {})
        kept = _List(
            items=items if items is not None else (),
            pairs=pairs,
            by_sku=by_sku,
            best_first=tuple(sorted(pairs, key=_BY_SCORE, reverse=True)),
            # Any NaN or infinity makes the sum one too (and a sum too large for a float only
            # sends the list to the full ranking, which is always right).
            finite=math.isfinite(sum([scaled for _, scaled in pairs])),
        )
        self._lists[sku] = kept
        self._nonfinite += not kept.finite
        refs = self._refs
        for other, _ in pairs:
            count = refs.get(other, 0) + 1
            refs[other] = count
            if count == 2:
                self._shared.add(other)
                self._stale = True
        return kept

    def _drop(self, sku: str) -> None:
        kept = self._lists.pop(sku)
        self._nonfinite -= not kept.finite
        refs = self._refs
        for other, _ in kept.pairs:
            count = refs[other] - 1
            if count:
                refs[other] = count
                if count == 1:
                    self._shared.discard(other)
                    self._stale = True
            else:
                del refs[other]
