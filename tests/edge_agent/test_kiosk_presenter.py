"""The kiosk's presenter over a real local cache, without Qt: screens and their transitions,
timeouts on a fake clock, the admin PIN, search ranked by the personal list, bad codes."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent import feed
from edge_agent.kiosk import (
    PIN_ITERATIONS,
    KioskPresenter,
    KioskSettings,
    check_pin_format,
    hash_pin,
    load_kiosk_settings,
    parse_pin_hash,
    rank_by_personal,
    verify_pin,
)
from edge_agent.store import LocalStore
from edge_agent.till import Till
from shared.barcodes import make_gtin
from shared.customer import CustomerCard
from shared.errors import InvalidInput, ServerUnavailable
from tests.edge_agent import factories as f
from tests.edge_agent.kiosk_support import (
    LOYALTY,
    PERSONAL,
    PIN,
    PRIVATE,
    STRANGER,
    TEA_DESCRIPTION,
    TEA_EAN,
    FakeClock,
    build_kiosk_template,
    kiosk_settings,
)
from tests.edge_agent.ui.support import till_settings


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_kiosk_template(tmp_path_factory.mktemp("kiosk"))


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


@pytest.fixture
def till(store: LocalStore, tmp_path: Path) -> Iterator[Till]:
    with Till(settings=till_settings(tmp_path), store=store, client=None) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kiosk(till: Till, clock: FakeClock) -> Iterator[KioskPresenter]:
    presenter = KioskPresenter(till, kiosk_settings(), clock=clock)
    yield presenter
    presenter.close()


def screen_of(presenter: KioskPresenter) -> str:
    """The screen shown now (a call, so type checkers do not narrow it across actions)."""
    return presenter.screen


def texts(presenter: KioskPresenter) -> str:
    """Every string the presenter's view models hold (what a screen could show)."""
    parts: list[str] = [presenter.greeting, presenter.store_name]
    views: list[Any] = [
        *presenter.slides,
        presenter.product,
        presenter.personal,
        presenter.search,
        presenter.notice,
        presenter.pin,
    ]
    for view in views:
        if view is not None:
            parts.append(repr(dataclasses.asdict(view)))
    return " ".join(parts)


# -- idle ----------------------------------------------------------------------------------------


def test_idle_rotates_the_bestsellers_from_the_cache(
    kiosk: KioskPresenter, clock: FakeClock
) -> None:
    assert screen_of(kiosk) == "idle"
    assert [s.title for s in kiosk.slides] == [
        "Bestsellers in this store",
        "Bestsellers in Apparel",
        "Bestsellers in Grocery",
    ]
    assert [(i.name, i.price) for i in kiosk.slide.items] == [(f.TSHIRT.name, "€19.99")]
    assert kiosk.slide.position == "Slide 1 of 3"
    seen: list[int] = []
    kiosk.add_listener(lambda: seen.append(kiosk.slide_index))
    clock.advance(7.9)
    kiosk.tick()
    assert kiosk.slide_index == 0 and not seen
    clock.advance(0.2)
    kiosk.tick()
    assert kiosk.slide.title == "Bestsellers in Apparel" and seen == [1]
    assert [i.name for i in kiosk.slide.items] == [f.JEANS.name, f.TSHIRT.name, f.SOCKS.name]
    for _ in range(2):
        clock.advance(8.1)
        kiosk.tick()
    assert kiosk.slide.title == "Bestsellers in this store"  # round again


def test_idle_takes_up_new_lists_after_a_round(
    kiosk: KioskPresenter, store: LocalStore, clock: FakeClock
) -> None:
    f.apply(
        store, [f.recommendation_change("bestsellers", f"{f.STORE_ID}/Fruit", [("GRO-JAM", 1)])]
    )
    for _ in range(3):
        clock.advance(8.1)
        kiosk.tick()
    assert "Bestsellers in Fruit" in [s.title for s in kiosk.slides]


def test_a_store_without_bestsellers_shows_a_welcome(tmp_path: Path, clock: FakeClock) -> None:
    local = f.open_store(tmp_path)
    f.apply(local, [f.store_change(f.make_shop())])
    with Till(settings=till_settings(tmp_path), store=local, client=None, own_store=True) as t:
        presenter = KioskPresenter(t, kiosk_settings(), clock=clock)
        assert [s.title for s in presenter.slides] == ["Welcome"]
        assert presenter.slide.items == ()


