"""Benchmarks: `make bench` runs them, writes bench/results.json and docs/benchmarks.md."""
