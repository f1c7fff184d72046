"""Run the benchmarks: ``python -m bench [--full] [NAME ...]``.

Without names every benchmark runs. ``--full`` uses the full sizes the issues name where a
benchmark has a quicker default (``make bench-full``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from bench.report import save

BENCHMARKS = ["demo_data", "ingest", "pull", "lookup", "email", "receipts", "till", "recs", "gui"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--full", action="store_true", help="full sizes (slow)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    figures: dict[str, float] = {}
    for name in args.names or BENCHMARKS:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        module = importlib.import_module(f"bench.bench_{name}")
        logging.getLogger("bench").info("running %s", name)
        result = module.run(full=args.full)
        logging.getLogger("bench").info("%s: %s", name, result)
        figures.update(result)
        save(figures)
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
