"""The ESC/POS decoder reads what python-escpos writes, byte streams from the Epson manual, and
survives garbage."""

from __future__ import annotations

import time
from typing import Any

import pytest
import qrcode
from escpos.printer import Dummy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from hardware_sim.escpos_decoder import (
    Barcode,
    Code2D,
    DecodedReceipt,
    DrawerKick,
    EscPosDecoder,
    RasterImage,
    ReceiptCut,
    StatusRequest,
    TextLine,
    code128_payload_from_image,
    decode_receipts,
    qr_payload_from_image,
    render_text,
)

ESC, GS, DLE = b"\x1b", b"\x1d", b"\x10"
CUT = GS + b"V\x00"


def one(data: bytes, **kwargs: Any) -> DecodedReceipt:
    receipts = decode_receipts(data, **kwargs)
    assert len(receipts) == 1, receipts
    return receipts[0]


def printed(build: Any) -> bytes:
    """Bytes python-escpos writes for ``build(printer)``; its console chatter is dropped."""
    printer = Dummy()
    build(printer)
    output: bytes = printer.output
    return output


def no_blank(receipt: DecodedReceipt) -> list[TextLine]:
    return [line for line in receipt.lines if line.text.strip()]


# -- python-escpos's own API ----------------------------------------------------------------


def test_python_escpos_text_styles_codes_cut_and_drawer(capsys: pytest.CaptureFixture[str]) -> None:
    def build(p: Dummy) -> None:
        p.hw("INIT")
        p.set(align="center", bold=True, double_height=True)
        p.textln("Omnitill Café")
        p.set(align="left", bold=False, normal_textsize=True, underline=1)
        p.textln("underlined")
        p.set(underline=0, invert=True)
        p.textln("inverse")
        p.set(invert=False, double_width=True, double_height=True)
        p.textln("BIG")
        p.set(normal_textsize=True, align="right")
        p.textln("right")
        p.set(align="left", font="b")
        p.textln("small font")
        p.set(font="a", custom_size=True, width=3, height=4)
        p.textln("x3")
        p.set(normal_textsize=True)
        p.qr("https://receipts.example/r/42", native=True, ec=1, size=5)
        p.barcode("{BR12345678", "CODE128", function_type="B")
        p.cashdraw(2)
        p.cut()
        p.cashdraw(5)
        p.textln("second")
        p.cut(mode="PART")

    first, second = decode_receipts(printed(build))
    assert "Using hardware barcode renderer" in capsys.readouterr().out  # python-escpos chatter

    lines = no_blank(first)
    assert [line.text for line in lines] == [
        "Omnitill Café",
        "underlined",
        "inverse",
        "BIG",
        "right",
        "small font",
        "x3",
    ]
    title, underlined, inverse, big, right, small, x3 = lines
    assert title.align == "center"
    assert title.style.bold and title.style.double_height and not title.style.double_width
    assert underlined.style.underline == 1 and not underlined.style.bold
    assert inverse.style.inverse and not inverse.style.underline
    assert big.style.double_width and big.style.double_height
    assert right.align == "right" and right.style.width == 1
    assert small.style.font == "B"
    assert (x3.style.width, x3.style.height) == (3, 4)

    [qr] = first.qr_codes
    assert qr.payload == "https://receipts.example/r/42"
    assert (qr.model, qr.module_size, qr.error_correction) == (2, 5, "M")
    [code] = first.barcodes
    assert (code.symbology, code.payload, code.valid) == ("CODE128", "R12345678", True)
    assert code.align == "center" and code.hri == "below" and code.height == 64
    assert first.drawer_kicks == [DrawerKick(pin=2, on_ms=100, off_ms=100)]
    assert first.cut == "full"

    assert [line.text for line in no_blank(second)] == ["second"]
    assert second.drawer_kicks[0].pin == 5
    assert second.cut == "partial"


def test_python_escpos_magic_encoder_non_ascii_round_trips() -> None:
    lines = ["Crème brûlée 4,50 € · Łódź żółć", "£3 · Ærø · ñandú · Ğ · Ωmega"]
    receipt = one(printed(lambda p: ([p.textln(line) for line in lines], p.cut())))
    assert receipt.text_lines[:2] == lines
    # The magic encoder had to switch pages for that line; every switch was followed.
    assert len(receipt.code_pages) >= 2


