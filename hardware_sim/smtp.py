"""An SMTP sink: a real SMTP server (aiosmtpd) that keeps every message it accepts as a file.

``omnitill sim smtp --port 2525 --out DIR`` stands in for a mail server in demos and tests. Every
accepted message is written to ``DIR`` as ``000001.eml``, ``000002.eml``, ... exactly as it
arrived, after two trace headers a delivering server adds (``Return-Path`` with the envelope
sender, ``X-Original-To`` with the envelope recipients); numbering goes on from the files
already in ``DIR``. One summary line per message goes to standard output.

Faults, to show that a dead mail server never loses a receipt:

- *down*: :meth:`SmtpSink.stop` closes the port (and cuts open sessions); :meth:`SmtpSink.start`
  opens the same port again;
- *reject*: the server is up but answers every message ``451 4.3.0`` (try again later), as an
  overloaded or greylisting server does. Switch it with :attr:`SmtpSink.reject` while running,
  ``--reject`` at start, or ``kill -USR1 <pid>`` to toggle it in the running command.

``--user`` and ``--password`` make the sink demand SMTP AUTH (PLAIN or LOGIN) before it accepts
mail. The sink speaks plain SMTP only (no STARTTLS): point HQ at it with ``smtp_security=none``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any

import click
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from hardware_sim.serving import serve_until_signal

__all__ = ["ReceivedMail", "SmtpSink", "smtp_command"]

log = logging.getLogger(__name__)

_NUMBERED = re.compile(r"^(\d{6,})\.eml$")
REJECT_REPLY = "451 4.3.0 Mail server temporarily unavailable (simulated); try again later"


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One accepted message, as the summary line shows it."""

    path: Path
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    message_id: str
    size: int

    def summary(self) -> str:
        return (
            f"{datetime.now(UTC):%H:%M:%S} {self.mail_from} -> {', '.join(self.rcpt_tos)} | "
            f"{self.subject} | {self.message_id} | {self.size} bytes | {self.path.name}"
        )


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.sink.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.reject:
            return REJECT_REPLY
        content = envelope.original_content or b""
        mail = self.sink._keep(str(envelope.mail_from or ""), tuple(envelope.rcpt_tos), content)
        return f"250 2.0.0 Ok: kept as {mail.path.name}"