def test_trending_now_comes_after_the_overall_bestsellers(
    till: Till, store: LocalStore, clock: FakeClock
) -> None:
    f.apply(
        store,
        [
            f.recommendation_change(
                "trending",
                f"{f.STORE_ID}/*",
                [(f.WINE.sku, 5.0), (f.RETIRED.sku, 4.0), ("NO-SUCH-SKU", 3.0), (f.BELT.sku, 2.0)],
            ),
            f.recommendation_change("trending", "*/*", [(f.MILK.sku, 9.0)]),
        ],
    )
    presenter = KioskPresenter(till, kiosk_settings(), clock=clock)
    try:
        assert [s.title for s in presenter.slides] == [
            "Bestsellers in this store",
            "Trending now",
            "Bestsellers in Apparel",
            "Bestsellers in Grocery",
        ]
        clock.advance(8.1)
        presenter.tick()
        assert presenter.slide.title == "Trending now"
        assert presenter.slide.position == "Slide 2 of 4"
        # The store's own list, without what the store does not sell; not the chain's.
        assert [(i.name, i.price) for i in presenter.slide.items] == [
            (f.WINE.name, "€8.99"),
            (f.BELT.name, "€29.99"),
        ]
    finally:
        presenter.close()


def test_trending_now_falls_back_to_the_chain_and_is_skipped_when_empty(
    kiosk: KioskPresenter, store: LocalStore, clock: FakeClock
) -> None:
    def one_round() -> list[str]:
        for _ in range(len(kiosk.slides)):
            clock.advance(8.1)
            kiosk.tick()
        return [s.title for s in kiosk.slides]

    assert "Trending now" not in [s.title for s in kiosk.slides]
    # The store trends nothing of its own (an empty list): the chain's list stands in.
    f.apply(
        store,
        [
            f.recommendation_change("trending", f"{f.STORE_ID}/*", []),
            f.recommendation_change("trending", "*/*", [(f.COFFEE.sku, 3.0)]),
        ],
    )
    assert one_round()[1] == "Trending now"
    assert [i.name for i in kiosk.slides[1].items] == [f.COFFEE.name]
    # Only products the store does not sell: no slide at all, never an empty one.
    f.apply(store, [f.recommendation_change("trending", "*/*", [(f.RETIRED.sku, 3.0)])])
    assert "Trending now" not in one_round()


def test_a_store_with_only_trending_shows_it_first(tmp_path: Path, clock: FakeClock) -> None:
    local = f.open_store(tmp_path)
    f.apply(
        local,
        [
            *f.grocery_changes(),
            *(
                f.delete_change("recommendation", f"bestsellers:{f.STORE_ID}/{category}")
                for category in ("*", "Grocery")
            ),
            f.recommendation_change("trending", "*/*", [(f.JAM.sku, 1.0)]),
        ],
    )
    with Till(settings=till_settings(tmp_path), store=local, client=None, own_store=True) as t:
        presenter = KioskPresenter(t, kiosk_settings(), clock=clock)
        assert [s.title for s in presenter.slides] == ["Trending now"]
        assert [i.name for i in presenter.slide.items] == [f.JAM.name]


# -- products ------------------------------------------------------------------------------------


def test_a_scanned_product_shows_price_description_and_also_bought(kiosk: KioskPresenter) -> None:
    assert f.BREAD.ean is not None
    kiosk.scan(f.BREAD.ean)
    assert screen_of(kiosk) == "product"
    view = kiosk.product
    assert view is not None
    assert (view.name, view.price, view.unit) == (f.BREAD.name, "€2.99", "")
    assert view.description == "Backstube | Grocery"
    assert view.related_title == "Customers who bought this also bought"
    assert [(i.name, i.price) for i in view.related] == [
        (f.BUTTER.name, "€2.49"),
        (f.JAM.name, "€3.49"),
        (f.MILK.name, "€1.29"),
    ]


def test_inactive_partners_are_left_out_and_descriptions_come_from_hq(
    kiosk: KioskPresenter,
) -> None:
    assert f.COFFEE.ean is not None
    kiosk.scan(f.COFFEE.ean)
    assert kiosk.product is not None
    assert [i.sku for i in kiosk.product.related] == [f.MILK.sku]  # the retired crisps are not
    kiosk.scan(TEA_EAN)
    assert kiosk.product is not None and kiosk.product.description == TEA_DESCRIPTION


