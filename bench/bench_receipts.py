"""How long the till takes to lay a receipt out as ESC/POS bytes: ``receipt_render_ms``.

1,000 different receipts of 20 lines each (names with accents and the odd long one, so code
pages switch and names wrap; discounts on some lines; two tax rates; cash and card tenders;
loyalty points; three suggestions; a receipt URL) are rendered the way the print worker does
it: :func:`edge_agent.printing.render.render_receipt` for the default 80 mm profile (42
columns, QR code and CODE128 drawn by the printer), python-escpos writing every command into a
``Dummy`` printer. The figure is the median over the 1,000, after 20 warm-up renders (the code
page tables are built once per process, as in a running till). The 58 mm profile, which sends
the QR code and the barcode as raster images, is rendered too and logged, not published.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from edge_agent.printing.profiles import PROFILES, PrinterProfile
from edge_agent.printing.render import render_receipt
from shared.catalogue import Store
from shared.receipt import Receipt, ReceiptLine, ReceiptSuggestion, TaxBreakdownRow
from shared.sale import Tender

log = logging.getLogger(__name__)

RECEIPTS = 1_000
LINES = 20
WORDS = ["Bio", "Äpfel", "Käse", "Crème", "Brot", "Kaffee", "Tee", "Socken", "T-Shirt", "Jeans"]
LONG = "Nordkind Organic Cotton T-Shirt Navy, extra long"


def make_receipt(rng: random.Random, number: int) -> Receipt:
    store = Store(store_id="S001", name="Omnitill Berlin Mitte", city="Berlin")
    lines = []
    rows: dict[Decimal, list[int]] = {Decimal("7"): [0, 0], Decimal("19"): [0, 0]}
    for index in range(LINES):
        quantity = rng.choice([1, 1, 1, 2, 3])
        unit = rng.randint(99, 4999)
        discount = rng.choice([0, 0, 0, 100, 250])
        amount = quantity * unit - discount
        rate = rng.choice([Decimal("7"), Decimal("19")])
        tax = amount * int(rate) // (100 + int(rate))
        rows[rate][0] += amount
        rows[rate][1] += tax
        name = LONG if index == 7 else " ".join(rng.choices(WORDS, k=3))
        lines.append(
            ReceiptLine(
                name=f"{name} {rng.randint(100, 999)} g",
                quantity=quantity,
                unit_price_minor=unit,
                amount_minor=amount,
                discount_minor=discount,
                discount_reasons=("Winter sale",) if discount else (),
                tax_rate=rate,
            )
        )
    total = sum(line.amount_minor for line in lines)
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
        tax_minor=sum(tax for _, tax in rows.values()),
        total_minor=total,
        tenders=(
            Tender(kind="card", amount_minor=card, reference=f"SIM-{number:06d}"),
            Tender(kind="cash", amount_minor=total - card + 500, change_minor=500),
        ),
        change_minor=500,
        customer_name="Zoë Müller",
        loyalty_points=120 + number,
        loyalty_points_earned=total // 100,
        suggestions=tuple(
            ReceiptSuggestion(
                sku=f"SKU-{i}", name=f"Suggested item {i}", price_minor=999 + i, because_of="X"
            )
            for i in range(3)
        ),
        receipt_url=f"https://receipts.omnitill.example/r/{number:012d}",
    )


def median_ms(receipts: list[Receipt], profile: PrinterProfile) -> tuple[float, int]:
    """Median render time in ms and the mean size in bytes."""
    for receipt in receipts[:20]:
        render_receipt(receipt, profile, item_names={"X": "Brot"})
    times = []
    size = 0
    for receipt in receipts:
        start = time.perf_counter()
        data = render_receipt(receipt, profile, item_names={"X": "Brot"})
        times.append((time.perf_counter() - start) * 1000)
        size += len(data)
    return statistics.median(times), size // len(receipts)


def run(*, full: bool) -> dict[str, float]:
    rng = random.Random(11)
    receipts = [make_receipt(rng, n) for n in range(1, RECEIPTS + 1)]
    median, size = median_ms(receipts, PROFILES["80mm-42"])
    log.info("80 mm receipts: median %.2f ms, %d bytes on average", median, size)
    raster, raster_size = median_ms(receipts, PROFILES["58mm"])
    log.info("58 mm receipts (raster QR, barcode): median %.2f ms, %d bytes", raster, raster_size)
    return {"receipt_render_ms": round(median, 3)}
