"""What a scan costs the screen: the basket, the message, the totals and the suggestions are
repainted in place, and the window is not laid out again unless some text needs more room
(``TextRow`` and ``SuggestionButton`` in ``edge_agent.ui.panels``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot

from edge_agent.till import Till
from edge_agent.ui.keyboard_wedge import ManualClock, wedge_scan
from edge_agent.ui.main_window import BasketModel, TillWindow
from edge_agent.ui.panels import SuggestionButton, TextRow
from edge_agent.ui.presenters import BasketRow, TillPresenter
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import open_window, table_text

LONG = " ".join(["Often bought with Nordkind Organic Cotton T-Shirt Navy"] * 4)


class LayoutSpy(QObject):
    """Counts the layout requests and paints each watched widget receives."""

    def __init__(self, watched: dict[str, QWidget]) -> None:
        super().__init__()
        self._names = {id(widget): name for name, widget in watched.items()}
        self.layouts: Counter[str] = Counter()
        self.paints: Counter[str] = Counter()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        name = self._names.get(id(watched))
        if name is not None:
            if event.type() == QEvent.Type.LayoutRequest:
                self.layouts[name] += 1
            elif event.type() == QEvent.Type.Paint:
                self.paints[name] += 1
        return False


@pytest.fixture
def window(qtbot: QtBot, till: Till, clock: ManualClock) -> Iterator[TillWindow]:
    shown = open_window(qtbot, TillPresenter(till), clock)
    yield shown
    shown.close()


def settle(qtbot: QtBot) -> None:
    """Let every posted layout request and paint run."""
    for _ in range(3):
        QApplication.processEvents()
        qtbot.wait(20)


def test_a_scan_repaints_the_basket_and_suggestions_without_laying_the_window_out(
    qtbot: QtBot, window: TillWindow, clock: ManualClock
) -> None:
    assert f.MILK.ean and f.TSHIRT.ean and f.JEANS.ean
    wedge_scan(f.MILK.ean, clock=clock)
    wedge_scan(f.TSHIRT.ean, clock=clock)
    settle(qtbot)
    before = [b.accessibleName() for b in window.suggestion_buttons]
    assert len(before) == 3
    central = window.centralWidget()
    assert central is not None
    watched: dict[str, QWidget] = {
        "window": window,
        "central": central,
        "pages": window.pages,
        "sale panel": window.sale_panel,
        "suggestions": window.sale_panel.suggestion_box,
        "basket": window.basket.viewport(),
    }
    spy = LayoutSpy(watched)
    app = QApplication.instance()
    assert app is not None
    app.installEventFilter(spy)
    try:
        wedge_scan(f.JEANS.ean, clock=clock)
        settle(qtbot)
    finally:
        app.removeEventFilter(spy)
    after = [b.accessibleName() for b in window.suggestion_buttons]
    assert len(after) == 3 and after != before  # new suggestions, as many as before
    assert table_text(window)[-1][:2] == ["1", f.JEANS.name]
    assert window.message.text().startswith(f"Added 1 x {f.JEANS.name}")
    assert window.total.text() == "Total €81.27"
    assert spy.paints["basket"] >= 1 and spy.paints["suggestions"] >= 1
    assert sum(spy.layouts.values()) == 0, spy.layouts
    for widget in window.suggestion_buttons:
        for label in (widget.title, widget.reason):
            assert label.height() >= label.heightForWidth(label.width())  # nothing cut off


def test_a_suggestion_button_grows_for_a_long_reason_and_shrinks_back(qtbot: QtBot) -> None:
    widget = SuggestionButton()
    qtbot.addWidget(widget)
    widget.resize(320, 10)
    widget.show()
    widget.show_suggestion("Alpenhof Butter 250 g", "€2.49", "Often bought with milk")
    short = widget.height()
    assert short == SuggestionButton.LINES * widget.reason.fontMetrics().height() + 8
    widget.show_suggestion("Alpenhof Butter 250 g", "€2.49", LONG)
    assert widget.height() > short
    assert widget.reason.height() >= widget.reason.heightForWidth(widget.reason.width())
    assert widget.reason.geometry().bottom() < widget.height()
    assert widget.accessibleName() == f"Add Alpenhof Butter 250 g €2.49: {LONG}"
    widget.show_suggestion("Alpenhof Butter 250 g", "€2.49", "Often bought with milk")
    assert widget.height() == short


def test_a_text_row_fits_its_text_and_keeps_a_total_whole(qtbot: QtBot) -> None:
    detail, total = QLabel(), QLabel()
    detail.setWordWrap(True)
    row = TextRow((detail, 1), (total, 0))
    qtbot.addWidget(row)
    row.resize(400, 10)
    row.show()
    row.set_text(total, "Total €1,234.56")
    row.set_text(detail, "3 lines")
    one_line = row.height()
    assert total.width() == total.sizeHint().width()
    assert detail.width() == 400 - 6 - total.width()
    row.set_text(detail, LONG)
    assert row.height() > one_line
    assert detail.height() == row.height() >= detail.heightForWidth(detail.width())
    row.set_text(detail, "3 lines")
    assert row.height() == one_line
    row.resize(800, row.height())
    assert detail.width() == 800 - 6 - total.width()


class Rows:
    """Stands in for the presenter: the basket model reads only its ``rows``."""

    def __init__(self) -> None:
        self.rows: tuple[BasketRow, ...] = ()


def line(line_no: int, quantity: str = "1", total: str = "€1.29") -> BasketRow:
    return BasketRow(line_no, f"SKU{line_no}", quantity, f"Item {line_no}", "€1.29", total)


def test_the_basket_model_follows_appends_changes_removals_and_a_new_order(
    qtbot: QtBot,
) -> None:
    rows = Rows()
    model = BasketModel(rows)  # type: ignore[arg-type]  # only .rows is read
    seen: list[str] = []
    model.modelReset.connect(lambda: seen.append("reset"))
    model.rowsInserted.connect(lambda _p, first, last: seen.append(f"insert {first}-{last}"))
    model.rowsRemoved.connect(lambda _p, first, last: seen.append(f"remove {first}-{last}"))
    model.dataChanged.connect(lambda a, b, _r=(): seen.append(f"change {a.row()}-{b.row()}"))

    def cells() -> list[list[str]]:
        return [
            [str(model.data(model.index(r, c))) for c in range(model.columnCount())]
            for r in range(model.rowCount())
        ]

    rows.rows = (line(1), line(2), line(3))
    assert model.refresh() is True
    rows.rows = (line(1), line(2, "2", "€2.58"), line(3))
    assert model.refresh() is False
    rows.rows = (line(2, "2", "€2.58"), line(3))
    model.refresh()
    assert seen == ["insert 0-0", "insert 1-1", "insert 2-2", "change 1-1", "remove 0-0"]
    assert cells() == [
        ["2", "Item 2", "€1.29", "€2.58", ""],
        ["1", "Item 3", "€1.29", "€1.29", ""],
    ]
    seen.clear()
    rows.rows = (line(3), line(2, "2", "€2.58"))  # another order (a resumed sale): start over
    model.refresh()
    assert seen == ["reset"]
    assert [r[1] for r in cells()] == ["Item 3", "Item 2"]
    assert model.row_at(1) == line(2, "2", "€2.58") and model.row_at(2) is None
    assert not model.flags(model.index(0, 1)) & Qt.ItemFlag.ItemIsEditable
