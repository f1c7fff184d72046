"""Running a simulator in the foreground until Ctrl-C or SIGTERM (shared by the sink CLIs)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import click


def serve_until_signal(
    *,
    start: Callable[[], object],
    stop: Callable[[], None],
    where: str,
    banner: Callable[[], str],
    toggle: Callable[[], str],
    farewell: Callable[[], str],
) -> None:
    """Start, print ``banner``; SIGUSR1 calls ``toggle`` (a fault mode) and prints its answer;
    SIGINT/SIGTERM stop and print ``farewell``. A port that cannot be opened is a clear error."""
    done = threading.Event()

    def on_toggle(signum: int, frame: FrameType | None) -> None:
        click.echo(toggle())

    def on_finish(signum: int, frame: FrameType | None) -> None:
        done.set()

    try:
        start()
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {where}: {exc.strerror or exc}") from exc
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, on_toggle)
    signal.signal(signal.SIGTERM, on_finish)
    signal.signal(signal.SIGINT, on_finish)
    click.echo(banner())
    try:
        while not done.wait(0.5):
            pass
    finally:
        stop()
        click.echo(farewell())
