"""HQ server settings: defaults that run the demo out of the box, overridable by a TOML file and
``OMNITILL_*`` environment variables (environment wins).

The TOML file is ``$OMNITILL_CONFIG`` or ``omnitill-server.toml`` in the working directory, when
present; keys are the field names below (``db_url = "postgresql+psycopg://..."``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PLACEHOLDER_TOKENS = {"changeme", "change-me", "secret", "admin", "token", "password"}


def _config_file() -> Path:
    return Path(os.environ.get("OMNITILL_CONFIG", "omnitill-server.toml"))


class Settings(BaseSettings):
    """Every setting of the HQ server (documented in docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="OMNITILL_", extra="ignore")

    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses placeholder or missing secrets.",
    )
    data_dir: Path = Field(
        default=Path("data"), description="Where the default SQLite database lives."
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/omnitill.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8700, ge=1, le=65535, description="Port to listen on.")
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for admin routes (OMNITILL_ADMIN_TOKEN)."
    )
    advertise: bool = Field(default=False, description="Announce the server on the LAN (mDNS).")
    public_url: str | None = Field(
        default=None, description="The URL tills and receipts use to reach this server."
    )
    tombstone_retention_days: int = Field(
        default=90, ge=1, description="How long deletes, merges and erasures stay on the feed."
    )
    pull_default_limit: int = Field(default=500, ge=1, le=5000)
    merge_protection_threshold: int = Field(
        default=3,
        ge=2,
        description="An identifier claimed by this many distinct customer records never merges.",
    )
    card_worker_interval_s: float = Field(
        default=0.5, gt=0, description="How often customer cards waiting for refresh are built."
    )
    recs_worker_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often new orders are added to the recommendation counts and the "
        "affected also-bought lists are recomputed and put on the feed.",
    )
    recs_worker_max_share: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="The largest share of time the recommendations worker may spend catching "
        "up: under a burst of sales it falls behind and catches up afterwards, so ingest keeps "
        "the machine.",
    )
    recs_max_defer_s: float = Field(
        default=30.0,
        ge=0,
        description="On SQLite, recommendation counting waits while pushes queue up for the "
        "database's one write lock (ingest first), but never longer than this since its last "
        "run; 0 never waits.",
    )
    recs_lists_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the bestsellers and trending lists of stores with new sales and "
        "the personal lists of customers with new orders or web events are recomputed.",
    )
    segment_write_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Write keys of the Segment-compatible web events API, comma-separated in "
        "the environment; none: the API answers 403.",
    )
    db_pool_size: int = Field(default=10, ge=1)
    mail_enabled: bool = Field(
        default=False,
        description="Send queued mail (receipts by email). Off: mail waits in the queue.",
    )
    mail_from: str = Field(
        default="Omnitill receipts <receipts@omnitill.invalid>",
        description="The From of every mail: 'Name <address>' or an address.",
    )
    smtp_host: str = Field(default="localhost", description="The mail server HQ sends through.")
    smtp_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Default by smtp_security: 25 (none), 587 (starttls), 465 (ssl).",
    )
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        default="starttls",
        description="starttls: upgrade to TLS (refused if the server cannot); ssl: TLS from the "
        "start; none: plain text (a local relay or the simulator only).",
    )
    smtp_username: str | None = Field(default=None, description="SMTP AUTH user; unset: no auth.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP AUTH password.")
    smtp_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one SMTP session.")
    mail_worker_interval_s: float = Field(
        default=1.0, gt=0, description="How often the mail worker looks for mail that is due."
    )
    mail_retry_initial_s: float = Field(
        default=30.0, gt=0, description="Wait after the first failed attempt; doubles each time."
    )
    mail_retry_max_s: float = Field(
        default=3600.0, gt=0, description="Longest wait between two attempts."
    )
    mail_max_attempts: int = Field(
        default=48, ge=1, description="Attempts before a mail is marked failed (kept, not lost)."
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

    @field_validator("segment_write_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        token = self.admin_token.get_secret_value() if self.admin_token else None
        weak = token is not None and (token.lower() in PLACEHOLDER_TOKENS or len(token) < 16)
        if weak and self.environment == "production":
            raise ValueError(
                "OMNITILL_ADMIN_TOKEN is a placeholder or shorter than 16 characters; "
                f"set a real one, e.g. {secrets.token_urlsafe(24)}"
            )
        if self.environment == "production" and token is None:
            raise ValueError("OMNITILL_ADMIN_TOKEN must be set in production")
        for key in self.segment_write_keys:
            text = key.get_secret_value()
            if self.environment == "production" and (
                text.lower() in PLACEHOLDER_TOKENS or len(text) < 16
            ):
                raise ValueError(
                    "OMNITILL_SEGMENT_WRITE_KEYS holds a placeholder or a key shorter than 16 "
                    f"characters; use real ones, e.g. {secrets.token_urlsafe(24)}"
                )
        _name, address = parseaddr(self.mail_from)
        if "@" not in address:
            raise ValueError(
                f"OMNITILL_MAIL_FROM {self.mail_from!r} has no address; "
                "write 'Shop name <receipts@example.com>'"
            )
        if self.environment == "production" and self.mail_enabled and address.endswith(".invalid"):
            raise ValueError(
                "OMNITILL_MAIL_FROM is still the placeholder; set the address your mail is sent "
                "from (its domain needs SPF and DKIM for this server)"
            )
        if self.smtp_password is not None and self.smtp_username is None:
            raise ValueError("OMNITILL_SMTP_PASSWORD is set but OMNITILL_SMTP_USERNAME is not")
        return self

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'omnitill.db').as_posix()}"

    def check_can_listen(self) -> None:
        """Refuse to listen beyond loopback without an admin token."""
        if self.admin_token is None and not is_loopback(self.host):
            raise ValueError(
                f"Refusing to listen on {self.host} without OMNITILL_ADMIN_TOKEN: anyone on the "
                "network could administer HQ. Set OMNITILL_ADMIN_TOKEN or listen on 127.0.0.1."
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """Settings from the TOML file and environment, with explicit overrides (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
