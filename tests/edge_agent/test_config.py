"""Till settings: every one documented; receipt links default to HQ's address."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import TillSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.mark.parametrize("name", sorted(TillSettings.model_fields))
def test_every_till_setting_is_documented(name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"| `{name}` | `OMNITILL_TILL_{name.upper()}` |" in text
