"""Network printers found with zeroconf on the loopback interface (skipped, with the reason,
where multicast does not work)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from edge_agent.printing.discovery import SERVICE_TYPE, discover_printer_services, discover_printers
from tests.edge_agent.printing.support import free_port
from tests.support.till import multicast_loopback_problem

LOOPBACK = ["127.0.0.1"]


@pytest.fixture(scope="module")
def multicast() -> None:
    problem = multicast_loopback_problem()
    if problem is not None:
        pytest.skip(f"zeroconf needs multicast: {problem}")


@pytest.fixture
def advertised(multicast: None) -> Iterator[list[int]]:
    """Two raw-port printers announced on 127.0.0.1."""
    from zeroconf import ServiceInfo, Zeroconf

    zc = Zeroconf(interfaces=LOOPBACK)
    ports = [free_port(), free_port()]
    infos = [
        ServiceInfo(
            SERVICE_TYPE,
            f"Test printer {name} {port}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton("127.0.0.1")],
            port=port,
            properties={"ty": "Omnitill test"},
        )
        for name, port in zip("AB", ports, strict=True)
    ]
    # Registering probes the network for a second or so: both at once.
    registering = [threading.Thread(target=zc.register_service, args=(i,)) for i in infos]
    for thread in registering:
        thread.start()
    for thread in registering:
        thread.join()
    try:
        yield ports
    finally:
        for info in infos:
            zc.unregister_service(info)
        zc.close()


def test_the_printer_simulator_advertises_the_type_we_browse() -> None:
    simulator = pytest.importorskip("hardware_sim.printer")
    assert simulator.SERVICE_TYPE == SERVICE_TYPE == "_pdl-datastream._tcp.local."


def test_advertised_printers_are_found_as_tcp_urls(advertised: list[int]) -> None:
    found = discover_printer_services(timeout_s=1.5, interfaces=LOOPBACK)
    assert [(p.name, p.url) for p in found] == [
        (f"Test printer {name} {port}", f"tcp://127.0.0.1:{port}")
        for name, port in zip("AB", advertised, strict=True)
    ]


def test_nothing_advertised_finds_nothing(multicast: None) -> None:
    assert discover_printers(timeout_s=0.5, interfaces=LOOPBACK) == []
