"""Base classes and field types shared by every wire model.

Every model that crosses the network is a pydantic v2 model that:

- forbids unknown fields (a typo in a till's payload is an error, not silently dropped data);
- is frozen (a sale, once built, does not change under its own feet);
- stores timestamps as timezone-aware UTC (naive datetimes are refused, other offsets converted);
- carries money as integer minor units (``MinorUnits``), never floats.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("timestamp must carry a time zone (UTC, e.g. 2026-11-23T09:15:00Z)")
    return value.astimezone(UTC)


#: A timezone-aware timestamp, normalized to UTC.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

#: The largest amount we accept: ten trillion major units of a two-decimal currency, far beyond
#: any sale and well inside a 64-bit database integer.
MAX_MINOR = 10**15

#: An amount of money in integer minor units (cents, pence, yen). Floats and bools are refused.
MinorUnits = Annotated[StrictInt, Field(ge=-MAX_MINOR, le=MAX_MINOR)]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (a garbled scan or a NUL byte)")
    return value


#: Text that lands in database columns as it is: no control characters.
PlainText = Annotated[str, AfterValidator(_no_control_characters)]

#: An ISO 4217 currency code.
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]

#: A store code assigned at HQ ("S001").
StoreId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]

#: A till code assigned at enrolment ("S001-T1").
TillId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]

#: A stock-keeping unit, the catalogue's key. The length limits come before the control-character
#: check so pydantic enforces them in its core (after a Python validator they would run as two
#: more Python calls per SKU: a quarter of the time HQ spends parsing a push).
Sku = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_control_characters)]


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base of every model that crosses the network."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
