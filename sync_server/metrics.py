"""Prometheus metrics.

Counters live in a registry per app (so several apps in one test process do not clash). Per-till
gauges (last seen, backlog) are read from the database at scrape time, so every server process
reports the same truth however many processes share the database.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync_server.db.engine import Database
from sync_server.db.schema import quarantine, tills


class TillCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        last_seen = GaugeMetricFamily(
            "omnitill_till_last_seen_timestamp_seconds",
            "When each till last pushed (Unix time)",
            labels=["till", "store"],
        )
        backlog = GaugeMetricFamily(
            "omnitill_till_backlog_ops",
            "Ops waiting in each till's outbox, as the till last reported",
            labels=["till", "store"],
        )
        last_seq = GaugeMetricFamily(
            "omnitill_till_last_seq", "Highest applied seq per till", labels=["till", "store"]
        )
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(
                    tills.c.till_id,
                    tills.c.store_id,
                    tills.c.last_seen_at,
                    tills.c.backlog,
                    tills.c.last_seq,
                ).where(tills.c.revoked_at.is_(None))
            ).all()
            quarantined = conn.execute(sa.select(sa.func.count()).select_from(quarantine))
            quarantined_count = int(quarantined.scalar_one())
        for row in rows:
            labels = [row.till_id, row.store_id]
            if row.last_seen_at is not None:
                last_seen.add_metric(labels, row.last_seen_at.timestamp())
            backlog.add_metric(labels, row.backlog)
            last_seq.add_metric(labels, row.last_seq)
        yield last_seen
        yield backlog
        yield last_seq
        q = GaugeMetricFamily(
            "omnitill_quarantined_ops", "Ops quarantined as restored-backup replays (alert on >0)"
        )
        q.add_metric([], quarantined_count)
        yield q


class Metrics:
    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "omnitill_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "omnitill_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.push_ops = Counter(
            "omnitill_push_ops", "Pushed ops by verdict", ["verdict"], registry=self.registry
        )
        self.pull_pages = Counter(
            "omnitill_pull_pages", "Change-feed pages served", registry=self.registry
        )
        self.pull_changes = Counter(
            "omnitill_pull_changes", "Change-feed rows served", registry=self.registry
        )
        self.registry.register(TillCollector(db))
