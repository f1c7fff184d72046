"""X and Z reports: the till's totals since the last end of day.

- An **X report** is a look at the running period: what the till sold and refunded since the last
  Z report, by tax rate and by tender, and the cash the drawer should hold. It changes nothing.
- A **Z report** closes the period (end of day): the same totals, written to ``z_reports`` with
  the next number, and every sale and return of the period stamped with that report's id, in ONE
  transaction, so a sale completing at the same moment belongs to exactly one period. A second Z
  right after the first has no sales.

Amounts are integer minor units. Returns count separately and are subtracted in the net figures:
``net_minor = gross_minor - returns_minor``; tax per rate and tenders per kind are net of returns.
``cash_expected_minor`` is cash taken less change given less cash refunded, plus the opening float
when one is given. The period is the set of sales with no Z report yet, so a sale made offline
and synced later still lands in exactly one report.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from edge_agent.store import LocalStore, dumps
from shared.wire import utc_now

__all__ = ["ReportTotals", "x_report", "z_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportTotals:
    """The totals of one period; ``number`` and ``report_id`` are set on a Z report only."""

    created_at: datetime
    period_start: datetime | None
    number: int | None = None
    report_id: str | None = None
    currency: str | None = None
    sales_count: int = 0
    returns_count: int = 0
    gross_minor: int = 0
    returns_minor: int = 0
    net_minor: int = 0
    discount_minor: int = 0
    tax_minor: int = 0
    tax_by_rate: dict[Decimal, int] = field(default_factory=dict)
    tenders_by_kind: dict[str, int] = field(default_factory=dict)
    cash_expected_minor: int = 0
    first_receipt: str | None = None
    last_receipt: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["period_start"] = None if self.period_start is None else self.period_start.isoformat()
        data["tax_by_rate"] = {str(rate): amount for rate, amount in self.tax_by_rate.items()}
        return data


Query = Callable[[str, list[Any]], list[Any]]

_PERIOD = (
    "SELECT receipt_number, kind, payload FROM sales WHERE z_report_id IS NULL "
    "ORDER BY created_at, receipt_number"
)
_LAST_Z = "SELECT number, created_at FROM z_reports ORDER BY number DESC LIMIT 1"


def _totals(query: Query, *, now: datetime, opening_float_minor: int) -> ReportTotals:
    last = query(_LAST_Z, [])
    period_start = datetime.fromisoformat(last[0][1]) if last else None
    sales = returns = gross = refunded = discounts = 0
    tax_by_rate: dict[Decimal, int] = {}
    tenders: dict[str, int] = {}
    currency: str | None = None
    first: str | None = None
    last_receipt: str | None = None
    for receipt_number, kind, payload in query(_PERIOD, []):
        data = json.loads(payload)
        currency = currency or data.get("currency")
        first = first or receipt_number
        last_receipt = receipt_number
        sign = 1
        if kind == "return":
            returns += 1
            refunded += int(data["total_minor"])
            sign = -1
            paid = data["refund_tenders"]
        else:
            sales += 1
            gross += int(data["total_minor"])
            paid = data["tenders"]
            discounts += sum(
                int(d["amount_minor"]) for line in data["lines"] for d in line.get("discounts", [])
            )
        for line in data["lines"]:
            rate = Decimal(str(line.get("tax_rate", "0"))).normalize()
            tax_by_rate[rate] = tax_by_rate.get(rate, 0) + sign * int(line["tax_minor"])
        for tender in paid:
            taken = int(tender["amount_minor"]) - int(tender.get("change_minor") or 0)
            tenders[tender["kind"]] = tenders.get(tender["kind"], 0) + sign * taken
    by_rate = {rate: tax_by_rate[rate] for rate in sorted(tax_by_rate)}
    return ReportTotals(
        created_at=now,
        period_start=period_start,
        currency=currency,
        sales_count=sales,
        returns_count=returns,
        gross_minor=gross,
        returns_minor=refunded,
        net_minor=gross - refunded,
        discount_minor=discounts,
        tax_minor=sum(by_rate.values()),
        tax_by_rate=by_rate,
        tenders_by_kind=dict(sorted(tenders.items())),
        cash_expected_minor=opening_float_minor + tenders.get("cash", 0),
        first_receipt=first,
        last_receipt=last_receipt,
    )


def x_report(
    store: LocalStore,
    *,
    opening_float_minor: int = 0,
    clock: Callable[[], datetime] = utc_now,
) -> ReportTotals:
    """Totals since the last Z report; writes nothing."""

    def query(sql: str, params: list[Any]) -> list[Any]:
        return store.query(sql, params)

    return _totals(query, now=clock(), opening_float_minor=opening_float_minor)


def z_report(
    store: LocalStore,
    *,
    opening_float_minor: int = 0,
    clock: Callable[[], datetime] = utc_now,
) -> ReportTotals:
    """Close the period: totals since the last Z, the next Z number, sales stamped, at once."""
    with store.transaction() as db:

        def query(sql: str, params: list[Any]) -> list[Any]:
            return list(db.execute(sql, params).fetchall())

        totals = _totals(query, now=clock(), opening_float_minor=opening_float_minor)
        row = db.execute("SELECT COALESCE(MAX(number), 0) FROM z_reports").fetchone()
        number = int(row[0]) + 1
        report_id = str(uuid.uuid4())
        closed = replace(totals, number=number, report_id=report_id)
        db.execute(
            "INSERT INTO z_reports(report_id, number, created_at, totals) VALUES (?, ?, ?, ?)",
            [report_id, number, closed.created_at.isoformat(), dumps(closed.to_json())],
        )
        db.execute("UPDATE sales SET z_report_id = ? WHERE z_report_id IS NULL", [report_id])
    return closed
