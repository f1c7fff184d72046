"""The cashier's screen on the big till cache: scan to paint, and the cold start (issue 7).

Both run the till the way ``omnitill till`` does, on the cache ``bench_till`` builds (200k
products, 1M customer cards, 2M recommendation rows; built once into ``bench/.work/`` and
reused), with Qt's offscreen platform on a screen the size of the till display (1366 x 768),
HQ configured but unreachable (a closed loopback port: the sync worker keeps retrying in the
background, as in a store whose link is down) and no printer. Method notes are in
``bench/NOTES.md`` ("Till screen").

- ``gui_scan_to_paint_p99_ms``: a fresh process starts the till exactly as ``omnitill till``
  does (``edge_agent.cli.quick_start``, ``Till.from_settings``, ``edge_agent.ui.app.run_window``
  with its event loop), then, from inside that event loop, scans random products as a wedge
  scanner does: the 13 digits and Enter as key presses and releases sent to the focused widget,
  through the window's wedge filter to the scan handler. The basket is kept at 100 lines (its
  oldest line is voided, and the window settled, before each scan, outside the timed region).
  A scan's time runs from its first key to the end of the last paint it caused: the event loop
  is run pass by pass until the basket table and the suggestions have both received a paint
  event and a pass does nothing more for the window (no paint, layout or update request, no
  widget timer). Three rounds (five with ``--full``), each a fresh till process timing 1,000
  scans (3,000) after 300 warm-up scans; the figure is the median of the rounds' p99s (all
  rounds' scans together are logged too).
- ``gui_cold_start_s``: ``python -m omnitill till`` on the big cache, from just before the
  process is spawned to the moment the window reports itself ready (first paint done, scan
  field focused: ``OMNITILL_READY_FILE``, see ``edge_agent/ui/app.py``). Median of 7 launches
  (15 with ``--full``) after one warm-up launch that is not counted.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.bench_till import (
    CUSTOMERS,
    PRODUCTS,
    ROOT,
    STORE_ID,
    TILL_ID,
    WORK,
    ean_of,
    ensure_cache,
    percentile,
)

log = logging.getLogger(__name__)

BASKET_LINES = 100
WARMUP_SCANS = 300
SCANS = 1_000
SCANS_FULL = 3_000
#: Rounds of scans, each in a fresh till process; the figure is the median of their p99s.
ROUNDS = 3
ROUNDS_FULL = 5
LAUNCHES = 7
LAUNCHES_FULL = 15
READY_TIMEOUT_S = 120.0
#: HQ as the till is told to reach it: nothing listens on the discard port of loopback.
DOWN_HQ = "http://127.0.0.1:9"
TOKEN = "bench-gui-till-token-0123456789abcdef"
#: Start-up must never read the cache file through: far less than its 1.3 GB may be read.
MAX_START_READ_MB = 200
#: The till display the window is laid out for (docs/till.md): the offscreen platform's screen.
SCREEN = {"width": 1366, "height": 768}


def offscreen_platform() -> str:
    """``QT_QPA_PLATFORM`` for an offscreen screen of the till display's size (the default
    offscreen screen is 800 x 800)."""
    config = WORK / "offscreen-till-display.json"
    screen = {"name": "till", "x": 0, "y": 0, **SCREEN, "logicalDpi": 96, "dpr": 1}
    text = json.dumps({"windowFrameMargins": False, "screens": [screen]})
    if not config.exists() or config.read_text(encoding="utf-8") != text:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text, encoding="utf-8")
    return f"offscreen:configfile={config}"


def _child_env() -> dict[str, str]:
    """A till process's environment: offscreen Qt, none of the machine's till settings, and
    caches of its own (Python's bytecode, escpos's parsed printer database) under bench/.work,
    as a till keeps them from one start to the next."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITILL_")}
    env["OMNITILL_TILL_CONFIG"] = os.devnull
    env["QT_QPA_PLATFORM"] = offscreen_platform()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    env["XDG_CACHE_HOME"] = str(WORK / "cache")
    env.pop("ESCPOS_CAPABILITIES_PICKLE_DIR", None)
    return env


def _till_args(path: Path) -> list[str]:
    return [
        "--db", str(path), "--store", STORE_ID, "--till", TILL_ID,
        "--server", DOWN_HQ, "--token", TOKEN,
    ]  # fmt: skip


