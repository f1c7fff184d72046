"""The SMS-gateway sink: the JSON API, E.164 validation, segments, files, faults."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware_sim.sms import SmsSink, sms_segments, validate_sms
from tests.support.server import ROOT, free_port

SIM = [sys.executable, "-c", "from hardware_sim.cli import sim; sim()"]


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmsSink]:
    with SmsSink(out_dir=tmp_path / "sms") as running:
        yield running


def test_a_message_is_accepted_and_kept(sink: SmsSink) -> None:
    response = httpx.post(
        f"{sink.url}/messages",
        json={"to": "+4915112345678", "text": "Your receipt: https://hq/r/1", "from": "Omnitill"},
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["to"] == "+4915112345678"
    assert body["segments"] == 1
    [kept] = sink.messages()
    assert kept["id"] == body["id"]
    assert kept["text"] == "Your receipt: https://hq/r/1"
    assert kept["from"] == "Omnitill"
    assert sink.paths()[0].name == f"000001-{body['id']}.json"
    listed = httpx.get(f"{sink.url}/messages").json()
    assert [m["id"] for m in listed] == [body["id"]]
    assert httpx.get(f"{sink.url}/messages/{body['id']}").json()["to"] == "+4915112345678"
    assert httpx.get(f"{sink.url}/messages/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"to": "015112345678", "text": "x"}, 422, "E.164"),
        ({"to": "+49 151 12345678", "text": "x"}, 422, "write '+49 151 12345678' in E.164"),
        ({"to": "+49123", "text": "x"}, 422, "not a valid phone number"),
        ({"to": "+4915112345678", "text": ""}, 422, "text"),
        ({"to": "+4915112345678", "text": "x" * 1601}, 422, "1601 characters"),
        ({"to": "+4915112345678", "text": "x", "from": "A very long sender"}, 422, "from"),
        ({"to": "+4915112345678", "text": "x", "priority": 1}, 422, "unknown field(s) priority"),
        (["not", "an", "object"], 422, "JSON object"),
    ],
)
def test_bad_messages_are_refused_with_the_reason(
    sink: SmsSink, body: object, status: int, says: str
) -> None:
    response = httpx.post(f"{sink.url}/messages", json=body)
    assert response.status_code == status
    assert says in response.json()["error"]
    assert sink.messages() == []


def test_not_json_is_a_400(sink: SmsSink) -> None:
    response = httpx.post(f"{sink.url}/messages", content=b"to=+49151")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


def test_token_and_failing_gateway(tmp_path: Path) -> None:
    with SmsSink(out_dir=tmp_path, token="t0k", failing=True) as sink:
        msg = {"to": "+447400123456", "text": "hello"}
        assert httpx.post(f"{sink.url}/messages", json=msg).status_code == 401
        auth = {"Authorization": "Bearer t0k"}
        assert httpx.post(f"{sink.url}/messages", json=msg, headers=auth).status_code == 503
        sink.failing = False
        assert httpx.post(f"{sink.url}/messages", json=msg, headers=auth).status_code == 202
        assert len(sink.messages()) == 1


def test_restart_on_the_same_port_keeps_numbering(tmp_path: Path) -> None:
    sink = SmsSink(out_dir=tmp_path).start()
    port = sink.port
    httpx.post(f"{sink.url}/messages", json={"to": "+447400123456", "text": "one"})
    sink.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{sink.url}/messages", json={"to": "+447400123456", "text": "lost"})
    sink.start()
    try:
        assert sink.port == port
        httpx.post(f"{sink.url}/messages", json={"to": "+447400123456", "text": "two"})
    finally:
        sink.stop()
    assert [p.name[:6] for p in sink.paths()] == ["000001", "000002"]
    assert [m["text"] for m in sink.messages()] == ["one", "two"]


def test_segments_follow_the_gsm_and_ucs2_limits() -> None:
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2 and sms_segments("a" * 307) == 3
    assert sms_segments("€" * 80) == 1  # two septets each: 160
    assert sms_segments("€" * 81) == 2
    assert sms_segments("Grüße 😀") == 1  # not GSM: UCS-2
    assert sms_segments("ł" * 70) == 1 and sms_segments("ł" * 71) == 2


@given(st.text(alphabet="abc€ł😀 ", min_size=1, max_size=400), st.sampled_from("a€ł😀"))
def test_a_longer_text_never_needs_fewer_segments(text: str, more: str) -> None:
    assert 1 <= sms_segments(text) <= sms_segments(text + more)


def test_validate_accepts_e164_senders() -> None:
    assert validate_sms({"to": "+4915112345678", "text": "x", "from": "+447400123456"}) == {
        "to": "+4915112345678",
        "text": "x",
        "from": "+447400123456",
    }


def test_the_command_prints_a_line_per_message(tmp_path: Path) -> None:
    port = free_port()
    with subprocess.Popen(
        [*SIM, "sms", "--port", str(port), "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert f"SMS gateway sink on http://127.0.0.1:{port}" in proc.stdout.readline()
            response = httpx.post(
                f"http://127.0.0.1:{port}/messages",
                json={"to": "+4915112345678", "text": "Ihr Beleg\nist da"},
            )
            assert response.status_code == 202
            line = proc.stdout.readline()
            assert "-> +4915112345678 | 1 SMS | Ihr Beleg ist da" in line
            assert response.json()["id"] in line
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    [path] = tmp_path.glob("*.json")
    assert json.loads(path.read_text(encoding="utf-8"))["text"] == "Ihr Beleg\nist da"