@pytest.mark.parametrize(
    ("page", "name", "codec", "text"),
    [
        (0, "CP437", "cp437", "Ärger über Öl, ½ £ ß"),
        (2, "CP850", "cp850", "Ça coûte 5 ø Å ñ"),
        (18, "CP852", "cp852", "Łódź, Příliš žluťoučký kůň"),
        (19, "CP858", "cp858", "Prix 4,50 € Ñ Ø"),
        (16, "CP1252", "cp1252", "Price €4.50 “quoted” — Œuvre"),
        (40, "ISO-8859-15", "iso8859_15", "Ça vaut 5 € Š ž Ÿ"),
    ],
)
def test_esc_t_selects_the_code_page(page: int, name: str, codec: str, text: str) -> None:
    data = ESC + b"t" + bytes([page]) + text.encode(codec) + b"\n" + CUT
    receipt = one(data)
    assert receipt.text_lines == [text]
    assert receipt.code_pages == (name,)


def test_code_page_changes_mid_line_and_init_resets_it() -> None:
    data = (
        ESC + b"t\x13" + "€".encode("cp858") + ESC + b"t\x12" + "Ł".encode("cp852") + b"\n"
        + b"\x8f\n" + ESC + b"@" + b"\x8f\n" + CUT
    )  # fmt: skip
    receipt = one(data)
    assert receipt.text_lines == ["€Ł", "Ć", "Å"]  # 0x8F in CP852, then in CP437 after ESC @


def test_unknown_code_page_prints_replacement_characters() -> None:
    assert one(ESC + b"t\x63" + b"A\xe9\n").text_lines == ["A\ufffd"]


# -- lines, feeds and layout ----------------------------------------------------------------


def test_long_lines_wrap_at_the_paper_width() -> None:
    data = b"x" * 50 + b"\n" + GS + b"!\x10" + b"y" * 30 + b"\n"
    wide = one(data)
    assert wide.text_lines == ["x" * 48, "x" * 2, "y" * 24, "y" * 6]
    narrow = one(data, width_dots=384)
    assert narrow.text_lines == ["x" * 32, "x" * 18, "y" * 16, "y" * 14]
    exactly_full = one(b"z" * 48 + b"\n")
    assert exactly_full.text_lines == ["z" * 48]


def test_feeds_cr_and_tabs() -> None:
    data = (
        b"a\r\nb"
        + ESC
        + b"d\x03"
        + ESC
        + b"d\x02"
        + b"c\td\n"
        + ESC
        + b"D\x04\x0a\x00"
        + b"e\tf\tg\n"
    )
    receipt = one(data)
    assert receipt.text_lines == ["a", "b", "", "", "", "", "c       d", "e   f     g"]


def test_alignment_applies_from_the_start_of_a_line() -> None:
    data = ESC + b"a\x01" + b"centred" + ESC + b"a\x02" + b" still\n" + b"right\n"
    receipt = one(data)
    assert [(line.text, line.align) for line in receipt.lines] == [
        ("centred still", "center"),
        ("right", "right"),
    ]


def test_init_discards_the_unprinted_line_and_resets_styles() -> None:
    data = ESC + b"E\x01" + b"lost" + ESC + b"@" + b"kept\n"
    receipt = one(data)
    assert receipt.text_lines == ["kept"]
    assert not receipt.lines[0].style.bold


def test_esc_bang_sets_every_mode_at_once() -> None:
    receipt = one(ESC + b"!\xb9" + b"all\n" + ESC + b"!\x00" + b"none\n")
    style = receipt.lines[0].style
    assert (style.font, style.bold, style.height, style.width, style.underline) == ("B", 1, 2, 2, 1)
    assert receipt.lines[1].style.width == 1 and not receipt.lines[1].style.bold