def scan_codes(count: int, rng: random.Random) -> list[str]:
    """Random products, none repeated within ``BASKET_LINES + 1`` scans: every scan adds a line
    to a basket holding the previous 100."""
    out: list[int] = []
    recent: set[int] = set()
    for _ in range(count):
        while (n := rng.randrange(PRODUCTS)) in recent:
            pass
        out.append(n)
        recent.add(n)
        if len(out) > BASKET_LINES:
            recent.discard(out[-BASKET_LINES - 1])
    return [ean_of(n) for n in out]


# ---------------------------------------------------------------------------------------------
# Scan to paint (in the till process)


class _ScanDriver:
    """Scans into the shown window from inside its event loop and times each to its paint."""

    def __init__(self, codes: Sequence[str], warmup: int, done: Callable[[], None]) -> None:
        self.codes = codes
        self.warmup = warmup
        self.done = done
        self.result: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._run()
        except BaseException as exc:  # reported by the process, after the loop has ended
            self.error = exc
        finally:
            self.done()

    def _run(self) -> dict[str, Any]:
        from PySide6.QtCore import QEvent, QObject
        from PySide6.QtWidgets import QApplication, QLineEdit, QWidget

        from edge_agent.ui.keyboard_wedge import wedge_scan
        from edge_agent.ui.main_window import TillWindow

        app = QApplication.instance()
        assert isinstance(app, QApplication)
        [window] = [w for w in app.topLevelWidgets() if isinstance(w, TillWindow)]
        presenter = window.presenter
        size = (SCREEN["width"], SCREEN["height"])

        class Activity(QObject):
            """What the event loop does to the window: paint events per widget, and every
            event that leads to a paint (a layout or update request, a widget's timer; not the
            scan field's blinking cursor). Installed on the application, it sees them all."""

            def __init__(self) -> None:
                super().__init__()
                self.paints: dict[int, int] = {}
                self.events = 0
                self._types = (
                    QEvent.Type.Paint,
                    QEvent.Type.LayoutRequest,
                    QEvent.Type.UpdateRequest,
                    QEvent.Type.Timer,
                )

            def eventFilter(self, watched: QObject, event: QEvent) -> bool:
                kind = event.type()
                if kind in self._types and isinstance(watched, QWidget):
                    if watched.window() is not window:
                        return False
                    if kind == QEvent.Type.Paint:
                        self.paints[id(watched)] = self.paints.get(id(watched), 0) + 1
                    elif kind == QEvent.Type.Timer and isinstance(watched, QLineEdit):
                        return False  # the cursor blinks whether or not anything was scanned
                    self.events += 1
                return False

            def painted(self, widgets: Sequence[QObject]) -> int:
                return sum(self.paints.get(id(w), 0) for w in widgets)

            def total(self) -> int:
                return sum(self.paints.values())

        activity = Activity()
        app.installEventFilter(activity)
        basket = window.basket.viewport()
        box = window.sale_panel.suggestion_box

        def settle(start: float) -> tuple[float, int]:
            """Run the event loop pass by pass until a pass does nothing for the window; when
            the last paint ended, and how many passes painted."""
            end, passes = start, 0
            while True:
                events, paints = activity.events, activity.total()
                app.processEvents()
                if activity.total() != paints:
                    end, passes = time.perf_counter(), passes + 1
                if activity.events == events:
                    return end, passes

        deadline = time.monotonic() + 30
        while not window.scan_field.hasFocus() or not activity.painted([window]):
            app.processEvents()
            if time.monotonic() > deadline:
                raise RuntimeError("the till window never showed with its scan field focused")
        settle(time.perf_counter())
        if (window.width(), window.height()) != size:
            raise RuntimeError(f"the window is {window.width()} x {window.height()}, not {size}")

        gc_pauses: list[float] = []
        gc_start = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                gc_start[0] = time.perf_counter()
            else:
                gc_pauses.append(time.perf_counter() - gc_start[0])

        wall: list[float] = []
        cpu: list[float] = []
        passes: list[int] = []
        in_gc: list[float] = []
        unchanged = 0  # scans that left the suggestions as they were (nothing to repaint there)
        split = 0  # scans whose keys the detector took for typing (see below), scanned again
        gc.callbacks.append(on_gc)
        try:
            pending = list(self.codes)
            done = 0
            while pending:
                i, code = done, pending.pop(0)
                engine = presenter.till.engine
                if len(engine.basket.lines) >= BASKET_LINES:
                    presenter.void(engine.basket.lines[0].line_no)
                    settle(time.perf_counter())
                targets = [box, *box.findChildren(QWidget)]
                shown = [b.accessibleName() for b in window.suggestion_buttons]
                basket_0, box_0 = activity.painted([basket]), activity.painted(targets)
                pauses_0 = len(gc_pauses)
                before = presenter.last_event
                cpu_0, start = time.thread_time(), time.perf_counter()
                wedge_scan(code, interval_ms=0.0, pause_ms=0.0)
                same = shown == [b.accessibleName() for b in window.suggestion_buttons]
                end, count = settle(start)
                event = presenter.last_event
                if event is before or event is None or event.kind != "item_added":
                    # The machine paused this process for more than the wedge detector's 30 ms
                    # between two keys: part of the code went to the scan field as typing.
                    split += 1
                    if split > max(10, len(self.codes) // 100):
                        raise RuntimeError(f"{split} scans split; the last gave {event}")
                    window.wedge.flush_now()
                    window.scan_field.clear()
                    settle(time.perf_counter())
                    pending.insert(0, code)
                    continue
                while activity.painted([basket]) == basket_0 or not (
                    same or activity.painted(targets) > box_0
                ):  # not painted yet (a pass can come before Qt's update request)
                    if time.perf_counter() - start > 10:
                        raise RuntimeError(f"scan {i} of {code}: not painted after 10 s")
                    end, more = settle(end)
                    count += more
                cpu_1 = time.thread_time()
                if len(engine.basket.lines) != min(i + 1, BASKET_LINES):
                    raise RuntimeError(f"scan {i}: {len(engine.basket.lines)} lines in the basket")
                if i >= self.warmup:
                    wall.append(end - start)
                    cpu.append(cpu_1 - cpu_0)
                    passes.append(count)
                    in_gc.append(sum(gc_pauses[pauses_0:]))
                    unchanged += same
                done += 1
        finally:
            gc.callbacks.remove(on_gc)
            app.removeEventFilter(activity)
        slow = sorted(range(len(wall)), key=wall.__getitem__)[-max(1, len(wall) // 100) :]
        return {
            "wall_ms": [round(s * 1e3, 3) for s in wall],
            "scans": len(wall),
            "suggestions": len(window.suggestion_buttons),
            "suggestions_unchanged": unchanged,
            "split_scans": split,
            "wall_p50_ms": percentile(wall, 0.50) * 1e3,
            "wall_p90_ms": percentile(wall, 0.90) * 1e3,
            "wall_p99_ms": percentile(wall, 0.99) * 1e3,
            "wall_max_ms": max(wall) * 1e3,
            "cpu_p50_ms": percentile(cpu, 0.50) * 1e3,
            "cpu_p99_ms": percentile(cpu, 0.99) * 1e3,
            "paint_passes_p50": percentile(passes, 0.50),
            "paint_passes_max": max(passes),
            "gc_pauses": len(gc_pauses),
            "gc_max_ms": max(gc_pauses, default=0.0) * 1e3,
            # The slowest 1%: how much of their time was the collector's, and was CPU at all.
            "slowest_gc_ms": sum(in_gc[i] for i in slow) / len(slow) * 1e3,
            "slowest_cpu_ms": sum(cpu[i] for i in slow) / len(slow) * 1e3,
            "slowest_wall_ms": sum(wall[i] for i in slow) / len(slow) * 1e3,
        }


def scan_process(path: Path, *, scans: int, warmup: int) -> dict[str, Any]:
    """The till started as ``omnitill till`` starts it, then scans (see the module docstring)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from edge_agent.cli import quick_start
    from edge_agent.config import load_till_settings

    app = QApplication([sys.argv[0]])
    codes = scan_codes(warmup + scans, random.Random(7))
    with quick_start():
        from edge_agent.till import Till
        from edge_agent.ui.app import run_window

        settings = load_till_settings(
            db_path=path, store_id=STORE_ID, till_id=TILL_ID, server_url=DOWN_HQ, token=TOKEN
        )
        till = Till.from_settings(settings)

    def close_window() -> None:
        for widget in app.topLevelWidgets():
            widget.close()

    driver = _ScanDriver(codes, warmup, close_window)
    QTimer.singleShot(0, driver.run)
    try:
        run_window(till, None)
    finally:
        till.close()
    if driver.error is not None:
        raise driver.error
    return driver.result


def run_scan_process(path: Path, *, scans: int) -> dict[str, Any]:
    args = json.dumps({"path": str(path), "scans": scans, "warmup": WARMUP_SCANS})
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_gui", "--scan-process", args],
        cwd=ROOT,
        env=_child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the till screen process failed:\n{result.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


# ---------------------------------------------------------------------------------------------
# Cold start


def launch(path: Path, workdir: Path) -> dict[str, Any]:
    """One ``omnitill till`` from spawn to ready; stopped with SIGTERM, as systemd would."""
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    env = _child_env()
    env["OMNITILL_READY_FILE"] = str(ready)
    command = [sys.executable, "-m", "omnitill", "--log-level", "WARNING", "till"]
    command += _till_args(path)
    with (workdir / "till.log").open("ab") as log_file:
        start = time.time()
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.exists():
            if process.poll() is not None:
                tail = (workdir / "till.log").read_text(errors="replace")[-4000:]
                raise RuntimeError(f"omnitill till exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"omnitill till not ready after {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.002)
        data = json.loads(ready.read_text(encoding="utf-8"))
        io = dict(
            line.split(": ")
            for line in Path(f"/proc/{process.pid}/io").read_text().splitlines()
            if ": " in line
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait(timeout=30)
    if code != 0:
        raise RuntimeError(f"omnitill till exited with {code} on SIGTERM")
    if not data.get("scan_field_focused"):
        raise RuntimeError("the till window was ready without its scan field focused")
    read_mb = int(io.get("rchar", "0")) / 1e6
    if read_mb > MAX_START_READ_MB:
        raise RuntimeError(f"starting the till read {read_mb:.0f} MB: it must not scan its cache")
    return {"ready_s": float(data["ready_at"]) - start, "read_mb": read_mb}


def cold_starts(path: Path, *, launches: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as tmp:
        warm = launch(path, Path(tmp))  # fills the bytecode and escpos caches
        log.info("warm-up launch (not counted): %.2f s", warm["ready_s"])
        runs = [launch(path, Path(tmp)) for _ in range(launches)]
    for run_ in runs:
        log.info("launch to ready: %.3f s (read %.1f MB)", run_["ready_s"], run_["read_mb"])
    return runs


# ---------------------------------------------------------------------------------------------
# Entry points


def run(*, full: bool) -> dict[str, float]:
    path, built_s = ensure_cache(products=PRODUCTS, customers=CUSTOMERS)
    if built_s is not None:
        log.info("building the till cache took %.0f s (not part of any figure)", built_s)
    p99s: list[float] = []
    pooled: list[float] = []
    for round_ in range(ROUNDS_FULL if full else ROUNDS):
        scans = run_scan_process(path, scans=SCANS_FULL if full else SCANS)
        pooled += scans.pop("wall_ms")
        p99s.append(scans["wall_p99_ms"])
        log.info("scan to paint, round %d: %s", round_ + 1, json.dumps(scans, sort_keys=True))
    log.info(
        "scan to paint p99 per round: %s ms; all %d scans together: p50 %.2f ms, p99 %.2f ms",
        ", ".join(f"{v:.2f}" for v in p99s),
        len(pooled),
        percentile(pooled, 0.50),
        percentile(pooled, 0.99),
    )
    starts = cold_starts(path, launches=LAUNCHES_FULL if full else LAUNCHES)
    return {
        "gui_scan_to_paint_p99_ms": round(percentile(p99s, 0.5), 2),
        "gui_cold_start_s": round(percentile([r["ready_s"] for r in starts], 0.5), 3),
    }


def _main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "--scan-process":
        args = json.loads(argv[1])
        logging.basicConfig(level=logging.WARNING)
        result = scan_process(Path(args["path"]), scans=args["scans"], warmup=args["warmup"])
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    sys.stderr.write("usage: python -m bench gui (this module is the till process's entry)\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
