"""Till settings: defaults that run the demo till out of the box, overridable by a TOML file and
``OMNITILL_TILL_*`` environment variables (environment wins; command-line options win over both).

The TOML file is ``$OMNITILL_TILL_CONFIG`` or ``omnitill-till.toml`` in the working directory,
when present; keys are the field names below (``server_url = "http://hq.internal:8700"``).

Without ``server_url`` the till looks for an HQ server advertised on the LAN with zeroconf
(``omnitill server --advertise``). Without ``token`` it still sells, but nothing reaches HQ
until one is set (``omnitill admin enroll-till`` prints it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from shared.barcodes import LoyaltyFormat
from shared.protocol import DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT
from shared.tax import TaxMode

__all__ = ["TillSettings", "load_till_settings"]

_CODE = r"^[A-Za-z0-9_.-]+$"


def _config_file() -> Path:
    return Path(os.environ.get("OMNITILL_TILL_CONFIG", "omnitill-till.toml"))


class TillSettings(BaseSettings):
    """Every setting of a till (documented in docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="OMNITILL_TILL_", extra="ignore")

    server_url: str | None = Field(
        default=None,
        description="HQ server base URL (http://host:port); unset: find it with zeroconf.",
    )
    token: SecretStr | None = Field(
        default=None, description="This till's token from `omnitill admin enroll-till`."
    )
    receipt_base_url: str | None = Field(
        default=None,
        description="Base of the digital-receipt links printed as QR codes "
        "(<base>/r/<sale id>, served by HQ); unset: server_url.",
    )
    db_path: Path = Field(default=Path("till.db"), description="The till's local SQLite file.")
    store_id: str = Field(
        default="S001", min_length=1, max_length=64, pattern=_CODE, description="Store code."
    )
    till_id: str = Field(
        default="S001-T1",
        min_length=1,
        max_length=64,
        pattern=_CODE,
        description="Till code, as enrolled at HQ.",
    )
    cashier_id: str = Field(
        default="cashier", min_length=1, max_length=64, description="Who is selling."
    )
    scanner: str | None = Field(
        default=None,
        description="Barcode scanner URL (serial:///dev/ttyUSB0?baudrate=9600); unset: none.",
    )
    printer: str = Field(
        default="none",
        description="Receipt printer URL: tcp://host:9100, serial:///dev/ttyS0?baudrate=38400, "
        "usb://VID:PID, file:///dev/usb/lp0 or none; add ?profile=58mm|80mm-42|80mm-48.",
    )
    push_interval_s: float = Field(
        default=5.0, gt=0, description="How often the outbox is pushed (and after every sale)."
    )
    pull_interval_s: float = Field(
        default=15.0, gt=0, description="How often HQ's change feed is pulled."
    )
    pull_limit: int = Field(
        default=DEFAULT_PULL_LIMIT,
        ge=1,
        le=MAX_PULL_LIMIT,
        description="Changes per pull page (each page is applied in one local transaction).",
    )
    lookup_timeout_s: float = Field(
        default=0.3,
        gt=0,
        description="How long a customer lookup at HQ may take before the till goes on alone.",
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of push and pull requests."
    )
    default_region: str = Field(
        default="DE",
        pattern=r"^[A-Za-z]{2}$",
        description="Country of phone numbers typed without a country code.",
    )
    loyalty_prefix: str = Field(
        default="9900", pattern=r"^[0-9]+$", description="First digits of loyalty card numbers."
    )
    loyalty_length: int = Field(
        default=13, ge=2, le=19, description="Digits of a loyalty card number."
    )
    suggestions: int = Field(
        default=3, ge=0, le=20, description="How many suggestions the cashier sees."
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    tax_mode: TaxMode = Field(
        default="inclusive", description="inclusive: prices include tax; exclusive: tax added."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"server_url {value!r} must start with http:// or https:// "
                "(for example http://hq.internal:8700)"
            )
        return url

    @field_validator("default_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _check_loyalty_format(self) -> TillSettings:
        # Refused at start-up rather than at the first card scanned.
        try:
            LoyaltyFormat(prefix=self.loyalty_prefix, length=self.loyalty_length)
        except ValueError as exc:
            raise ValueError(f"loyalty_prefix and loyalty_length do not fit: {exc}") from exc
        return self

    @property
    def loyalty_format(self) -> LoyaltyFormat:
        """The chain's loyalty card numbers, from ``loyalty_prefix`` and ``loyalty_length``."""
        return LoyaltyFormat(prefix=self.loyalty_prefix, length=self.loyalty_length)


def load_till_settings(**overrides: Any) -> TillSettings:
    """Settings from the TOML file and environment, with explicit overrides (CLI flags) on top."""
    return TillSettings(**{k: v for k, v in overrides.items() if v is not None})