def test_render_text_aligns_and_marks_codes() -> None:
    data = (
        ESC + b"a\x01" + b"Shop\n" + ESC + b"a\x02" + b"9.99\n" + ESC + b"a\x00"
        + GS + b"k\x49\x05{Babc" + ESC + b"p\x00\x19\xfa" + CUT
    )  # fmt: skip
    text = render_text(one(data), columns=20)
    assert text.splitlines() == [
        "        Shop",
        "                9.99",
        "[CODE128: abc]",
        "[cash drawer kick: pin 2, 50 ms]",
        "----- full cut -----",
    ]


# -- barcodes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "symbology", "payload", "valid"),
    [
        (b"k\x49\x0b{BR12345678", "CODE128", "R12345678", True),
        (b"k\x49\x05{C\x0c\x22\x38", "CODE128", "123456", True),
        (b"k\x49\x08{BAB{C\x0c\x22", "CODE128", "AB1234", True),
        (b"k\x49\x06{Ba{{b", "CODE128", "a{b", True),
        (b"k\x49\x03abc", "CODE128", "abc", False),  # no code set: the printer refuses it
        (b"k\x43\x0c400638133393", "EAN13", "4006381333931", True),
        (b"k\x02400638133393\x00", "EAN13", "4006381333931", True),
        (b"k\x02123\x00", "EAN13", "123", False),
        (b"k\x44\x0796385074", "EAN8", "96385074", True),
        (b"k\x41\x0b03600029145", "UPC-A", "036000291452", True),
        (b"k\x04*ABC-1*\x00", "CODE39", "ABC-1", True),
        (b"k\x45\x04AB12", "CODE39", "AB12", True),
        (b"k\x46\x041234", "ITF", "1234", True),
        (b"k\x4a\x08{A{1ABC1", "GS1-128", "ABC1", True),
    ],
)
def test_barcode_payloads(command: bytes, symbology: str, payload: str, valid: bool) -> None:
    [code] = one(GS + command + CUT).barcodes
    assert (code.symbology, code.payload, code.valid) == (symbology, payload, valid)


def test_barcode_settings_are_recorded() -> None:
    data = GS + b"h\x50" + GS + b"w\x02" + GS + b"H\x03" + ESC + b"a\x02" + GS + b"k\x49\x04{Bxy"
    code = one(data).barcodes[0]
    assert (code.height, code.module_width, code.hri, code.align) == (80, 2, "both", "right")


# -- images, QR codes as images, and other 2-D codes ------------------------------------------


def qr_modules(payload: str, ec: int = qrcode.constants.ERROR_CORRECT_L) -> list[list[bool]]:
    qr = qrcode.QRCode(version=None, error_correction=ec, box_size=1, border=0)
    qr.add_data(payload)
    qr.make(fit=True)
    matrix: list[list[bool]] = qr.get_matrix()
    return matrix


def test_raster_qr_from_python_escpos_reads_back_and_matches_a_re_rendered_code() -> None:
    url = "https://receipts.omnitill.example/r/7d1c5a52-0c4e-4a43-9d0f-3c3b8f1d2e01"
    receipt = one(printed(lambda p: (p.qr(url, native=False, size=3), p.cut())))
    [image] = receipt.images
    assert receipt.qr_payloads == [url]
    assert receipt.qr_codes == []  # not a printer-drawn code
    # The bitmap itself is the qrcode package's rendering of the same payload (3 dots a module).
    modules = qr_modules(url)
    sampled = [
        [image.pixel(3 + 3 * c + 1, 3 + 3 * r + 1) for c in range(len(modules))]
        for r in range(len(modules))
    ]
    assert sampled == modules
    assert f"[QR (raster image {image.width}x{image.height}): {url}]" in render_text(receipt)


@settings(max_examples=25, deadline=None)
@given(
    payload=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60
    ),
    ec=st.sampled_from([0, 1, 2, 3]),
    size=st.integers(1, 4),
)
def test_any_raster_qr_reads_back(payload: str, ec: int, size: int) -> None:
    data = printed(lambda p: p.qr(payload, native=False, ec=ec, size=size))
    [receipt] = decode_receipts(data)
    assert receipt.qr_payloads == [payload]


