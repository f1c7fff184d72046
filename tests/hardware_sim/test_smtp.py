"""The SMTP sink: real SMTP in, .eml files out; down, reject and AUTH modes."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from hardware_sim.smtp import REJECT_REPLY, ReceivedMail, SmtpSink, smtp_command
from tests.support.server import ROOT, free_port

#: ``omnitill sim`` as a process (the group itself, whether or not omnitill/cli.py lists it yet).
SIM = [sys.executable, "-c", "from hardware_sim.cli import sim; sim()"]


def message(n: int = 1, subject: str = "Ihr Beleg über 12,30 €") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Omnitill <receipts@shop.example>"
    msg["To"] = "maría@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<mail-{n}@omnitill>"
    msg.set_content(f"Receipt {n}: 2 x Äpfel 3,98 €")
    return msg


def send(port: int, msg: EmailMessage, **login: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        if login:
            smtp.login(login["user"], login["password"])
        smtp.send_message(msg)


def test_every_message_is_kept_as_it_arrived(tmp_path: Path) -> None:
    seen: list[ReceivedMail] = []
    with SmtpSink(out_dir=tmp_path / "mail", on_message=seen.append) as sink:
        send(sink.port, message(1))
        send(sink.port, message(2))
        paths = sink.paths()
        got = sink.messages()
    assert [p.name for p in paths] == ["000001.eml", "000002.eml"]
    assert [m["Message-ID"] for m in got] == ["<mail-1@omnitill>", "<mail-2@omnitill>"]
    assert got[0]["Subject"] == "Ihr Beleg über 12,30 €"
    assert got[0]["Return-Path"] == "<receipts@shop.example>"
    assert got[0]["X-Original-To"] == "maría@example.com"
    assert got[0].get_content().strip() == "Receipt 1: 2 x Äpfel 3,98 €"
    assert [m.message_id for m in seen] == ["<mail-1@omnitill>", "<mail-2@omnitill>"]
    assert "receipts@shop.example -> maría@example.com | Ihr Beleg" in seen[0].summary()


def test_down_then_back_on_the_same_port_numbering_goes_on(tmp_path: Path) -> None:
    sink = SmtpSink(out_dir=tmp_path).start()
    try:
        port = sink.port
        send(port, message(1))
        sink.stop()
        with pytest.raises(OSError):
            send(port, message(2))
        sink.start()
        assert sink.port == port
        send(port, message(3))
    finally:
        sink.stop()
    assert [p.name for p in sink.paths()] == ["000001.eml", "000002.eml"]
    assert [m["Message-ID"] for m in sink.messages()] == ["<mail-1@omnitill>", "<mail-3@omnitill>"]


def test_reject_mode_answers_451_and_keeps_nothing(tmp_path: Path) -> None:
    with SmtpSink(out_dir=tmp_path, reject=True) as sink:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            send(sink.port, message(1))
        assert caught.value.smtp_code == 451
        error = caught.value.smtp_error
        assert REJECT_REPLY[4:] in (error.decode() if isinstance(error, bytes) else error)
        sink.reject = False  # the server recovers while running
        send(sink.port, message(2))
        assert [m["Message-ID"] for m in sink.messages()] == ["<mail-2@omnitill>"]


def test_auth_is_demanded_when_a_user_is_set(tmp_path: Path) -> None:
    with SmtpSink(out_dir=tmp_path, username="hq", password="s3cret") as sink:
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            send(sink.port, message(1))
        assert caught.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError):
            send(sink.port, message(2), user="hq", password="wrong")
        send(sink.port, message(3), user="hq", password="s3cret")
        assert [m["Message-ID"] for m in sink.messages()] == ["<mail-3@omnitill>"]


def test_the_command_prints_a_line_per_message(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "out"
    with subprocess.Popen(
        [*SIM, "smtp", "--port", str(port), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert f"SMTP sink on 127.0.0.1:{port}" in first
            send(port, message(7, subject="Your receipt S001-T1-000007 from Omnitill"))
            line = proc.stdout.readline()
            assert "-> maría@example.com | Your receipt S001-T1-000007" in line
            assert "<mail-7@omnitill>" in line and "000001.eml" in line
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert (out / "000001.eml").exists()


def test_the_command_refuses_a_password_without_a_user(tmp_path: Path) -> None:
    result = CliRunner().invoke(smtp_command, ["--out", str(tmp_path), "--password", "x"])
    assert result.exit_code == 2
    assert "--password needs --user" in result.output


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with SmtpSink(out_dir=tmp_path) as sink:
        started = time.monotonic()
        result = CliRunner().invoke(
            smtp_command, ["--out", str(tmp_path), "--port", str(sink.port)]
        )
        assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert f"Cannot listen on 127.0.0.1:{sink.port}" in result.output
