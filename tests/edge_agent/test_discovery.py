"""Finding HQ with zeroconf, on the loopback interface (skipped, with the reason, where multicast
does not work)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from edge_agent.discovery import SERVICE_TYPE, discover_server, discovering_client
from sync_server.discovery import SERVICE_TYPE as ADVERTISED_TYPE
from tests.support.server import free_port
from tests.support.till import multicast_loopback_problem

LOOPBACK = ["127.0.0.1"]


@pytest.fixture(scope="module")
def multicast() -> None:
    problem = multicast_loopback_problem()
    if problem is not None:
        pytest.skip(f"zeroconf needs multicast: {problem}")


@pytest.fixture
def advertised(multicast: None) -> Iterator[int]:
    """An HQ service announced on 127.0.0.1, as ``omnitill server --advertise`` does."""
    from zeroconf import ServiceInfo, Zeroconf

    port = free_port()
    zc = Zeroconf(interfaces=LOOPBACK)
    info = ServiceInfo(
        ADVERTISED_TYPE,
        f"Omnitill HQ test {port}.{ADVERTISED_TYPE}",
        addresses=[socket.inet_aton("127.0.0.1")],
        port=port,
        properties={"path": "/api/v1", "version": "test"},
    )
    zc.register_service(info)
    try:
        yield port
    finally:
        zc.unregister_service(info)
        zc.close()


def test_the_till_looks_for_the_service_hq_advertises() -> None:
    assert SERVICE_TYPE == ADVERTISED_TYPE


def test_an_advertised_hq_is_found(advertised: int) -> None:
    started = time.monotonic()
    url = discover_server(timeout_s=3.0, interfaces=LOOPBACK)
    assert url == f"http://127.0.0.1:{advertised}"
    assert time.monotonic() - started < 3.0

    factory = discovering_client("otl_x", till_id="S001-T1", discover=lambda t: url)
    client = factory()
    assert client is not None
    with client:
        assert (client.base_url, client.till_id) == (url, "S001-T1")


def test_nobody_advertising_is_none_after_the_timeout(multicast: None) -> None:
    started = time.monotonic()
    assert discover_server(timeout_s=0.3, interfaces=LOOPBACK) is None
    assert 0.3 <= time.monotonic() - started < 2.0
    assert discovering_client("otl_x", till_id="S001-T1", discover=lambda t: None)() is None
