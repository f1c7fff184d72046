"""Finding HQ on the LAN with zeroconf (mDNS/DNS-SD), when no ``server_url`` is configured.

HQ announces itself with ``omnitill server --advertise`` as a ``_omnitill._tcp.local.`` service
(``sync_server/discovery.py``; its TXT record carries the API path and version). The till
browses for that service type, resolves the first instance that answers to an address and a
port, and talks to ``http://<address>:<port>``. IPv4 addresses are preferred (a LAN's HQ is
rarely IPv6-only). If several HQ servers answer, the first wins and the others are logged: a
chain with several should configure ``server_url`` instead.

Multicast may be blocked (containers, some Wi-Fi networks): discovery then finds nothing and
the till works offline, saying so in its sync status, until it is given a URL.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

from edge_agent.hq_client import HQClient

__all__ = ["SERVICE_TYPE", "discover_server", "discovering_client"]

log = logging.getLogger(__name__)

#: Must match ``sync_server.discovery.SERVICE_TYPE`` (the till never imports the server).
SERVICE_TYPE = "_omnitill._tcp.local."


def discover_server(
    timeout_s: float = 3.0, *, interfaces: Sequence[str] | None = None
) -> str | None:
    """``http://host:port`` of an HQ server advertised on the LAN, or None within ``timeout_s``.

    ``interfaces`` limits the search to those local addresses (default: every interface).
    """
    from zeroconf import InterfaceChoice, ServiceBrowser, ServiceStateChange, Zeroconf

    try:
        zc = Zeroconf(interfaces=list(interfaces) if interfaces else InterfaceChoice.All)
    except OSError as exc:
        log.warning("cannot look for HQ on the network (multicast unavailable?): %s", exc)
        return None
    names: queue.Queue[str] = queue.Queue()

    def on_change(
        zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        # Runs on zeroconf's own thread, which must not block: resolve on ours.
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.put(name)

    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    deadline = time.monotonic() + timeout_s
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                name = names.get(timeout=remaining)
            except queue.Empty:
                break
            info = zc.get_service_info(
                SERVICE_TYPE, name, timeout=max(100, int((deadline - time.monotonic()) * 1000))
            )
            url = service_url(info)
            if url is not None:
                log.info("found HQ %r at %s", name.removesuffix("." + SERVICE_TYPE), url)
                return url
            log.debug("HQ service %r did not resolve to an address", name)
        return None
    finally:
        browser.cancel()
        zc.close()


def service_url(info: Any, scheme: str = "http") -> str | None:
    """``scheme://host:port`` of a resolved zeroconf service, IPv4 first; None if unresolved."""
    from zeroconf import IPVersion

    if info is None or not info.port:
        return None
    addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses()
    if not addresses:
        return None
    host = addresses[0]
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{info.port}"


def discovering_client(
    token: str,
    *,
    till_id: str,
    timeout: float = 10.0,
    discovery_timeout_s: float = 3.0,
    discover: Callable[[float], str | None] = discover_server,
) -> Callable[[], HQClient | None]:
    """A client factory for :class:`edge_agent.sync_worker.SyncWorker` that finds HQ itself.

    Each call looks for HQ and returns a client, or None when nobody answered (the worker asks
    again after its backoff, and again when a found server stops answering).
    """

    def factory() -> HQClient | None:
        url = discover(discovery_timeout_s)
        if url is None:
            log.info("no HQ server advertised on the network")
            return None
        return HQClient(url, token, till_id=till_id, timeout=timeout)

    return factory
