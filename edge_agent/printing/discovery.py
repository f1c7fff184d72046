"""Network receipt printers found with zeroconf (mDNS/DNS-SD).

Network printers that take raw jobs on port 9100 announce themselves as
``_pdl-datastream._tcp.local.`` services (Epson TM-i and TM-m models, Star's LAN interfaces and
most print servers do; ``omnitill sim printer --advertise`` does too). :func:`discover_printers`
browses for that type for a few seconds and returns every instance that resolves, as the
``tcp://host:port`` URL to put in the till's ``printer`` setting. IPv4 addresses come first;
the list is sorted by service name, so the same network gives the same list.

Discovery only suggests URLs: the till never switches printers on its own, because two tills
printing to each other's printer is worse than one printer that is off.

Multicast may be blocked (containers, some Wi-Fi networks): the list is then empty.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.discovery import service_url

__all__ = ["SERVICE_TYPE", "FoundPrinter", "discover_printer_services", "discover_printers"]

log = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_pdl-datastream._tcp.local."


@dataclass(frozen=True, slots=True)
class FoundPrinter:
    """A printer that answered: its service name and the URL to print to."""

    name: str
    url: str


def discover_printers(
    timeout_s: float = 3.0, *, interfaces: Sequence[str] | None = None
) -> list[str]:
    """``tcp://host:port`` of every raw-port printer advertised on the LAN within ``timeout_s``."""
    return [found.url for found in discover_printer_services(timeout_s, interfaces=interfaces)]


def discover_printer_services(
    timeout_s: float = 3.0, *, interfaces: Sequence[str] | None = None
) -> list[FoundPrinter]:
    """Like :func:`discover_printers`, with each printer's advertised name."""
    from zeroconf import InterfaceChoice, ServiceBrowser, ServiceStateChange, Zeroconf

    try:
        zc = Zeroconf(interfaces=list(interfaces) if interfaces else InterfaceChoice.All)
    except OSError as exc:
        log.warning("cannot look for printers on the network (multicast unavailable?): %s", exc)
        return []
    names: queue.Queue[str] = queue.Queue()

    def on_change(
        zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        # Runs on zeroconf's own thread, which must not block: resolve on ours.
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.put(name)

    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                name = names.get(timeout=remaining)
            except queue.Empty:
                break
            if name in found:
                continue
            info = zc.get_service_info(
                SERVICE_TYPE, name, timeout=max(100, int((deadline - time.monotonic()) * 1000))
            )
            url = service_url(info, "tcp")
            if url is None:
                log.debug("printer service %r did not resolve to an address", name)
                continue
            found[name] = url
            log.info("found printer %r at %s", _short(name), url)
    finally:
        browser.cancel()
        zc.close()
    return [FoundPrinter(name=_short(name), url=found[name]) for name in sorted(found)]


def _short(name: str) -> str:
    return name.removesuffix("." + SERVICE_TYPE)