def test_without_also_bought_the_category_bestsellers_stand_in(kiosk: KioskPresenter) -> None:
    assert f.WINE.ean is not None
    kiosk.scan(f.WINE.ean)
    view = kiosk.product
    assert view is not None
    assert view.related_title == "Popular in Grocery"
    assert [i.sku for i in view.related] == [f.MILK.sku, f.BREAD.sku]


def test_prices_follow_the_store_locale(store: LocalStore, tmp_path: Path) -> None:
    f.apply(store, [f.store_change(f.make_shop(locale="de"))])
    with Till(settings=till_settings(tmp_path), store=store, client=None) as t:
        presenter = KioskPresenter(t, kiosk_settings(), clock=FakeClock())
        assert f.JEANS.ean is not None
        presenter.scan(f.JEANS.ean)
        assert presenter.product is not None and presenter.product.price == "59,99 €"


def test_scale_labels_show_the_price_per_kilogram_or_the_label_price(
    kiosk: KioskPresenter,
) -> None:
    kiosk.scan(f.weight_label(512))
    view = kiosk.product
    assert view is not None
    assert (view.name, view.price, view.unit) == (f.CARROTS.name, "€1.99", "per kg")
    assert view.note == "This label: 512 g"
    kiosk.scan(f.price_label(745))
    assert kiosk.product is not None
    assert kiosk.product.note == "Price on this label: €7.45"


def test_a_touched_product_shows_its_price_check(kiosk: KioskPresenter) -> None:
    kiosk.show_product(f.BELT.sku)
    assert screen_of(kiosk) == "product"
    assert kiosk.product is not None and kiosk.product.price == "€29.99"
    kiosk.show_product("NO-SUCH-SKU")
    assert screen_of(kiosk) == "notice" and kiosk.notice is not None
    assert kiosk.notice.title == "Sorry, we could not find this product"


# -- bad codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "12345",  # too short for any barcode
        f.gtin(1)[:-1] + str((int(f.gtin(1)[-1]) + 1) % 10),  # wrong check digit
        "hello kiosk",
        "\x00\x1b[2J",
        "9" * 500,
        LOYALTY[:-1] + str((int(LOYALTY[-1]) + 1) % 10),  # a card with a wrong Luhn digit
    ],
)
def test_a_malformed_code_shows_a_friendly_message_then_goes_back(
    kiosk: KioskPresenter, clock: FakeClock, code: str
) -> None:
    assert f.BREAD.ean is not None
    kiosk.scan(f.BREAD.ean)
    kiosk.scan(code)
    assert screen_of(kiosk) == "notice" and kiosk.notice is not None
    assert kiosk.notice.title == "Sorry, we could not read that code"
    assert kiosk.notice.text == "Please scan it again, or ask a member of staff."
    clock.advance(3.9)
    kiosk.tick()
    assert screen_of(kiosk) == "notice"
    clock.advance(0.2)
    kiosk.tick()
    assert screen_of(kiosk) == "product" and kiosk.notice is None
    assert kiosk.product is not None and kiosk.product.sku == f.BREAD.sku


def test_unknown_products_receipts_and_commands_get_their_own_words(
    kiosk: KioskPresenter,
) -> None:
    kiosk.scan(f.UNKNOWN_EAN)
    assert kiosk.notice is not None
    assert kiosk.notice.title == "Sorry, we could not find this product"
    for code in ("RS001-T1-000042", "CMD-PAY-CASH"):
        kiosk.scan(code)
        assert kiosk.notice is not None and kiosk.notice.title == "This screen checks prices"
    kiosk.back()  # OK on the message
    assert screen_of(kiosk) == "idle"


def test_a_scanner_fault_is_a_message_not_a_stop(kiosk: KioskPresenter) -> None:
    kiosk.scanner_failed("The scanner at /dev/ttyUSB0 was disconnected (gone)")
    assert screen_of(kiosk) == "notice" and kiosk.notice is not None
    assert "ask a member of staff" in kiosk.notice.text
    assert "/dev/ttyUSB0" not in texts(kiosk)


# -- customers -----------------------------------------------------------------------------------


def test_a_loyalty_card_greets_by_first_name_with_personal_picks(kiosk: KioskPresenter) -> None:
    kiosk.scan(LOYALTY)
    assert screen_of(kiosk) == "personal"
    view = kiosk.personal
    assert view is not None
    assert (view.greeting, view.title) == ("Hello, Maria!", "Picked for you")
    assert [i.sku for i in view.items] == list(PERSONAL)
    assert view.items[0].price == "€9.99"
    assert kiosk.greeting == "Hello, Maria"
    shown = texts(kiosk)
    for private in PRIVATE:
        assert private not in shown, private


