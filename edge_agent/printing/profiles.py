"""Printer capability profiles: what a receipt printer can do decides the receipt's layout.

A profile says how many characters fit on a line, how wide the paper is in dots, whether the
printer draws QR codes and CODE128 barcodes itself (``GS ( k`` / ``GS k``) or must be sent them
as raster images, whether it has a cutter, and which character code tables (``ESC t n``) it
holds. The renderer (:mod:`edge_agent.printing.render`) only reads these fields; nothing about
a printer model is hard-coded anywhere else.

Profiles
--------
=========== ===== ======= ==== ========= ===== =========================================
name        paper columns dots QR        cut   typical printers
=========== ===== ======= ==== ========= ===== =========================================
``58mm``    58 mm 32      384  raster    no    Xprinter XP-58, POS-5890, mobile printers
``80mm-42`` 80 mm 42      512  native    yes   Epson TM-T88IV/V/VI
``80mm-48`` 80 mm 48      576  native    yes   Epson TM-T20/T20II/T82, most 80 mm clones
=========== ===== ======= ==== ========= ===== =========================================

All columns are font A (12x24 dots). An 80 mm printer prints 42 or 48 font-A columns depending
on its head (512 or 576 dots); choosing ``80mm-42`` for a 48-column printer only leaves a
margin, the other way round would wrap every line, so ``80mm-42`` is the default.

Code pages
----------
Every profile carries the same Western table in Epson numbering, which the common clones
follow for these three pages: ``0`` CP437 (the power-on page: ASCII, German and Nordic
letters, ``£``), ``18`` CP852 (Central European: ``Ł``, ``ő``, ``č``) and ``19`` CP858 (CP850
with ``€``). Keeping the table short is deliberate: the renderer picks, for each run of text,
the first page in this table that has its characters, so ``€`` always switches to CP858 and a
receipt's bytes depend only on its text. Characters that none of the pages has print as ``?``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.errors import InvalidInput

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "WESTERN_CODE_PAGES",
    "PrinterProfile",
    "profile_named",
]

#: ``ESC t n`` number -> code page, in the order the renderer tries them.
WESTERN_CODE_PAGES: Final[tuple[tuple[int, str], ...]] = (
    (0, "CP437"),
    (18, "CP852"),
    (19, "CP858"),
)


@dataclass(frozen=True, slots=True)
class PrinterProfile:
    """What one kind of receipt printer can do.

    ``dots`` is the printable width (raster images, QR codes and barcodes must fit in it);
    ``dpi`` converts dots to millimetres for software-drawn barcodes. ``native_qr`` and
    ``native_barcode`` say whether the printer draws QR codes / CODE128 itself; otherwise they
    are sent as raster images (``GS v 0``). ``cut`` is a cutter (``GS V``); without one the
    paper is fed past the tear bar. ``qr_module`` is the QR module size in dots.
    """

    name: str
    paper_mm: int
    columns: int
    dots: int
    dpi: int = 203
    native_qr: bool = True
    native_barcode: bool = True
    cut: bool = True
    qr_module: int = 5
    barcode_height: int = 60
    code_pages: tuple[tuple[int, str], ...] = WESTERN_CODE_PAGES

    def __post_init__(self) -> None:
        if not 16 <= self.columns <= 80:
            raise InvalidInput(
                f"Printer profile {self.name}: {self.columns} columns; receipt printers have "
                "16 to 80"
            )
        if self.dots < 8 * self.columns:
            raise InvalidInput(
                f"Printer profile {self.name}: {self.dots} dots cannot hold {self.columns} columns"
            )
        if not self.code_pages:
            raise InvalidInput(f"Printer profile {self.name} has no code page")


PROFILES: Final[dict[str, PrinterProfile]] = {
    "58mm": PrinterProfile(
        name="58mm",
        paper_mm=58,
        columns=32,
        dots=384,
        native_qr=False,
        cut=False,
        qr_module=4,
    ),
    "80mm-42": PrinterProfile(name="80mm-42", paper_mm=80, columns=42, dots=512, dpi=180),
    "80mm-48": PrinterProfile(name="80mm-48", paper_mm=80, columns=48, dots=576),
}

#: The profile used when a printer URL names none.
DEFAULT_PROFILE: Final = "80mm-42"


def profile_named(name: str) -> PrinterProfile:
    """The profile called ``name`` (``58mm``, ``80mm-42``, ``80mm-48``; ``80mm`` is ``80mm-42``)."""
    key = name.strip().lower()
    if key == "80mm":
        key = DEFAULT_PROFILE
    found = PROFILES.get(key)
    if found is None:
        raise InvalidInput(
            f"Unknown printer profile {name!r}: use one of {', '.join(PROFILES)} "
            "(58 mm paper has 32 columns; 80 mm has 42 or 48, see docs/hardware.md)"
        )
    return found
