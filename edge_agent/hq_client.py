"""The till's HTTP client for HQ: push the outbox, pull the change feed, look customers up.

One :class:`httpx.Client` per till keeps its connection to HQ alive between requests; responses
are gzip-decoded by httpx (it sends ``Accept-Encoding: gzip``). Every httpx exception and every
error status is turned into the one error hierarchy (``shared.errors``) here, carrying HQ's own
``detail`` message, so nothing above this module knows about HTTP:

========================================  ===========================================
what happened                             raised
========================================  ===========================================
refused connection, timeout, 5xx, 507,    :class:`~shared.errors.ServerUnavailable`
408/429, an answer that is not ours       (retry later with backoff)
401 / 403                                 :class:`~shared.errors.AuthError` /
                                          :class:`~shared.errors.PermissionDenied`
409 on push (a seq gap)                   :class:`~shared.errors.SequenceGap` with the
                                          seq HQ expects, when it says so
409 on pull                               :class:`~shared.errors.CursorExpired`
413 / 422 / 400                           :class:`~shared.errors.BatchTooLarge` /
                                          :class:`~shared.errors.InvalidInput`
404 on push or pull                       :class:`~shared.errors.NotFound` (the URL is
                                          not an Omnitill HQ)
========================================  ===========================================

A lookup that finds nobody (404) answers ``None``.

A response that arrives after the request timed out is lost to the till, but not to HQ: a push
may have been stored although the till saw a timeout. That is safe, because HQ answers a retried
op ``duplicate`` (see ``shared.protocol``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import httpx
from pydantic import ValidationError

from edge_agent.outbox import PendingOp
from shared.customer import CustomerCard
from shared.errors import (
    AuthError,
    BatchTooLarge,
    Conflict,
    CursorExpired,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProtocolError,
    SequenceGap,
    ServerUnavailable,
)
from shared.protocol import DEFAULT_PULL_LIMIT, PullPage, PushResponse

__all__ = ["BACKLOG_HEADER", "HQClient"]

log = logging.getLogger(__name__)

BACKLOG_HEADER = "X-Omnitill-Backlog"
PUSH_PATH = "/api/v1/sync/push"
PULL_PATH = "/api/v1/sync/pull"
LOOKUP_PATH = "/api/v1/customers/lookup"

#: HQ's words for a gap: "Till S001-T1 sent seq 7 but HQ expects 5: resend from the missing op".
_GAP = re.compile(r"sent seq (?P<found>\d+) but HQ expects (?P<expected>\d+)")
M = TypeVar("M", PushResponse, PullPage, CustomerCard)

#: Statuses that mean "not now": retry later.
_RETRY_LATER = frozenset({408, 425, 429})


class HQClient:
    """A till's connection to HQ. Thread-safe (httpx.Client is); close it when done."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        till_id: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``till_id`` is needed to push (HQ checks it against the token's till)."""
        self.base_url = base_url.rstrip("/")
        self.till_id = till_id
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "omnitill-till"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HQClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HQClient({self.base_url!r}, till_id={self.till_id!r})"

    # -- the three calls -----------------------------------------------------------------------

    def push(self, ops: Sequence[PendingOp], *, backlog: int) -> PushResponse:
        """Send a batch of outbox ops; HQ's verdicts come back one per op (fewer after a gap)."""
        if self.till_id is None:
            raise ValueError("HQClient needs till_id=... to push (HQ checks it against the token)")
        body = {"till_id": self.till_id, "ops": [op.to_wire() for op in ops]}
        response = self._send(
            "POST", PUSH_PATH, json=body, headers={BACKLOG_HEADER: str(max(0, backlog))}
        )
        if response.status_code == 409:
            raise _conflict_on_push(_detail(response))
        self._check(response, "push")
        return _parse(PushResponse, response, "push")

    def pull(self, cursor: str | None, *, limit: int = DEFAULT_PULL_LIMIT) -> PullPage:
        """The next page of HQ's change feed after ``cursor`` (``None``: from the start)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = self._send("GET", PULL_PATH, params=params)
        if response.status_code == 409:
            raise CursorExpired(_detail(response))
        self._check(response, "pull")
        return _parse(PullPage, response, "pull")

    def lookup(self, identifier: str, timeout: float) -> CustomerCard | None:
        """HQ's card for ``identifier`` (``kind:value`` or what was typed); None if unknown.

        ``timeout`` bounds the whole exchange, not just each socket operation: the cashier is
        waiting.
        """
        response = self._send(
            "GET",
            LOOKUP_PATH,
            params={"identifier": identifier},
            timeout=httpx.Timeout(timeout),
        )
        if response.status_code == 404:
            return None
        self._check(response, "customer lookup")
        return _parse(CustomerCard, response, "customer lookup")

    # -- plumbing ------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnavailable(
                f"HQ at {self.base_url} did not answer in time ({type(exc).__name__}); will retry"
            ) from exc
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"Cannot reach HQ at {self.base_url}: {exc or type(exc).__name__}; will retry"
            ) from exc
        except httpx.InvalidURL as exc:
            raise ServerUnavailable(f"The HQ URL {self.base_url!r} is not valid: {exc}") from exc

    def _check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        _raise_for(status, _detail(response), what=what, url=self.base_url)


def _raise_for(status: int, detail: str, *, what: str, url: str) -> NoReturn:
    if status >= 500 or status in _RETRY_LATER:
        raise ServerUnavailable(f"HQ could not take the {what} now (HTTP {status}): {detail}")
    if status == 401:
        raise AuthError(f"HQ refused this till's token: {detail}")
    if status == 403:
        raise PermissionDenied(f"HQ does not allow this {what}: {detail}")
    if status == 413:
        raise BatchTooLarge(f"HQ refused the {what} as too large: {detail}")
    if status in (404, 405, 410):
        raise NotFound(
            f"{url} answered HTTP {status} to the {what}: is server_url the address of an "
            f"Omnitill HQ? ({detail})"
        )
    if status == 409:
        raise Conflict(f"HQ refused the {what}: {detail}")
    if status in (400, 422):
        raise InvalidInput(f"HQ refused the {what} as invalid: {detail}")
    raise ProtocolError(f"HQ answered the {what} with HTTP {status}: {detail}")


def _conflict_on_push(detail: str) -> Conflict:
    match = _GAP.search(detail)
    if match is None:
        # A 409 that is not a gap (two tills' ops clashing at HQ): retry, and show it.
        return Conflict(f"HQ refused the push: {detail}")
    return SequenceGap(
        f"HQ refused the push: {detail}",
        expected=int(match["expected"]),
        found=int(match["found"]),
    )


def _detail(response: httpx.Response) -> str:
    """HQ's ``detail`` message, or the start of whatever else answered."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip().replace("\n", " ")
        return text[:200] or response.reason_phrase or f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return json.dumps(body)[:200]


def _parse(model: type[M], response: httpx.Response, what: str) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # Something that is not HQ (a captive portal, a proxy's error page) answered 200. For
        # a push the ops may or may not be stored: keep them and retry, never drop them.
        log.warning("unreadable %s answer from HQ: %s", what, exc)
        raise ServerUnavailable(
            f"HQ's answer to the {what} is not an Omnitill {model.__name__} "
            f"({exc.error_count()} problems); will retry"
        ) from exc