@pytest.mark.parametrize("impl", ["bitImageRaster", "graphics", "bitImageColumn"])
def test_every_image_command_gives_the_same_bitmap(impl: str) -> None:
    url = "https://example.com/q"
    image_in = qrcode.make(url, box_size=2, border=1).get_image().convert("RGB")
    receipt = one(printed(lambda p: p.image(image_in, impl=impl)))
    [image] = receipt.images
    assert image.qr_payload == url
    # Column images come in 24-dot strips: the last one is padded below.
    assert image.width >= image_in.width and image.height >= image_in.height
    expected = [
        [image_in.getpixel((x, y)) == (0, 0, 0) for x in range(image_in.width)]
        for y in range(image_in.height)
    ]
    assert [row[: image_in.width] for row in image.rows()[: image_in.height]] == expected


def test_a_damaged_qr_image_is_not_guessed() -> None:
    url = "https://example.com/damaged"
    data = bytearray(printed(lambda p: p.qr(url, native=False, size=2)))
    receipt = one(bytes(data))
    [image] = receipt.images
    # Flip one module in the data area (bottom-right corner, well away from function patterns).
    modules = len(qr_modules(url))
    x = y = 2 + 2 * (modules - 2)
    start = data.index(GS + b"v0") + 8
    for dy in (0, 1):
        for dx in (0, 1):
            data[start + (y + dy) * image.width_bytes + (x + dx) // 8] ^= 0x80 >> ((x + dx) % 8)
    [damaged] = one(bytes(data)).images
    assert damaged.qr_payload is None
    assert "[raster image" in render_text(one(bytes(data)))


def test_a_picture_is_just_an_image() -> None:
    logo = Image.new("RGB", (64, 32), "white")
    ImageDraw.Draw(logo).ellipse((4, 4, 60, 28), fill="black")
    receipt = one(printed(lambda p: p.image(logo)))
    [image] = receipt.images
    assert (image.width, image.height, image.qr_payload, image.barcode_payload) == (
        64,
        32,
        None,
        None,
    )
    assert image.pixel(32, 16) and not image.pixel(0, 0)
    assert "[raster image 64x32]" in render_text(receipt)


def test_software_barcode_image_reads_back(capsys: pytest.CaptureFixture[str]) -> None:
    receipt = one(
        printed(lambda p: p.barcode("RS001-T1-000042", "CODE128", force_software="bitImageRaster"))
    )
    capsys.readouterr()
    assert receipt.barcodes == []
    assert receipt.barcode_payloads == ["RS001-T1-000042"]


def test_code128_image_with_a_wrong_check_symbol_is_rejected() -> None:
    receipt = one(
        printed(lambda p: p.barcode("ABC123", "CODE128", force_software="bitImageRaster"))
    )
    [image] = receipt.images
    assert code128_payload_from_image(image) == "ABC123"
    # Erase the right half of the bars: what is left is not a barcode.
    half = bytearray(image.data)
    for y in range(image.height):
        for k in range(image.width_bytes // 2, image.width_bytes):
            half[y * image.width_bytes + k] = 0
    assert code128_payload_from_image(RasterImage(image.width, image.height, bytes(half))) is None
    assert qr_payload_from_image(image) is None


def test_other_2d_symbols_keep_their_data() -> None:
    store = GS + b"(k" + (3 + 5).to_bytes(2, "little") + b"0P0" + b"PDF-1"
    show = GS + b"(k\x03\x000Q0"
    [code] = one(store + show + CUT).codes_2d
    assert code == Code2D(
        symbology="PDF417", data=b"PDF-1", model=0, module_size=0, error_correction=""
    )


def test_qr_print_without_data_prints_nothing() -> None:
    assert decode_receipts(GS + b"(k\x03\x001Q0") == []


# -- status requests and streaming --------------------------------------------------------


def test_status_requests_are_events_in_stream_order() -> None:
    decoder = EscPosDecoder()
    events = decoder.feed(DLE + b"\x04\x01" + b"hi\n" + CUT + DLE + b"\x04\x04" + GS + b"r\x01")
    assert [type(e) for e in events] == [StatusRequest, ReceiptCut, StatusRequest, StatusRequest]
    assert events[0] == StatusRequest("DLE EOT", 1)
    assert events[2:] == [StatusRequest("DLE EOT", 4), StatusRequest("GS r", 1)]


def test_dle_eot_inside_image_data_is_data() -> None:
    rows = DLE + b"\x04\x01" + b"\x00"  # 3 bytes a row, the first row looks like DLE EOT 1
    data = GS + b"v0\x00\x03\x00\x02\x00" + rows + rows
    decoder = EscPosDecoder()
    assert decoder.feed(data) == []
    tail = decoder.finish()
    assert tail is not None and tail.images[0].height == 2


def test_a_command_split_across_reads_waits_for_its_bytes() -> None:
    data = printed(lambda p: (p.textln("é"), p.qr("split", native=True), p.cut()))
    decoder = EscPosDecoder()
    events = [e for k in range(len(data)) for e in decoder.feed(data[k : k + 1])]
    assert [type(e) for e in events] == [ReceiptCut]
    assert isinstance(events[0], ReceiptCut)
    assert events[0].receipt == one(data)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_chunking_never_changes_the_result(cuts: list[int]) -> None:
    data = SAMPLE
    points = sorted({c % (len(data) + 1) for c in cuts})
    decoder = EscPosDecoder()
    receipts: list[DecodedReceipt] = []
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        receipts += [e.receipt for e in decoder.feed(data[start:end]) if isinstance(e, ReceiptCut)]
    tail = decoder.finish()
    if tail is not None:
        receipts.append(tail)
    assert receipts == SAMPLE_RECEIPTS


def _sample() -> bytes:
    def build(p: Dummy) -> None:
        p.set(align="center", bold=True)
        p.textln("Café € Ł")
        p.qr("https://x.example/1", native=True)
        p.qr("https://x.example/2", native=False)
        p.barcode("{C" + "\x0c\x22", "CODE128", function_type="B", check=False)
        p.cashdraw(2)
        p.cut()
        p.textln("tail")

    return printed(build)


SAMPLE = _sample()
SAMPLE_RECEIPTS = decode_receipts(SAMPLE)


def test_sample_is_what_the_chunking_test_thinks() -> None:
    first, tail = SAMPLE_RECEIPTS
    assert first.qr_payloads == ["https://x.example/1", "https://x.example/2"]
    assert first.barcodes[0].payload == "1234"
    assert first.cut == "full" and tail.cut is None and tail.text_lines == ["tail"]


# -- garbage ------------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash(data: bytes) -> None:
    started = time.perf_counter()
    receipts = decode_receipts(data)
    for receipt in receipts:
        render_text(receipt)
    assert time.perf_counter() - started < 1.0


_PREFIXES = [
    ESC,
    GS,
    DLE,
    b"\x1c",
    GS + b"(k",
    GS + b"(L",
    GS + b"v0",
    GS + b"k",
    ESC + b"*",
    b"\n",
]


@settings(max_examples=200)
@given(
    st.lists(
        st.one_of(st.sampled_from(_PREFIXES), st.binary(max_size=12)),
        max_size=60,
    )
)
def test_command_shaped_garbage_never_crashes(parts: list[bytes]) -> None:
    data = b"".join(parts)
    started = time.perf_counter()
    decoder = EscPosDecoder()
    for k in range(0, len(data), 7):
        for event in decoder.feed(data[k : k + 7]):
            assert isinstance(event, StatusRequest | ReceiptCut)
    tail = decoder.finish()
    if tail is not None:
        render_text(tail)
    assert time.perf_counter() - started < 1.0


def test_huge_declared_lengths_are_skipped_not_awaited() -> None:
    # A raster header claiming 65535x65535 bytes is impossible: skipped, the text after prints.
    data = GS + b"v0\x00\xff\xff\xff\xff" + b"after\n"
    assert one(data).text_lines == ["after"]


def test_is_blank_and_elements_of_a_drawer_only_stream() -> None:
    [receipt] = decode_receipts(ESC + b"p\x00\x19\xfa")
    assert receipt.is_blank and receipt.cut is None
    assert receipt.elements == (DrawerKick(pin=2, on_ms=50, off_ms=500),)
    assert not one(b"x\n").is_blank
    assert isinstance(one(GS + b"k\x49\x04{Bab").elements[0], Barcode)
