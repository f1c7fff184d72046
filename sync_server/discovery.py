"""Announce the HQ server on the LAN with zeroconf (mDNS/DNS-SD), so tills find it with no URL.

Service type ``_omnitill._tcp.local.``; TXT records carry the API path and version.
"""

from __future__ import annotations

import logging
import socket

from omnitill import __version__

log = logging.getLogger(__name__)

SERVICE_TYPE = "_omnitill._tcp.local."


def _lan_addresses(host: str) -> list[bytes]:
    if host not in ("0.0.0.0", "::", ""):
        return [socket.inet_aton(socket.gethostbyname(host))]
    from zeroconf import IPVersion
    from zeroconf._utils.net import get_all_addresses

    del IPVersion
    return [socket.inet_aton(a) for a in get_all_addresses() if not a.startswith("127.")] or [
        socket.inet_aton("127.0.0.1")
    ]


class Advertiser:
    def __init__(self, *, port: int, host: str, name: str | None = None) -> None:
        self.port = port
        self.host = host
        self.name = name or f"Omnitill HQ on {socket.gethostname()}"
        self._zc: object | None = None
        self._info: object | None = None

    def start(self) -> None:
        from zeroconf import ServiceInfo, Zeroconf

        info = ServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            addresses=_lan_addresses(self.host),
            port=self.port,
            properties={"path": "/api/v1", "version": __version__},
        )
        zc = Zeroconf()
        zc.register_service(info)
        self._zc, self._info = zc, info
        log.info("advertising %s on port %d", SERVICE_TYPE, self.port)

    def stop(self) -> None:
        from zeroconf import ServiceInfo, Zeroconf

        if isinstance(self._zc, Zeroconf) and isinstance(self._info, ServiceInfo):
            self._zc.unregister_service(self._info)
            self._zc.close()
        self._zc = self._info = None
