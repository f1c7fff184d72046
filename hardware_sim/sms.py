"""An SMS-gateway sink: the small JSON-over-HTTP API that SMS providers offer, keeping each message.

``omnitill sim sms --port 9200 --out DIR`` stands in for an SMS gateway. The API:

``POST /messages`` with ``{"to": "+4915112345678", "text": "...", "from": "Omnitill"}``
    ``to`` must be a valid phone number in E.164 (``+`` and country code, no spaces), checked
    with phonenumbers; ``text`` 1 to 1,600 characters; ``from`` optional, at most 11 letters and
    digits (an alphanumeric sender id) or an E.164 number. Answers **202** with
    ``{"id": "...", "status": "accepted", "to": ..., "segments": n}``. ``segments`` is what a
    real gateway bills: 160 characters of the GSM 7-bit alphabet per SMS (153 when split), 70
    otherwise (67 when split).
``GET /messages`` and ``GET /messages/<id>``
    What was accepted, oldest first.

Errors answer ``{"error": "<what is wrong>"}``: 400 (not JSON), 401 (``--token`` set and no
``Authorization: Bearer <token>``), 404, 413 (a body over 64 KiB), 422 (a bad field) and 503
while :attr:`SmsSink.failing` (``--fail``; ``kill -USR1 <pid>`` toggles it) to simulate a
gateway that is down. Each accepted message is written to ``DIR`` as
``000001-<id>.json`` (numbering goes on from the files there).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import click
import phonenumbers

from hardware_sim.serving import serve_until_signal

__all__ = ["MAX_TEXT", "SmsSink", "sms_command", "sms_segments", "validate_sms"]

log = logging.getLogger(__name__)

MAX_TEXT = 1600
MAX_BODY = 64 * 1024
_NUMBERED = re.compile(r"^(\d{6,})-[0-9a-f-]+\.json$")
_SENDER_ID = re.compile(r"^[A-Za-z0-9 ]{1,11}$")
#: The GSM 03.38 basic character set; ``_GSM_EXTENDED`` characters take two septets.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def sms_segments(text: str) -> int:
    """How many SMS a gateway sends (and bills) for ``text``."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        septets = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        return 1 if septets <= 160 else -(-septets // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def validate_sms(body: Any) -> dict[str, str]:
    """The message in a request body; ``ValueError`` says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError('the body must be a JSON object like {"to": "+49...", "text": "..."}')
    unknown = sorted(set(body) - {"to", "text", "from"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: to, text, from")
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise ValueError("to: a phone number in E.164 is required, like +4915112345678")
    _e164(to, "to")
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise ValueError("text: the message text is required")
    if len(text) > MAX_TEXT:
        raise ValueError(f"text: {len(text)} characters is more than {MAX_TEXT}")
    message = {"to": to, "text": text}
    sender = body.get("from")
    if sender is not None:
        if not isinstance(sender, str) or not (
            _SENDER_ID.fullmatch(sender) or sender.startswith("+")
        ):
            raise ValueError("from: an E.164 number or up to 11 letters and digits")
        if sender.startswith("+"):
            _e164(sender, "from")
        message["from"] = sender
    return message


def _e164(number: str, field: str) -> None:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(
            f"{field}: {number!r} is not in E.164 (+ and country code): {exc}"
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{field}: {number!r} is not a valid phone number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164 != number:
        raise ValueError(f"{field}: write {number!r} in E.164, as {e164}")


class SmsSink:
    """The gateway on a loopback port; ``port=0`` picks a free one (read :attr:`port`)."""

    def __init__(
        self,
        *,
        out_dir: Path,
        port: int = 0,
        host: str = "127.0.0.1",
        token: str | None = None,
        failing: bool = False,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.host = host
        self.port = port
        self.token = token
        self.failing = failing
        self.on_message = on_message
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SmsSink:
        if self._server is not None:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sink = self

        class Handler(_Handler):
            owner = sink

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name=f"sms-sink-{self.port}",
        )
        self._thread.start()
        log.info("SMS sink on %s keeps messages in %s", self.url, self.out_dir)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> SmsSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def paths(self) -> list[Path]:
        return sorted(p for p in self.out_dir.glob("*.json") if _NUMBERED.match(p.name))

    def messages(self) -> list[dict[str, Any]]:
        """The accepted messages, oldest first."""
        return [json.loads(p.read_text(encoding="utf-8")) for p in self.paths()]

    def _keep(self, message: dict[str, str]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "status": "accepted",
            **message,
            "segments": sms_segments(message["text"]),
            "received_at": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            number = max(
                (int(m[1]) for p in self.paths() if (m := _NUMBERED.match(p.name))), default=0
            )
            path = self.out_dir / f"{number + 1:06d}-{record['id']}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
            tmp.replace(path)
        if self.on_message is not None:
            try:
                self.on_message(record)
            except Exception:
                log.exception("on_message failed")
        return record


class _Handler(BaseHTTPRequestHandler):
    owner: SmsSink
    server_version = "OmnitillSmsSink/1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, {"error": message})

    def _authorized(self) -> bool:
        token = self.owner.token
        if token is None:
            return True
        if self.headers.get("Authorization", "") == f"Bearer {token}":
            return True
        self._error(HTTPStatus.UNAUTHORIZED, "send 'Authorization: Bearer <token>'")
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/messages":
            self._send(HTTPStatus.OK, self.owner.messages())
            return
        if self.path.startswith("/messages/"):
            wanted = self.path.removeprefix("/messages/")
            for message in self.owner.messages():
                if message["id"] == wanted:
                    self._send(HTTPStatus.OK, message)
                    return
        self._error(HTTPStatus.NOT_FOUND, f"no {self.path}")

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/messages":
            self._error(HTTPStatus.NOT_FOUND, f"no {self.path}; POST /messages")
            return
        if not self._authorized():
            return
        if self.owner.failing:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "gateway unavailable (simulated)")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"send at most {MAX_BODY} bytes")
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}")
            return
        try:
            message = validate_sms(body)
        except ValueError as exc:
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
            return
        record = self.owner._keep(message)
        self._send(
            HTTPStatus.ACCEPTED,
            {k: record[k] for k in ("id", "status", "to", "segments")},
        )


@click.command("sms")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9200,
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the messages' JSON files (created if missing).",
)
@click.option("--token", default=None, help="Demand 'Authorization: Bearer TOKEN'.")
@click.option("--fail", is_flag=True, help="Answer 503 (gateway down) until SIGUSR1 toggles it.")
def sms_command(port: int, host: str, out_dir: Path, token: str | None, fail: bool) -> None:
    """An HTTP SMS gateway that keeps every message as a JSON file (for demos and tests)."""

    def show(record: dict[str, Any]) -> None:
        text = " ".join(str(record["text"]).split())
        click.echo(
            f"{datetime.now(UTC):%H:%M:%S} {record.get('from', '-')} -> {record['to']} | "
            f"{record['segments']} SMS | {text[:60]}{'...' if len(text) > 60 else ''} | "
            f"{record['id']}"
        )

    sink = SmsSink(
        out_dir=out_dir, port=port, host=host, token=token, failing=fail, on_message=show
    )

    def toggle() -> str:
        sink.failing = not sink.failing
        return f"fail mode {'on: answering 503' if sink.failing else 'off: accepting'}"

    serve_until_signal(
        start=sink.start,
        stop=sink.stop,
        where=f"{host}:{port}",
        banner=lambda: (
            f"SMS gateway sink on {sink.url} | POST /messages | keeping messages in {out_dir}"
            f"{' | failing (503)' if fail else ''}{' | token required' if token else ''}"
        ),
        toggle=toggle,
        farewell=lambda: f"stopped | {len(sink.paths())} messages in {out_dir}",
    )
