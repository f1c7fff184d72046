"""What to suggest for the basket on the counter, and a reason the cashier can say.

Pure: lists in, ranked suggestions out; the sale engine fetches the lists from the catalogue.

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

from collections.abc import Collection, Mapping, Sequence
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


@dataclass(slots=True)
class _Candidate:
    score: float = 0.0
    best: float = -1.0
    reason: str = ""
    because_of: str | None = None
    price_minor: int | None = None

    def add(self, points: float, reason: str, because_of: str | None) -> None:
        self.score += points
        if points > self.best:
            self.best, self.reason, self.because_of = points, reason, because_of


def _scaled(items: Sequence[RecommendedItem]) -> list[tuple[str, float]]:
    top = items[:LIST_DEPTH]
    best = max((item.score for item in top), default=0.0)
    if best <= 0:
        # No usable scores: keep HQ's order with gently falling weights.
        return [(item.sku, 1.0 / (1 + i)) for i, item in enumerate(top)]
    return [(item.sku, item.score / best) for item in top]


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


def suggest_for_basket(
    basket: Sequence[str],
    also_bought: Mapping[str, Sequence[RecommendedItem]],
    *,
    names: Mapping[str, str],
    exclude: Collection[str] = (),
    personal: Sequence[RecommendedItem] = (),
    viewed: Sequence[CardItem] = (),
    cart: Sequence[CardItem] = (),
    now: datetime,
    n: int = 3,
    tz: tzinfo = UTC,
    customer_name: str | None = None,
) -> list[Suggestion]:
    """The top ``n`` suggestions for ``basket`` (SKUs in scan order, newest last).

    ``also_bought`` maps basket SKUs to their lists (missing ones count as empty);
    ``customer_name`` is the first name used in "Picked for <name>".
    """
    if n <= 0:
        return []
    in_basket = set(basket)
    dropped = in_basket | set(exclude)
    candidates: dict[str, _Candidate] = {}

    def candidate(sku: str) -> _Candidate | None:
        if sku in dropped:
            return None
        found = candidates.get(sku)
        if found is None:
            found = candidates[sku] = _Candidate()
        return found

    # Newest first: age counts the distinct items scanned after this one.
    seen: set[str] = set()
    age = 0
    for sku in reversed(basket):
        if sku in seen:
            continue
        seen.add(sku)
        weight = recency_weight(age)
        age += 1
        for other, scaled in _scaled(also_bought.get(sku, ())):
            # The hot loop of the scan path: inlined rather than calling candidate().
            if other in dropped:
                continue
            cand = candidates.get(other)
            if cand is None:
                cand = candidates[other] = _Candidate()
            cand.add(weight * scaled, "", sku)

    personal_reason = f"Picked for {customer_name}" if customer_name else "Picked for you"
    for sku, scaled in _scaled(personal):
        cand = candidate(sku)
        if cand is not None:
            cand.add(PERSONAL_WEIGHT * scaled, personal_reason, None)

    for items, boost, words in (
        (viewed, VIEWED_BOOST, "Viewed online"),
        (cart, CART_BOOST, "Left in online cart"),
    ):
        for item in items:
            cand = candidate(item.sku)
            if cand is None:
                continue
            cand.add(boost * _decay(item.at, now), words + _when(item.at, now, tz), None)
            if item.price_minor is not None:
                cand.price_minor = item.price_minor

    # Rounded before ranking: sums of floats that are equal on paper may differ in the last bit,
    # and equal scores must fall back to the SKU order.
    for cand in candidates.values():
        cand.score = round(cand.score, _SCORE_DECIMALS)
    ranked = sorted(candidates.items(), key=lambda kv: (-kv[1].score, kv[0]))
    out: list[Suggestion] = []
    for sku, cand in ranked:
        name = names.get(sku)
        if not name:
            continue  # not sold here (deleted, inactive or never sent to this till)
        reason = cand.reason
        because_of = cand.because_of
        if not reason:
            partner = because_of or ""
            reason = f"Often bought with {names.get(partner) or partner}"
        out.append(
            Suggestion(
                sku=sku,
                name=name,
                score=cand.score,
                reason=reason,
                price_minor=cand.price_minor,
                because_of=because_of,
            )
        )
        if len(out) >= n:
            break
    return out
