"""A real till on a temporary local store, for presenter and widget tests.

Qt must run offscreen here, and that is decided when the first QApplication is made: set it at
import, before pytest-qt creates one.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.keyboard_wedge import ManualClock
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import NOW, maria, till_settings


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    changes = [*f.grocery_changes(), f.customer_change(maria())]
    return f.build_template(tmp_path_factory.mktemp("grocery"), changes)


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


@pytest.fixture
def till(store: LocalStore, tmp_path: Path) -> Iterator[Till]:
    with Till(
        settings=till_settings(tmp_path), store=store, client=None, clock=lambda: NOW
    ) as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    """The wedge detector's clock: keys are timed exactly, and no real time passes."""
    return ManualClock()
