"""Settings: every one documented, placeholders refused, loopback rule enforced."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sync_server.config import Settings, is_loopback

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"| `{name}` | `OMNITILL_{name.upper()}` |" in text


def test_environment_and_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "hq.toml"
    config.write_text('port = 9123\ndb_url = "sqlite:///x.db"\n', encoding="utf-8")
    monkeypatch.setenv("OMNITILL_CONFIG", str(config))
    monkeypatch.setenv("OMNITILL_PORT", "9200")
    settings = Settings()
    assert settings.port == 9200  # environment beats the file
    assert settings.database_url == "sqlite:///x.db"


@pytest.mark.parametrize("token", [None, "changeme", "short"])
def test_production_refuses_placeholder_tokens(token: str | None) -> None:
    with pytest.raises(ValidationError, match="OMNITILL_ADMIN_TOKEN"):
        Settings(environment="production", admin_token=token)


def test_production_accepts_a_real_token() -> None:
    Settings(environment="production", admin_token="k3y-" + "x" * 30)


def test_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    with pytest.raises(ValueError, match="without OMNITILL_ADMIN_TOKEN"):
        Settings(host="0.0.0.0").check_can_listen()
    Settings(host="127.0.0.1").check_can_listen()
    Settings(host="0.0.0.0", admin_token="y" * 20).check_can_listen()
    assert is_loopback("localhost") and is_loopback("::1") and not is_loopback("10.0.0.1")
