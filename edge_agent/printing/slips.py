"""Printed slips that are not receipts: the X and Z reports, and a bare cash-drawer kick.

Both leave through the print journal like a receipt (``print_jobs``, see
:mod:`~edge_agent.printing.jobs`), so they wait out a printer fault and are never printed twice:

- ``kind = 'report'``: the document is a :class:`ReportSlip` (JSON), a title and rows of
  ready-to-print text that the till formats in the store's locale; laid out by
  :func:`render_report` (store name, title, rows with their values right-aligned, cut);
- ``kind = 'drawer'``: no document; :func:`render_drawer_kick` opens the cash drawer and prints
  nothing. The cashier's screen asks how the customer wants the receipt after a cash sale and
  holds the paper receipt until then, so the drawer is opened on its own at once (the change is
  counted out while the customer answers), and the receipt, when printed, does not kick again.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.printing.profiles import PrinterProfile
from edge_agent.printing.render import (
    _NORMAL,
    DRAWER_PIN,
    _Style,
    _two_columns,
    _Writer,
    printable_text,
)

__all__ = ["ReportSlip", "render_drawer_kick", "render_report"]

_TITLE = _Style("center", bold=True, size="tall")
_CENTRE = _Style("center")
_BOLD = _Style(bold=True)


class ReportSlip(BaseModel):
    """A report as printed: every value is already text (money in the store's locale)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store_name: str = Field(max_length=200)
    title: str = Field(max_length=80, description="e.g. 'X report' or 'Z report 12'")
    created_at: str = Field(max_length=40, description="When, in the store's time zone")
    till_id: str = Field(max_length=80)
    rows: tuple[tuple[str, str], ...] = Field(
        default=(), max_length=200, description="(label, value); an empty label is a rule"
    )


def render_report(slip: ReportSlip, profile: PrinterProfile, *, cut: bool = True) -> bytes:
    """The ESC/POS bytes of a report slip for a printer with ``profile``."""
    width = profile.columns
    writer = _Writer(profile)
    writer.printer.hw("INIT")
    writer.text(printable_text(slip.store_name, profile)[:width] + "\n", _TITLE)
    writer.text(printable_text(slip.title, profile)[: width // 2] + "\n", _TITLE)
    writer.text(
        printable_text(f"{slip.created_at}  till {slip.till_id}", profile)[:width] + "\n",
        _CENTRE,
    )
    writer.text("-" * width + "\n", _NORMAL)
    for label, value in slip.rows:
        if not label and not value:
            writer.text("-" * width + "\n", _NORMAL)
            continue
        rows = _two_columns(printable_text(label, profile), printable_text(value, profile), width)
        writer.text("".join(f"{row}\n" for row in rows), _BOLD if not value else _NORMAL)
    writer.text("-" * width + "\n\n", _NORMAL)
    writer.style_to(_NORMAL)
    writer.flush()
    if cut:
        writer.printer.cut()
    return writer.bytes()


def render_drawer_kick(profile: PrinterProfile) -> bytes:
    """Open the cash drawer (pin 2) and print nothing."""
    writer = _Writer(profile)
    writer.printer.hw("INIT")
    writer.printer.cashdraw(DRAWER_PIN)
    return writer.bytes()
