"""The receipt as an email: plain text and HTML from one view of a :class:`shared.receipt.Receipt`.

What a customer reads in the mail is what the paper receipt says: the store, the date and time
in the store's time zone, the lines with their discounts, the tax breakdown, the totals, the
tenders and change, the customer's loyalty points, and the "Customers who bought X also bought"
suggestions with their prices. Every amount is formatted once, here, with
:meth:`shared.money.Money.format` in the store's locale; the Jinja2 templates in
``sync_server/templates/email/`` only lay the view out. The HTML part is one column at most
600 px wide with inline CSS (mail clients drop ``<style>`` blocks and ignore media queries),
so it reads on a phone.

Suggestions are part of the receipt service and go to everyone: they come from the basket, like
on paper, not from the person. *Marketing* (a "You might also like" block chosen from HQ's data
about the customer or the store) is added only for customers whose newest ``marketing_email``
consent at HQ is granted; a mail with marketing carries ``List-Unsubscribe`` and
``List-Unsubscribe-Post`` (RFC 8058 one-click) headers and an unsubscribe link. A mail without
marketing has neither: there is nothing to unsubscribe from.

The message is deterministic: the same queued mail renders to the same bytes (``Date`` is when
the customer asked at the till, ``Message-ID`` is ``<email_id@omnitill>``), so a retry after a
lost answer from the mail server is the same message, which receivers recognise by its
``Message-ID``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from shared.errors import OmnitillError
from shared.money import Money
from shared.receipt import Receipt

__all__ = [
    "MarketingBlock",
    "MarketingItem",
    "ReceiptView",
    "marketing_block",
    "message_id_for",
    "receipt_html",
    "receipt_message",
    "receipt_subject",
    "receipt_text",
    "receipt_view",
]

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
#: Characters per line of the plain-text part (what a phone shows without wrapping).
TEXT_WIDTH = 48

_TENDER_NAMES = {"cash": "Cash", "card": "Card", "voucher": "Voucher", "other": "Other"}


@dataclass(frozen=True, slots=True)
class MarketingItem:
    name: str
    price: str


@dataclass(frozen=True, slots=True)
class MarketingBlock:
    """Marketing content for a customer who consented: items and the unsubscribe link."""

    heading: str
    items: tuple[MarketingItem, ...]
    unsubscribe_url: str


@dataclass(frozen=True, slots=True)
class LineView:
    label: str
    detail: str
    amount: str
    discounts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SuggestionGroup:
    heading: str
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """Every string a receipt template shows, formatted."""

    title: str
    store_name: str
    store_city: str
    receipt_number: str
    when: str
    till_id: str
    cashier_id: str
    copy: bool
    original_receipt_number: str | None
    lines: tuple[LineView, ...]
    subtotal: str
    tax: str
    total: str
    total_label: str
    tax_rows: tuple[tuple[str, str, str, str], ...]
    tenders: tuple[tuple[str, str], ...]
    change: str | None
    customer_name: str | None
    points_earned: int
    points_balance: int | None
    suggestions: tuple[SuggestionGroup, ...]
    receipt_link: str | None
    marketing: MarketingBlock | None = None


def _local_time(receipt: Receipt) -> str:
    try:
        zone = ZoneInfo(receipt.store.timezone)
        label = ""
    except (ZoneInfoNotFoundError, ValueError):
        log.warning(
            "store %s: unknown time zone %r", receipt.store.store_id, receipt.store.timezone
        )
        zone, label = ZoneInfo("UTC"), " UTC"
    local = receipt.created_at.astimezone(zone)
    return f"{local:%d %b %Y, %H:%M}{label}"


def _rate(rate: Decimal) -> str:
    text = format(rate.normalize(), "f")
    return f"{text}%"


def _weight(grams: int) -> str:
    return f"{grams / 1000:.3f} kg"


def receipt_view(
    receipt: Receipt, *, receipt_link: str | None, marketing: MarketingBlock | None = None
) -> ReceiptView:
    """The receipt's strings, formatted in the store's locale and time zone."""
    currency, locale = receipt.currency, receipt.store.locale

    def money(amount: int) -> str:
        try:
            return Money(amount, currency).format(locale)
        except OmnitillError:
            return f"{amount} {currency} minor units"

    lines = []
    for line in receipt.lines:
        before = line.amount_minor + line.discount_minor
        if line.weight_g is not None:
            label = line.name
            detail = f"{_weight(line.weight_g)} x {money(line.unit_price_minor)}/kg"
        else:
            label = f"{line.quantity} x {line.name}"
            detail = (
                f"{line.quantity} x {money(line.unit_price_minor)}" if line.quantity > 1 else ""
            )
        discounts: tuple[tuple[str, str], ...] = ()
        if line.discount_minor:
            reason = ", ".join(line.discount_reasons) or "Discount"
            discounts = ((reason, money(-line.discount_minor)),)
        lines.append(
            LineView(label=label, detail=detail, amount=money(before), discounts=discounts)
        )
    groups: dict[str, list[tuple[str, str]]] = {}
    for suggestion in receipt.suggestions:
        heading = (
            f"Customers who bought {suggestion.because_of} also bought"
            if suggestion.because_of
            else "Customers who bought this also bought"
        )
        groups.setdefault(heading, []).append((suggestion.name, money(suggestion.price_minor)))
    is_return = receipt.kind == "return"
    return ReceiptView(
        title="Refund" if is_return else "Receipt",
        store_name=receipt.store.name,
        store_city=receipt.store.city,
        receipt_number=receipt.receipt_number,
        when=_local_time(receipt),
        till_id=receipt.till_id,
        cashier_id=receipt.cashier_id,
        copy=receipt.copy_,
        original_receipt_number=receipt.original_receipt_number,
        lines=tuple(lines),
        subtotal=money(receipt.subtotal_minor),
        tax=money(receipt.tax_minor),
        total=money(receipt.total_minor),
        total_label="Refund total" if is_return else "Total",
        tax_rows=tuple(
            (_rate(row.rate), money(row.net_minor), money(row.tax_minor), money(row.gross_minor))
            for row in receipt.tax_breakdown
        ),
        tenders=tuple(
            (
                _TENDER_NAMES.get(t.kind, t.kind.title())
                + (f" ({t.reference})" if t.reference else ""),
                money(t.amount_minor),
            )
            for t in receipt.tenders
        ),
        change=money(receipt.change_minor) if receipt.change_minor else None,
        customer_name=receipt.customer_name,
        points_earned=receipt.loyalty_points_earned,
        points_balance=receipt.loyalty_points,
        suggestions=tuple(SuggestionGroup(h, tuple(items)) for h, items in groups.items()),
        receipt_link=receipt.receipt_url or receipt_link,
        marketing=marketing,
    )


def _columns(left: str, right: str, width: int = TEXT_WIDTH) -> str:
    """``left`` and ``right`` on one line of ``width``; a long left side gets its own line."""
    gap = width - len(left) - len(right)
    if gap >= 1:
        return f"{left}{' ' * gap}{right}"
    return f"{left}\n{right.rjust(width)}"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["columns"] = _columns
    env.globals["width"] = TEXT_WIDTH
    return env


def receipt_text(view: ReceiptView) -> str:
    """The plain-text part."""
    return _environment().get_template("email/receipt.txt.j2").render(r=view)


def receipt_html(view: ReceiptView, *, page: bool = False) -> str:
    """The HTML part (``page``: the digital receipt served at ``/r/<sale_id>``)."""
    return _environment().get_template("email/receipt.html.j2").render(r=view, page=page)


def receipt_subject(receipt: Receipt) -> str:
    what = "Your refund receipt" if receipt.kind == "return" else "Your receipt"
    copy = " (copy)" if receipt.copy_ else ""
    return f"{what} {receipt.receipt_number} from {receipt.store.name}{copy}"


def message_id_for(email_id: UUID) -> str:
    """The Message-ID of a queued mail: stable, so a retried delivery is the same message."""
    return f"<{email_id}@omnitill>"


def receipt_message(
    receipt: Receipt,
    *,
    email_id: UUID,
    to: str,
    mail_from: str,
    date: datetime,
    receipt_link: str | None,
    marketing: MarketingBlock | None = None,
) -> EmailMessage:
    """The whole multipart/alternative message, ready for ``smtplib.SMTP.send_message``."""
    view = receipt_view(receipt, receipt_link=receipt_link, marketing=marketing)
    message = EmailMessage(policy=SMTP)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = receipt_subject(receipt)
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id_for(email_id)
    if marketing is not None:
        message["List-Unsubscribe"] = f"<{marketing.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable: 7-bit safe for any mail server, and still readable in the raw message.
    message.set_content(receipt_text(view), cte="quoted-printable")
    message.add_alternative(receipt_html(view), subtype="html", cte="quoted-printable")
    # A boundary from the mail's id, not a random one: a retry is the very same bytes. "=_"
    # cannot occur in base64 or quoted-printable bodies.
    message.set_boundary(f"=_omnitill_{email_id.hex}")
    return message


def marketing_block(
    items: Sequence[tuple[str, int]], *, currency: str, locale: str, unsubscribe_url: str
) -> MarketingBlock | None:
    """The marketing block for (name, price) items, or None when there is nothing to show."""
    shown = tuple(
        MarketingItem(name=name, price=Money(price, currency).format(locale))
        for name, price in items[:3]
    )
    if not shown:
        return None
    return MarketingBlock(
        heading="You might also like", items=shown, unsubscribe_url=unsubscribe_url
    )
