"""How long HQ takes to render a receipt mail: ``email_render_ms``.

1,000 different receipts of 20 lines each (names with accents, discounts on some lines, two tax
rates, cash and card tenders, loyalty points, three suggestions; every other one with the
marketing block of a customer who consented) are rendered the way the mail worker does it:
:func:`sync_server.services.receipt_mail.receipt_message` builds the multipart/alternative
message (the plain-text and the HTML part from their Jinja2 templates, quoted-printable), and
``as_bytes()`` serializes it as it goes on the wire. The figure is the median over the 1,000;
the templates are compiled once before timing, as in a running server.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.catalogue import Store
from shared.receipt import Receipt, ReceiptLine, ReceiptSuggestion, TaxBreakdownRow
from shared.sale import Tender
from sync_server.services.receipt_mail import marketing_block, receipt_message

log = logging.getLogger(__name__)

RECEIPTS = 1_000
LINES = 20
WORDS = ["Bio", "Äpfel", "Käse", "Crème", "Brot", "Kaffee", "Tee", "Socken", "T-Shirt", "Jeans"]


def make_receipt(rng: random.Random, number: int) -> Receipt:
    store = Store(store_id="S001", name="Omnitill Berlin Mitte", city="Berlin", locale="de")
    lines = []
    rows: dict[Decimal, list[int]] = {Decimal("7"): [0, 0], Decimal("19"): [0, 0]}
    for _ in range(LINES):
        quantity = rng.randint(1, 3)
        unit = rng.randint(99, 4999)
        discount = rng.choice([0, 0, 0, 100, 250])
        amount = quantity * unit - discount
        rate = rng.choice([Decimal("7"), Decimal("19")])
        tax = amount * int(rate) // (100 + int(rate))
        rows[rate][0] += amount
        rows[rate][1] += tax
        lines.append(
            ReceiptLine(
                name=" ".join(rng.choices(WORDS, k=3)) + f" {rng.randint(100, 999)} g",
                quantity=quantity,
                unit_price_minor=unit,
                amount_minor=amount,
                discount_minor=discount,
                discount_reasons=("Winter sale",) if discount else (),
                tax_rate=rate,
            )
        )
    total = sum(line.amount_minor for line in lines)
    tax_total = sum(tax for _, tax in rows.values())
    card = total // 2
    return Receipt(
        kind="sale",
        store=store,
        receipt_number=f"S001-T1-{number:06d}",
        created_at=datetime(2026, 11, 23, 9, 30, tzinfo=UTC) + timedelta(minutes=number),
        till_id="S001-T1",
        cashier_id="cashier-7",
        currency="EUR",
        lines=tuple(lines),
        tax_breakdown=tuple(
            TaxBreakdownRow(rate=r, net_minor=g - t, tax_minor=t, gross_minor=g)
            for r, (g, t) in rows.items()
        ),
        subtotal_minor=total,
        tax_minor=tax_total,
        total_minor=total,
        tenders=(
            Tender(kind="card", amount_minor=card, reference=f"SIM-{number:06d}"),
            Tender(kind="cash", amount_minor=total - card + 500, change_minor=500),
        ),
        change_minor=500,
        customer_name="Maria Rossi",
        loyalty_points=120 + number,
        loyalty_points_earned=total // 100,
        suggestions=tuple(
            ReceiptSuggestion(
                sku=f"SKU-{i}", name=f"Suggested item {i}", price_minor=999 + i, because_of="Brot"
            )
            for i in range(3)
        ),
    )


def run(*, full: bool) -> dict[str, float]:
    rng = random.Random(5)
    receipts = [make_receipt(rng, n) for n in range(1, RECEIPTS + 1)]
    marketing = marketing_block(
        [("Wool Scarf Grey", 2499), ("Leather Gloves", 3999)],
        currency="EUR",
        locale="de",
        unsubscribe_url="https://hq.example.com/unsubscribe/0",
    )
    # Compile the templates once, as a running server has.
    receipt_message(
        receipts[0],
        email_id=uuid.uuid4(),
        to="maria@example.com",
        mail_from="Omnitill <receipts@shop.example>",
        date=receipts[0].created_at,
        receipt_link="https://hq.example.com/r/0",
    ).as_bytes()
    times = []
    size = 0
    for n, receipt in enumerate(receipts):
        email_id = uuid.UUID(int=n + 1)
        start = time.perf_counter()
        data = receipt_message(
            receipt,
            email_id=email_id,
            to="maria@example.com",
            mail_from="Omnitill <receipts@shop.example>",
            date=receipt.created_at,
            receipt_link=f"https://hq.example.com/r/{email_id}",
            marketing=marketing if n % 2 else None,
        ).as_bytes()
        times.append((time.perf_counter() - start) * 1000)
        size += len(data)
    median = statistics.median(times)
    log.info(
        "rendered %d receipt mails of %d lines: median %.2f ms, p99 %.2f ms, %.1f KB each",
        RECEIPTS,
        LINES,
        median,
        sorted(times)[int(len(times) * 0.99) - 1],
        size / RECEIPTS / 1024,
    )
    return {"email_render_ms": round(median, 3)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(run(full=False))