def test_the_receipt_qr_code_identifies_too(kiosk: KioskPresenter) -> None:
    kiosk.scan("email:maria@example.com")
    assert screen_of(kiosk) == "personal" and kiosk.greeting == "Hello, Maria"
    assert "maria@example.com" not in texts(kiosk)


def test_a_product_scanned_with_a_card_on_goes_back_to_the_picks(kiosk: KioskPresenter) -> None:
    kiosk.scan(LOYALTY)
    assert f.TSHIRT.ean is not None
    kiosk.scan(f.TSHIRT.ean)
    assert screen_of(kiosk) == "product" and kiosk.greeting == "Hello, Maria"
    kiosk.back()
    assert screen_of(kiosk) == "personal"
    kiosk.back()  # Done: forget my card
    assert screen_of(kiosk) == "idle" and kiosk.customer is None and kiosk.greeting == ""
    assert "Maria" not in texts(kiosk)


def test_an_unknown_card_without_hq_is_a_friendly_message(
    kiosk: KioskPresenter, store: LocalStore
) -> None:
    before = store.query_one("SELECT COUNT(*) FROM outbox")
    kiosk.scan(STRANGER)
    assert screen_of(kiosk) == "notice" and kiosk.notice is not None
    assert kiosk.notice.title == "We could not find your card here"
    # The kiosk writes nothing: no provisional customer, no op for HQ.
    assert store.query_one("SELECT COUNT(*) FROM outbox")[0] == before[0]  # type: ignore[index]
    assert store.query_one("SELECT COUNT(*) FROM customers")[0] == 1  # type: ignore[index]


class SlowHQ:
    """An HQ lookup that answers when the test says so (on the kiosk's worker thread)."""

    def __init__(self, card: CustomerCard | None) -> None:
        self.card = card
        self.release = threading.Event()
        self.asked: list[str] = []
        self.threads: list[str] = []

    def __call__(self, identifier: str) -> CustomerCard | None:
        self.asked.append(identifier)
        self.threads.append(threading.current_thread().name)
        if not self.release.wait(5):
            raise ServerUnavailable("HQ did not answer")
        return self.card


def test_an_unknown_card_is_asked_of_hq_without_blocking(till: Till, clock: FakeClock) -> None:
    hq = SlowHQ(f.make_card(first_name="Jonas", last_name="Berger"))
    presenter = KioskPresenter(till, kiosk_settings(), lookup=hq, clock=clock)
    try:
        presenter.scan(STRANGER)  # returns at once: HQ has not answered
        assert screen_of(presenter) == "notice" and presenter.notice is not None
        assert presenter.notice.waiting and presenter.notice.title == "One moment"
        clock.advance(1.0)
        presenter.tick()
        assert screen_of(presenter) == "notice"
        hq.release.set()
        for _ in range(100):
            presenter.tick()
            if screen_of(presenter) != "notice":
                break
            threading.Event().wait(0.01)
        assert screen_of(presenter) == "personal" and presenter.greeting == "Hello, Jonas"
        assert "Berger" not in texts(presenter)
        assert hq.asked == [f"loyalty:{STRANGER}"]
        assert hq.threads[0] != threading.current_thread().name
    finally:
        hq.release.set()
        presenter.close()


def test_hq_too_slow_means_not_found_and_a_late_answer_is_dropped(
    till: Till, clock: FakeClock
) -> None:
    hq = SlowHQ(f.make_card(first_name="Jonas"))
    presenter = KioskPresenter(till, kiosk_settings(), lookup=hq, clock=clock)
    try:
        presenter.scan(STRANGER)
        clock.advance(2.1)
        presenter.tick()
        assert presenter.notice is not None
        assert presenter.notice.title == "We could not find your card here"
        hq.release.set()
        threading.Event().wait(0.05)
        presenter.tick()
        assert presenter.customer is None and screen_of(presenter) == "notice"
    finally:
        hq.release.set()
        presenter.close()


def test_hq_not_knowing_the_card_is_not_found(till: Till, clock: FakeClock) -> None:
    hq = SlowHQ(None)
    hq.release.set()
    presenter = KioskPresenter(till, kiosk_settings(), lookup=hq, clock=clock)
    try:
        presenter.scan(STRANGER)
        for _ in range(100):
            presenter.tick()
            if presenter.notice is not None and not presenter.notice.waiting:
                break
            threading.Event().wait(0.01)
        assert presenter.notice is not None
        assert presenter.notice.title == "We could not find your card here"
    finally:
        presenter.close()


