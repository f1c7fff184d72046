"""The till's scan path after its speed-ups: a scan framed by scanner noise does what the bare
code does, amounts in messages read as Money.format writes them, and the loyalty format the
till remembers follows its settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import TillSettings
from edge_agent.till import Till, TillEvent
from shared.catalogue import Store
from shared.money import Money
from tests.edge_agent import factories as f

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


def open_till(template: Path, directory: Path) -> Till:
    directory.mkdir()
    store = f.store_from_template(template, directory)
    settings = TillSettings(
        db_path=directory / "till.sqlite",
        store_id=f.STORE_ID,
        till_id=f.TILL_ID,
        suggestions=3,
    )
    return Till(settings=settings, store=store, client=None, clock=lambda: NOW, own_store=True)


@pytest.fixture
def tills(template: Path, tmp_path: Path) -> Iterator[tuple[Till, Till]]:
    with open_till(template, tmp_path / "a") as bare, open_till(template, tmp_path / "b") as framed:
        yield bare, framed


def seen(event: TillEvent) -> tuple[object, ...]:
    return event.kind, event.message, dict(event.data)


def ean(item: f.Item) -> str:
    assert item.ean is not None
    return item.ean


MILK = ean(f.MILK)
SCANS = [
    MILK,
    ean(f.TSHIRT),
    MILK,  # a second unit on the same line
    f.gtin14(ean(f.WINE)),  # the GTIN-14 of a product
    f.weight_label(640),
    f.price_label(1234),
    f.UNKNOWN_EAN,
    MILK[:-1] + str((int(MILK[-1]) + 1) % 10),  # a misread check digit
    "1234567",  # no product barcode has 7 digits
    "4006381-333931",  # typed with a dash
    "CMD-TOTAL",
    "garbage!",
    ean(f.SOCKS),
]


FRAMES = ("{}\r\n", "\x02{}\x03", "  {}\t", "\x02 {}\r")


def test_a_framed_scan_does_what_the_bare_code_does(tills: tuple[Till, Till]) -> None:
    bare, framed = tills
    for i, code in enumerate(SCANS):
        expected = seen(bare.handle_scan(code))
        assert seen(framed.handle_scan(FRAMES[i % len(FRAMES)].format(code))) == expected, code
    assert [line.sku for line in framed.engine.basket.lines] == [
        line.sku for line in bare.engine.basket.lines
    ]
    assert len(framed.engine.basket.lines) == 6  # milk, T-shirt, wine, carrots, ham, socks


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.integers(-(10**12), 10**12),
    currency=st.sampled_from(["EUR", "CHF", "JPY", "BHD", "USD"]),
    locale=st.sampled_from(["en", "de", "de-CH", "fr", "en-US"]),
)
def test_money_in_messages_is_money_format(
    tills: tuple[Till, Till], amount: int, currency: str, locale: str
) -> None:
    till = tills[0]
    till.engine.shop = f.make_shop(currency=currency, locale=locale)
    assert till._money(amount) == Money(amount, currency).format(locale)


def test_money_for_a_currency_money_refuses_is_still_written(tills: tuple[Till, Till]) -> None:
    till = tills[0]
    till.engine.shop = Store.model_construct(**{**f.make_shop().model_dump(), "currency": "XXX"})
    assert till._money(1234) == "1234 XXX minor units"


def test_the_loyalty_format_follows_the_settings(tills: tuple[Till, Till]) -> None:
    till = tills[0]
    first = till._loyalty_format()
    assert first == till.settings.loyalty_format
    assert till._loyalty_format() is first  # not made again for every scan
    till.settings.loyalty_prefix, till.settings.loyalty_length = "77", 10
    changed = till._loyalty_format()
    assert (changed.prefix, changed.length) == ("77", 10)
