"""Receipts as ESC/POS bytes: golden files at 58 mm and 80 mm, and the byte sequences that
matter (cut, drawer kick, QR native or raster, code pages).

The golden files under ``golden/`` are the exact bytes of fixed receipts (fixed time, fixed
UUIDs); each has a ``.txt`` beside it with the text a customer reads, to review a layout change
by eye. After a deliberate change, regenerate both with::

    OMNITILL_UPDATE_GOLDEN=1 .venv/bin/pytest tests/edge_agent/printing/test_render.py

and read the ``.txt`` diff before committing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import qrcode  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.printing.profiles import PROFILES, PrinterProfile, profile_named
from edge_agent.printing.render import printable_text, render_receipt
from shared.errors import InvalidInput
from shared.sale import Tender
from tests.edge_agent.printing.support import (
    ITEM_NAMES,
    RECEIPT_URL,
    Printed,
    _line,
    read_escpos,
    sample_receipt,
    sample_return_receipt,
    shop,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("OMNITILL_UPDATE_GOLDEN") == "1"

P58 = PROFILES["58mm"]
P80 = PROFILES["80mm-42"]
P80W = PROFILES["80mm-48"]
INIT = b"\x1b@"
KICK = b"\x1bp\x002\x32"  # ESC p, pin 2, 100 ms on, 100 ms off
CUT = b"\x1bd\x06\x1dV\x00"  # feed 6 lines, full cut
CARD = (Tender(kind="card", amount_minor=3360, reference="SIM-000001"),)


def render(receipt: object = None, profile: PrinterProfile = P80, **kwargs: object) -> bytes:
    return render_receipt(
        receipt or sample_receipt(),  # type: ignore[arg-type]
        profile,
        item_names=ITEM_NAMES,
        **kwargs,  # type: ignore[arg-type]
    )


def text_of(data: bytes) -> str:
    return read_escpos(data).text


def check_golden(name: str, data: bytes) -> None:
    binary, text = GOLDEN / f"{name}.bin", GOLDEN / f"{name}.txt"
    readable = read_escpos(data).layout
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        binary.write_bytes(data)
        text.write_text(readable, encoding="utf-8")
    assert binary.exists(), f"no golden file {binary.name}: run with OMNITILL_UPDATE_GOLDEN=1"
    assert text.read_text(encoding="utf-8") == readable
    assert binary.read_bytes() == data, f"{name}: the bytes changed (the text did not)"


# -- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["58mm", "80mm-42", "80mm-48"])
def test_a_sale_receipt_matches_its_golden_bytes(profile: str) -> None:
    check_golden(f"sale-{profile}", render(profile=PROFILES[profile]))


def test_a_return_receipt_matches_its_golden_bytes() -> None:
    check_golden("return-80mm-42", render(sample_return_receipt(), P80))


def test_a_reprint_matches_its_golden_bytes() -> None:
    check_golden("copy-58mm", render(sample_receipt(copy=True), P58))


def test_rendering_depends_only_on_the_receipt() -> None:
    first = render()
    render(sample_receipt(store=shop(name="Łódź Żabka")), P80)  # other code pages in between
    render(sample_return_receipt(), P58)
    assert render() == first


# -- layout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_every_row_fits_the_paper_and_amounts_are_right_aligned(profile: PrinterProfile) -> None:
    rows = read_escpos(render(profile=profile)).rows
    assert max(len(row) for row in rows) == profile.columns
    for amount in ("€2.58 A", "€19.99 B", "€33.60", "€16.40", "€12.99", "€29.99"):
        row = next(r for r in rows if r.endswith(amount))
        assert len(row) == profile.columns, row


def test_the_receipt_shows_what_the_customer_bought_and_paid() -> None:
    text = text_of(render(profile=P80))
    for expected in (
        "Omnitill Café Köpenick",
        "Receipt                     S001-T1-000042",
        "Date                      2026-11-24 16:04",  # 15:04 UTC in Berlin
        "Till                               S001-T1",
        "Cashier                                Zoë",
        "Alpenhof Fresh Milk 1 l\n  2 x €1.29                        €2.58 A",
        "Nordkind Organic Cotton T-Shirt\n  Navy, extra long                €19.99 B\n"
        "  Summer sale -10%                -€2.00  ",
        "Carrots loose\n  0.532 kg x €1.99/kg              €1.05 A",
        "Łukasz's Pierogi - ruskie          €4.50 A",
        "Crème brûlée 2×                    €3.99 A",
        "?? Matcha Latte                    €3.49 B",
        "TOTAL                               €33.60",
        "Cash                                €50.00",
        "Change                              €16.40",
        "Rate          Net         Tax       Gross",
        "A 7%        11.33        0.79       12.12",
        "B 19%       18.05        3.43       21.48",
        "Customer                        Zoë Müller",
        "Points this visit                      +14",
        "Points balance                         134",
        "Customers who bought Alpenhof Fresh Milk 1\nl also bought:",
        "Hochland Coffee Beans 1 kg          €12.99",
        "Backstube Rye Bread 500 g            €2.99",
        "Customers who bought Nordkind Organic\nCotton T-Shirt Navy, extra long also\nbought:",
        "Nordkind Leather Belt Cognac        €29.99",
    ):
        assert expected in text
    assert "COPY" not in text and "REFUND" not in text


def test_58mm_wraps_long_names_under_the_amount_column() -> None:
    text = text_of(render(profile=P58))
    assert (
        "Nordkind Organic Cotton\n  T-Shirt Navy, extra\n  long                  €19.99 B\n" in text
    )
    assert "Łukasz's Pierogi -\n  ruskie                 €4.50 A\n" in text


def test_the_date_is_in_the_stores_time_zone() -> None:
    def date_row(timezone: str) -> str:
        text = text_of(render(sample_receipt(store=shop(timezone=timezone)), P80))
        return next(row for row in text.split("\n") if row.startswith("Date"))

    assert date_row("Europe/Berlin").endswith("2026-11-24 16:04")
    assert date_row("America/New_York").endswith("2026-11-24 10:04")
    assert date_row("Asia/Tokyo").endswith("2026-11-25 00:04")
    assert date_row("Mars/Olympus_Mons").endswith("2026-11-24 15:04")  # unknown: UTC


def test_a_decimal_comma_store_prints_amounts_the_local_way() -> None:
    text = text_of(render(sample_receipt(store=shop(locale="de")), P80))
    assert "TOTAL                              33,60 €" in text
    assert "A 7%        11,33        0,79       12,12" in text


def test_a_reprint_says_copy_at_the_top_and_the_bottom() -> None:
    rows = [row for row in read_escpos(render(sample_receipt(copy=True), P80)).rows if row]
    assert rows[0] == "COPY" and rows[-1] == "COPY"
    assert rows.count("COPY") == 2


def test_a_return_receipt_says_refund_and_names_the_original() -> None:
    printed = read_escpos(render(sample_return_receipt(), P80))
    assert "\nREFUND\n" in printed.text
    assert "Refund of receipt           S001-T1-000042" in printed.text
    assert "REFUND                              €17.99" in printed.text
    assert "Cash refunded                       €17.99" in printed.text
    assert printed.barcodes == [] and printed.qr == []  # a return receipt starts no return


def test_suggestions_without_a_known_basket_item_get_a_plain_heading() -> None:
    receipt = sample_receipt()
    text = text_of(render_receipt(receipt, P80))  # no item names
    assert "Customers who bought your items also\nbought:" in text
    assert "Hochland Coffee Beans 1 kg          €12.99" in text


def test_a_receipt_without_url_customer_or_suggestions_leaves_them_out() -> None:
    receipt = sample_receipt().model_copy(
        update={
            "receipt_url": None,
            "suggestions": (),
            "customer_name": None,
            "loyalty_points": None,
            "loyalty_points_earned": 0,
        }
    )
    printed = read_escpos(render(receipt, P80))
    assert printed.qr == [] and printed.images == []
    assert "Customer" not in printed.text and "Points" not in printed.text
    assert "also bought" not in printed.text
    assert printed.barcodes == ["RS001-T1-000042"]


# -- byte sequences ----------------------------------------------------------------------------


def test_80mm_ends_with_a_feed_and_a_full_cut_58mm_feeds_to_the_tear_bar() -> None:
    assert render(profile=P80).endswith(CUT)
    assert read_escpos(render(profile=P80)).cuts == 1
    data = render(profile=P58)
    assert data.endswith(b"\x1bd\x06")
    assert read_escpos(data).cuts == 0


@pytest.mark.parametrize("profile", [P58, P80], ids=["58mm", "80mm"])
def test_the_drawer_opens_first_for_cash_only(profile: PrinterProfile) -> None:
    cash = render(profile=profile)
    assert cash.startswith(INIT + KICK)
    assert read_escpos(cash).drawer_kicks == 1
    card = render(sample_receipt(tenders=CARD), profile)
    assert card.startswith(INIT) and not card.startswith(INIT + KICK)
    assert read_escpos(card).drawer_kicks == 0
    split = (
        Tender(kind="card", amount_minor=3000, reference="SIM-1"),
        Tender(kind="cash", amount_minor=500, change_minor=140),
    )
    assert read_escpos(render(sample_receipt(tenders=split), profile)).drawer_kicks == 1


def test_no_drawer_kick_on_a_copy_a_card_refund_or_when_told_not_to() -> None:
    assert read_escpos(render(sample_receipt(copy=True))).drawer_kicks == 0
    assert read_escpos(render(sample_return_receipt(refund="cash"))).drawer_kicks == 1
    assert read_escpos(render(sample_return_receipt(refund="card"))).drawer_kicks == 0
    assert read_escpos(render(kick_drawer=False)).drawer_kicks == 0


def test_80mm_draws_the_qr_code_natively() -> None:
    data = render(profile=P80)
    url = RECEIPT_URL.encode()
    # GS ( k: model 2, module size 5, error correction L, store the data, print it.
    native = (
        b"\x1d(k\x04\x001A2\x00"
        + b"\x1d(k\x03\x001C\x05"
        + b"\x1d(k\x03\x001E0"
        + b"\x1d(k"
        + bytes([len(url) + 3, 0])
        + b"1P0"
        + url
        + b"\x1d(k\x03\x001Q0"
    )
    assert native in data
    printed = read_escpos(data)
    assert printed.qr == [RECEIPT_URL] and printed.images == []
    # Native QR codes follow the justification: centred first.
    last_align = data.rindex(b"\x1ba", 0, data.index(native))
    assert data[last_align : last_align + 3] == b"\x1ba\x01"


def _raster_bits(data: bytes, index: int) -> list[list[bool]]:
    """The ``index``-th GS v 0 image of ``data`` as rows of dots (True = black)."""
    start = -1
    for _ in range(index + 1):
        start = data.index(b"\x1dv0", start + 1)
    width = data[start + 4] + 256 * data[start + 5]
    height = data[start + 6] + 256 * data[start + 7]
    body = data[start + 8 : start + 8 + width * height]
    return [
        [bool(body[y * width + x // 8] & (0x80 >> (x % 8))) for x in range(width * 8)]
        for y in range(height)
    ]


def test_58mm_sends_the_qr_code_as_a_raster_image_of_the_url() -> None:
    data = render(profile=P58)
    assert b"\x1d(k" not in data
    printed = read_escpos(data)
    assert printed.qr == [] and printed.images[0][0] == P58.dots
    bits = _raster_bits(data, 0)
    black = [(y, x) for y, row in enumerate(bits) for x, dot in enumerate(row) if dot]
    top, left = min(y for y, _ in black), min(x for _, x in black)
    bottom, right = max(y for y, _ in black), max(x for _, x in black)
    code = qrcode.QRCode(box_size=1, border=0, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(RECEIPT_URL)
    code.make(fit=True)
    matrix = code.get_matrix()
    size = (right - left + 1) // len(matrix)
    assert size == P58.qr_module and bottom - top + 1 == size * len(matrix)
    read = [
        [bits[top + size * r + size // 2][left + size * c + size // 2] for c in range(len(matrix))]
        for r in range(len(matrix))
    ]
    assert read == matrix
    assert abs((left + right) / 2 - P58.dots / 2) <= size  # centred


def test_the_return_barcode_is_code128_of_r_and_the_receipt_number() -> None:
    data = render(profile=P80)
    assert b"\x1dkI\x11{BRS001-T1-000042" in data  # GS k 73, 17 bytes, code set B
    assert read_escpos(data).barcodes == ["RS001-T1-000042"]


def test_58mm_draws_the_barcode_as_an_image_with_the_number_under_it() -> None:
    # 2 dots a module does not fit 384 dots in code set B: python-barcode packs the digits.
    printed = read_escpos(render(profile=P58))
    assert printed.barcodes == []
    assert printed.images[1][0] == P58.dots
    assert "\nRS001-T1-000042\n" in printed.text


def test_the_euro_sign_switches_to_cp858_first() -> None:
    data = render(profile=P80)
    first_text = data.index(b"Omnitill")
    assert data[first_text - 3 : first_text] == b"\x1bt\x00"  # an explicit page from the start
    euro = data.index(b"\xd5")  # € in CP858
    assert data.rindex(b"\x1bt", 0, euro) == euro - 3
    assert data[euro - 3 : euro] == b"\x1bt\x13"  # ESC t 19: CP858
    assert read_escpos(data).code_pages[:2] == [0, 19]


def test_central_european_letters_switch_to_cp852() -> None:
    data = render(profile=P80)
    assert b"\x1bt\x12\x9dukasz" in data  # Ł in CP852 (ESC t 18)
    assert "Łukasz" in text_of(data)


def test_pounds_and_western_accents_stay_in_cp437() -> None:
    receipt = sample_receipt(store=shop(currency="GBP", name="Zoë's Crème Shop"))
    receipt = receipt.model_copy(update={"currency": "GBP"})
    data = render(receipt, P80)
    assert b"Zo\x89's Cr\x8ame Shop" in data  # ë and è in CP437
    assert b"\x9c2.58" in data  # £ in CP437
    assert "£33.60" in text_of(data)


def test_characters_no_code_page_has_print_as_question_marks() -> None:
    assert printable_text("抹茶 ✓ Müller", P80) == "?? ? Müller"
    # combining accents are composed first, typographic punctuation becomes ASCII
    assert printable_text("Zoe\u0308 \u201cNo\u00ebl\u201d \u2013 O\u2019Brien\u2026", P80) == (
        'Zoë "Noël" - O\'Brien...'
    )


def test_printer_commands_hidden_in_a_name_are_not_sent() -> None:
    nasty = _line(1, "X", "Evil\x1bp\x00\x32\x32 drawer\x1dV\x00cut\u200b", 100, "19")
    receipt = sample_receipt(lines=(nasty,), tenders=(Tender(kind="card", amount_minor=100),))
    printed = read_escpos(render(receipt, P80))
    assert printed.drawer_kicks == 0 and printed.cuts == 1
    assert "Evil?p?22 drawer?V?cut" in printed.text


names = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(name=names, customer=names, profile=st.sampled_from(list(PROFILES.values())))
def test_any_text_renders_within_the_paper_width(
    name: str, customer: str, profile: PrinterProfile
) -> None:
    receipt = sample_receipt(lines=(_line(1, "X", name.strip() or "x", 199, "7"),))
    receipt = receipt.model_copy(update={"customer_name": customer, "receipt_url": None})
    printed: Printed = read_escpos(render(receipt, profile))
    assert all(len(row) <= profile.columns for row in printed.rows)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", printed.text)
    assert printed.cuts == int(profile.cut)


def test_profiles_by_name() -> None:
    assert profile_named("58mm").columns == 32
    assert profile_named("80mm").columns == 42
    assert profile_named("80MM-48").columns == 48
    with pytest.raises(InvalidInput, match=r"Unknown printer profile '112mm'.*58mm, 80mm-42"):
        profile_named("112mm")