# -- inactivity ----------------------------------------------------------------------------------


def test_inactivity_goes_back_to_idle_and_forgets_the_customer(
    kiosk: KioskPresenter, clock: FakeClock
) -> None:
    kiosk.scan(LOYALTY)
    kiosk.open_search()
    kiosk.type_text("nord")
    clock.advance(20)
    kiosk.type_text("k")  # a touch restarts the clock
    clock.advance(20)
    kiosk.tick()
    assert screen_of(kiosk) == "search" and kiosk.search.query == "nordk"
    clock.advance(10.1)
    kiosk.tick()
    assert screen_of(kiosk) == "idle"
    assert kiosk.customer is None and kiosk.greeting == "" and kiosk.search.query == ""
    assert "Maria" not in texts(kiosk)


def test_the_pin_pad_times_out_too(kiosk: KioskPresenter, clock: FakeClock) -> None:
    kiosk.open_pin()
    kiosk.pin_digit("1")
    clock.advance(30)
    kiosk.tick()
    assert screen_of(kiosk) == "idle"
    kiosk.open_pin()
    assert kiosk.pin.masked == ""


# -- search --------------------------------------------------------------------------------------


def test_search_results_as_you_type(kiosk: KioskPresenter) -> None:
    kiosk.open_search()
    assert screen_of(kiosk) == "search"
    assert kiosk.search.hint == "Type a product name, brand or code"
    kiosk.type_text("alpen")
    assert {r.sku for r in kiosk.search.results} == {f.MILK.sku, f.BUTTER.sku}
    assert all(r.note == "" for r in kiosk.search.results)
    kiosk.backspace()
    assert kiosk.search.query == "alpe"
    kiosk.type_text("zzz")
    assert kiosk.search.results == () and kiosk.search.hint == "Nothing found: try another word"
    kiosk.clear_search()
    assert kiosk.search.query == ""
    kiosk.back()
    assert screen_of(kiosk) == "idle"


def test_search_ranks_the_customers_personal_list_first(kiosk: KioskPresenter) -> None:
    kiosk.open_search()
    kiosk.type_text("nordkind")
    anonymous = [r.sku for r in kiosk.search.results]
    kiosk.back()
    kiosk.scan(LOYALTY)
    kiosk.open_search()
    assert kiosk.search.hint.endswith("your picks come first")
    kiosk.type_text("nordkind")
    ranked = kiosk.search.results
    assert [r.sku for r in ranked[:2]] == [f.SOCKS.sku, f.BELT.sku]
    assert [r.note for r in ranked[:2]] == ["Picked for Maria"] * 2
    assert all(r.note == "" for r in ranked[2:])
    assert anonymous[:2] != [f.SOCKS.sku, f.BELT.sku]  # the ranking did it, not the index
    kiosk.show_product(ranked[0].sku)
    assert screen_of(kiosk) == "product"
    kiosk.back()
    assert screen_of(kiosk) == "personal"


def test_rank_by_personal_keeps_the_index_order_for_the_rest() -> None:
    @dataclasses.dataclass
    class Row:
        sku: str

    rows = [Row(s) for s in ("A", "B", "C", "D", "E")]
    ranked = rank_by_personal(rows, ["D", "X", "B", "D"])
    assert [r.sku for r in ranked] == ["D", "B", "A", "C", "E"]
    assert rank_by_personal(rows, []) == rows


# -- the admin PIN -------------------------------------------------------------------------------


def test_a_wrong_pin_stays_with_a_short_message_and_the_right_one_exits(
    kiosk: KioskPresenter,
) -> None:
    exits: list[bool] = []
    kiosk.add_listener(lambda: exits.append(kiosk.exit_requested))
    kiosk.open_pin()
    for digit in "1111":
        kiosk.pin_digit(digit)
    assert kiosk.pin.masked == "* * * *"
    assert kiosk.submit_pin() is False
    assert screen_of(kiosk) == "pin" and kiosk.pin.message == "Wrong PIN"
    assert kiosk.pin.masked == "" and not kiosk.exit_requested
    for digit in PIN:
        kiosk.pin_digit(digit)
    kiosk.backspace()
    kiosk.pin_digit(PIN[-1])
    assert kiosk.submit_pin() is True
    assert kiosk.exit_requested and exits[-1] is True


