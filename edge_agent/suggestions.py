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
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from shared.customer import CardItem
from shared.recommendations import RecommendedItem

__all__ = [
    "CART_BOOST",
    "LIST_DEPTH",
    "ONLINE_HALF_LIFE_DAYS",
    "PERSONAL_WEIGHT",
    "VIEWED_BOOST",
    "ItemTuple",
    "ListItems",
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
    top = [
        (item[0], item[1]) if isinstance(item, tuple) else (item.sku, item.score)
        for item in items[:LIST_DEPTH]
    ]
    best = max([score for _, score in top], default=0.0)
    if best <= 0:
        # No usable scores: keep HQ's order with gently falling weights.
        pairs = tuple([(sku, 1.0 / (1 + i)) for i, (sku, _) in enumerate(top)])
    else:
        pairs = tuple([(sku, score / best) for sku, score in top])
    by_sku: dict[str, float] = {}
    for sku, scaled in pairs:
        if scaled > by_sku.get(sku, -1.0):
            by_sku[sku] = scaled
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

    # The other sources, in order; for each candidate their largest contribution (the first
    # one wins a tie) and its reason.
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

    personal_reason = f"Picked for {customer_name}" if customer_name else "Picked for you"
    for sku, scaled in _scaled(personal)[0]:
        add(sku, PERSONAL_WEIGHT * scaled, personal_reason)

    for signals, boost, words in (
        (viewed, VIEWED_BOOST, "Viewed online"),
        (cart, CART_BOOST, "Left in online cart"),
    ):
        for item in signals:
            added = add(item.sku, boost * _decay(item.at, now), words + _when(item.at, now, tz))
            if added and item.price_minor is not None:
                prices[item.sku] = item.price_minor

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
