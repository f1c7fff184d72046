"""Results file and the human report.

``bench/results.json`` is a flat object of figures keyed as the issues name them, plus a
``_meta`` entry (machine, date). Each benchmark module adds its keys; a run of only some
benchmarks keeps the others' last figures. ``docs/benchmarks.md`` is regenerated from it,
with each figure beside its target.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
REPORT = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Target:
    key: str
    description: str
    unit: str
    op: str  # "<=" or ">="
    limit: float | None

    def met(self, value: float) -> bool | None:
        if self.limit is None:
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit


#: Every figure we publish, in the order the report lists them.
TARGETS: list[Target] = [
    Target("demo_data_default_s", "`omnitill demo-data` at the default size", "s", "<=", 10),
    Target(
        "demo_data_orders_per_s",
        "demo-data order generation rate (100k orders)",
        "orders/s",
        ">=",
        5000,
    ),
    Target(
        "ingest_tx_per_s_sqlite",
        "HQ ingest, SQLite: sales/s from 50 tills pushing batches of 100",
        "sales/s",
        ">=",
        5000,
    ),
    Target(
        "ingest_p99_ms_sqlite",
        "HQ ingest, SQLite: push latency p99 at 5,000 sales/s offered",
        "ms",
        "<=",
        250,
    ),
    Target(
        "ingest_ratio_to_raw_sqlite",
        "HQ ingest, SQLite: rate over a raw batched insert of the same rows",
        "of raw",
        ">=",
        0.25,
    ),
    Target(
        "ingest_tx_per_s_postgres",
        "HQ ingest, PostgreSQL: sales/s from 50 tills pushing batches of 100",
        "sales/s",
        ">=",
        None,
    ),
    Target(
        "ingest_p99_ms_postgres",
        "HQ ingest, PostgreSQL: push latency p99 at 5,000 sales/s offered",
        "ms",
        "<=",
        None,
    ),
    Target(
        "ingest_workers_sqlite",
        "HQ ingest, SQLite: server processes of the run above (the fastest of 1, 2 and 3)",
        "processes",
        "<=",
        None,
    ),
    Target(
        "ingest_ratio_to_raw_postgres",
        "HQ ingest, PostgreSQL: rate over a raw batched insert of the same rows",
        "of raw",
        ">=",
        None,
    ),
    Target(
        "ingest_workers_postgres",
        "HQ ingest, PostgreSQL: server processes of the run above (the faster of 1 and 2)",
        "processes",
        "<=",
        None,
    ),
    Target(
        "pull_initial_s",
        "A new till's first pull: 200k products, 200k cards, 1M recommendations (200k lists)",
        "s",
        "<=",
        60,
    ),
    Target(
        "lookup_p99_ms",
        "Customer lookup by email at HQ, 200k customers: p99",
        "ms",
        "<=",
        20,
    ),
    Target(
        "email_render_ms",
        "Receipt mail rendered (text and HTML parts, serialized), 20 lines: median of 1,000",
        "ms",
        "<=",
        10,
    ),
    Target(
        "receipt_render_ms",
        "Paper receipt rendered as ESC/POS bytes (80 mm, python-escpos), 20 lines: median of 1,000",
        "ms",
        "<=",
        10,
    ),
    Target(
        "till_scan_p99_ms",
        "Till scan with a 20-line basket (lookup, basket, totals, suggestions), 200k products: p99",
        "ms",
        "<=",
        2,
    ),
    Target(
        "till_scan_ratio_to_raw",
        "Till scan p99 over the p99 of the same scans' SQLite statements run raw",
        "x raw",
        "<=",
        3,
    ),
    Target(
        "till_customer_lookup_p99_ms",
        "Till customer lookup (email or loyalty card) in the cache of 1M cards, no HQ: p99",
        "ms",
        "<=",
        2,
    ),
    Target(
        "till_catchup_5000_s",
        "Till catch-up: 5,000 sales made offline pushed to HQ and acknowledged",
        "s",
        "<=",
        10,
    ),
    Target(
        "till_rss_mb",
        "Till process peak RSS: the scan and lookup runs above on the big cache",
        "MB",
        "<=",
        250,
    ),
    Target(
        "gui_scan_to_paint_p99_ms",
        "Till screen: wedge scan to basket row and suggestions painted, 100-line basket: p99",
        "ms",
        "<=",
        16,
    ),
    Target(
        "gui_cold_start_s",
        "Till screen: `omnitill till` launched to ready for the first scan, 200k products",
        "s",
        "<=",
        2,
    ),
    Target(
        "recs_rebuild_s",
        "HQ recommendations: full rebuild over 1M orders (5M lines), SQLite",
        "s",
        "<=",
        60,
    ),
    Target(
        "recs_rebuild_200k_s",
        "HQ recommendations: full rebuild over 200k orders (quick run), SQLite",
        "s",
        "<=",
        None,
    ),
    Target(
        "recs_incremental_lag_s",
        "HQ recommendations: sale pushed -> changed also-bought list pulled by another till",
        "s",
        "<=",
        30,
    ),
    Target(
        "recs_lists_lag_s",
        "HQ recommendations: burst of sales pushed -> store's trending list pulled by a till",
        "s",
        "<=",
        30,
    ),
    Target(
        "recs_rebuild_lock_s",
        "HQ recommendations: longest write transaction of the rebuild (ingest waits at most this)",
        "s",
        "<=",
        1,
    ),
    Target(
        "recs_rebuild_s_postgres",
        "HQ recommendations: full rebuild over 1M orders (5M lines), PostgreSQL",
        "s",
        "<=",
        60,
    ),
]


def load() -> dict[str, Any]:
    if RESULTS.exists():
        data: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
        return data
    return {}


def save(new: dict[str, float]) -> dict[str, Any]:
    data = load()
    data.update(new)
    data["_meta"] = {
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_report(data)
    return data


def write_report(data: dict[str, Any]) -> None:
    meta = data.get("_meta", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` from `bench/results.json`; do not edit by hand.",
        f"Last run: {meta.get('updated', '?')} on {meta.get('cpus', '?')} CPUs "
        f"({meta.get('machine', '?')}, Python {meta.get('python', '?')}).",
        "",
        "| figure | key | value | target | met |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for t in TARGETS:
        value = data.get(t.key)
        if value is None:
            shown, met = "not measured", ""
        else:
            shown = f"{value:,.3g} {t.unit}" if value < 100 else f"{value:,.0f} {t.unit}"
            ok = t.met(float(value))
            met = "" if ok is None else ("yes" if ok else "**no**")
        target = "" if t.limit is None else f"{t.op} {t.limit:g} {t.unit}"
        lines.append(f"| {t.description} | `{t.key}` | {shown} | {target} | {met} |")
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text(encoding="utf-8").strip()]
    REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