def test_too_many_wrong_pins_lock_the_pad(kiosk: KioskPresenter, clock: FakeClock) -> None:
    kiosk.open_pin()
    for _ in range(3):
        kiosk.pin_digit("9")
        assert kiosk.submit_pin() is False
    assert kiosk.pin.locked and kiosk.pin.message == "Too many wrong PINs: try again in 60 s"
    for digit in PIN:
        kiosk.pin_digit(digit)
    assert kiosk.pin.masked == ""
    assert kiosk.submit_pin() is False and not kiosk.exit_requested
    clock.advance(29)
    kiosk.tick()  # the pad stays open while someone uses it
    clock.advance(29)
    kiosk.open_pin()
    assert kiosk.pin.message == "Too many wrong PINs: try again in 2 s"
    clock.advance(2)
    kiosk.tick()
    assert not kiosk.pin.locked
    for digit in PIN:
        kiosk.pin_digit(digit)
    assert kiosk.submit_pin() is True


def test_cancel_leaves_the_pin_pad(kiosk: KioskPresenter) -> None:
    kiosk.scan(LOYALTY)
    kiosk.open_pin()
    kiosk.pin_digit("1")
    kiosk.back()
    assert screen_of(kiosk) == "personal"
    kiosk.open_pin()
    assert kiosk.pin.masked == ""


def test_without_a_pin_hash_no_pin_opens_the_kiosk(till: Till, clock: FakeClock) -> None:
    presenter = KioskPresenter(till, kiosk_settings(pin_hash=None), clock=clock)
    presenter.open_pin()
    for digit in PIN:
        presenter.pin_digit(digit)
    assert presenter.submit_pin() is False and not presenter.exit_requested


def test_pin_hashes() -> None:
    stored = hash_pin("1234", iterations=1000)
    scheme, iterations, _, _ = stored.split("$")
    assert (scheme, iterations) == ("pbkdf2_sha256", "1000")
    assert verify_pin("1234", stored) and not verify_pin("1235", stored)
    assert not verify_pin("", stored) and not verify_pin("1234\n", stored)
    assert hash_pin("1234", iterations=1000) != stored  # a new salt every time
    assert parse_pin_hash(hash_pin("00001111")).__getitem__(0) == PIN_ITERATIONS
    for bad in ("123", "12a4", "1" * 13, " 1234"):
        with pytest.raises(InvalidInput, match="4 to 12 digits"):
            check_pin_format(bad)
    for damaged in ("1234", "md5$1$abc$def", "pbkdf2_sha256$x$AAAA$AAAA", stored[:-8]):
        with pytest.raises(InvalidInput, match="pin_hash"):
            parse_pin_hash(damaged)


# -- settings ------------------------------------------------------------------------------------


def test_settings_from_the_tills_toml_kiosk_table_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "omnitill-till.toml"
    toml.write_text(
        f'store_id = "S001"\n[kiosk]\npin_hash = "{hash_pin(PIN, iterations=1000)}"\n'
        "idle_timeout_s = 20\nslide_interval_s = 5\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("OMNITILL_TILL_CONFIG", str(toml))
    monkeypatch.setenv("OMNITILL_KIOSK_SLIDE_INTERVAL_S", "6")
    settings = load_kiosk_settings(idle_timeout_s=None)
    assert settings.pin_hash is not None
    assert verify_pin(PIN, settings.pin_hash.get_secret_value())
    assert (settings.idle_timeout_s, settings.slide_interval_s) == (20.0, 6.0)
    assert load_kiosk_settings(idle_timeout_s=9).idle_timeout_s == 9.0
    assert PIN not in repr(settings)


def test_a_damaged_pin_hash_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNITILL_TILL_CONFIG", "/nonexistent/omnitill-till.toml")
    with pytest.raises(ValidationError, match="pin_hash is not a PIN hash"):
        KioskSettings(pin_hash="1234")
    assert KioskSettings(pin_hash="  ").pin_hash is None


def test_a_feed_page_reaches_the_kiosk_at_the_next_scan(
    kiosk: KioskPresenter, store: LocalStore
) -> None:
    ean = make_gtin("400000000777")
    kiosk.scan(ean)
    assert kiosk.notice is not None and "could not find" in kiosk.notice.title
    feed.apply_page(
        store, [f.product_change("NEW-1", "Fresh Figs 250 g", 399, gtins=[ean])], "c-new"
    )
    kiosk.scan(ean)
    assert kiosk.product is not None and kiosk.product.price == "€3.99"