class SmtpSink:
    """A real SMTP server on a loopback port that writes every message into ``out_dir``.

    ``port=0`` picks a free port (read :attr:`port` after :meth:`start`); a restart keeps it.
    """

    def __init__(
        self,
        *,
        out_dir: Path,
        port: int = 0,
        host: str = "127.0.0.1",
        reject: bool = False,
        username: str | None = None,
        password: str | None = None,
        on_message: Callable[[ReceivedMail], None] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.host = host
        self.port = port
        self.reject = reject
        self.username = username
        self.password = password
        self.on_message = on_message
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[SMTP] = set()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> SmtpSink:
        """Listen (again) on the port; returns self."""
        if self.running:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name=f"smtp-sink-{self.port}", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        future = asyncio.run_coroutine_threadsafe(self._serve(sock), loop)
        self._server = future.result(timeout=10)
        log.info("SMTP sink on %s:%d keeps mail in %s", self.host, self.port, self.out_dir)
        return self

    async def _serve(self, sock: socket.socket) -> asyncio.base_events.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(self._protocol, sock=sock)

    def _protocol(self) -> SMTP:
        smtp = _TrackedSMTP(
            _Handler(self),
            sink=self,
            hostname="omnitill-sim-smtp",
            ident="Omnitill SMTP sink",
            enable_SMTPUTF8=True,
            decode_data=False,
            auth_require_tls=False,
            authenticator=self._authenticate,
        )
        return smtp

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.username is not None
            and data.login.decode("utf-8", "replace") == self.username
            and data.password.decode("utf-8", "replace") == (self.password or "")
        )
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False)

    def stop(self) -> None:
        """Close the port and every open session (the mail server is down)."""
        loop, thread, server = self._loop, self._thread, self._server
        if loop is None or thread is None:
            return
        if server is not None:
            asyncio.run_coroutine_threadsafe(self._close(server), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._server = None
        log.info("SMTP sink on port %d stopped", self.port)

    async def _close(self, server: asyncio.base_events.Server) -> None:
        server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let the sessions' connection_lost run
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what was received ---------------------------------------------------------------------

    def paths(self) -> list[Path]:
        """The kept messages' files, oldest first."""
        return sorted(p for p in self.out_dir.glob("*.eml") if _NUMBERED.match(p.name))

    def messages(self) -> list[EmailMessage]:
        """The kept messages, parsed (``email.policy.default``), oldest first."""
        out = []
        for path in self.paths():
            message = message_from_bytes(path.read_bytes(), policy=default_policy)
            assert isinstance(message, EmailMessage)
            out.append(message)
        return out

    def _keep(self, mail_from: str, rcpt_tos: tuple[str, ...], content: bytes) -> ReceivedMail:
        trace = (f"Return-Path: <{mail_from}>\r\nX-Original-To: {', '.join(rcpt_tos)}\r\n").encode()
        with self._lock:
            number = max(
                (int(m[1]) for p in self.paths() if (m := _NUMBERED.match(p.name))), default=0
            )
            path = self.out_dir / f"{number + 1:06d}.eml"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(trace + content)
            tmp.replace(path)  # whole files only: a reader never sees half a message
        headers = message_from_bytes(content, policy=default_policy)
        mail = ReceivedMail(
            path=path,
            mail_from=mail_from,
            rcpt_tos=rcpt_tos,
            subject=str(headers.get("Subject", "")),
            message_id=str(headers.get("Message-ID", "")),
            size=len(content),
        )
        if self.on_message is not None:
            try:
                self.on_message(mail)
            except Exception:  # a listener's bug must not turn an accepted mail into a 451
                log.exception("on_message failed")
        return mail


class _TrackedSMTP(SMTP):
    """aiosmtpd's server protocol, registered with its sink so that stopping can cut it off."""

    def __init__(self, handler: Any, *, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sink._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sink._sessions.discard(self)
        super().connection_lost(error)


@click.command("smtp")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=2525,
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the .eml files (created if missing).",
)
@click.option(
    "--reject",
    is_flag=True,
    help="Answer every message 451 (try later) until SIGUSR1 toggles it off.",
)
@click.option("--user", default=None, help="Demand SMTP AUTH with this user name.")
@click.option("--password", default=None, help="The password for --user.")
def smtp_command(
    port: int, host: str, out_dir: Path, reject: bool, user: str | None, password: str | None
) -> None:
    """An SMTP server that keeps every message as a .eml file (a mail server for demos)."""
    if password is not None and user is None:
        raise click.UsageError("--password needs --user")
    # aiosmtpd logs every connection, and a deprecation notice on each login, at INFO/WARNING;
    # the summary lines say what matters.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    sink = SmtpSink(
        out_dir=out_dir,
        port=port,
        host=host,
        reject=reject,
        username=user,
        password=password,
        on_message=lambda mail: click.echo(mail.summary()),
    )

    def toggle() -> str:
        sink.reject = not sink.reject
        return f"reject mode {'on: answering 451' if sink.reject else 'off: accepting'}"

    serve_until_signal(
        start=sink.start,
        stop=sink.stop,
        where=f"{host}:{port}",
        banner=lambda: (
            f"SMTP sink on {host}:{sink.port} | keeping mail in {out_dir} | "
            f"{'rejecting (451)' if reject else 'accepting'}{' | AUTH required' if user else ''}"
        ),
        toggle=toggle,
        farewell=lambda: f"stopped | {len(sink.paths())} messages in {out_dir}",
    )
