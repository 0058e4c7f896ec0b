"""The service's Prometheus metrics: request latency per route, decisions by tier, journal depth,
alerts.

One ``ServiceMetrics`` per app, on its own registry (tests build many apps in one process). Under
several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before they start:
each worker then writes its samples there and ``render`` merges all workers, so a scrape that
lands on any worker sees the whole service (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from api.stages import CpuStages

#: Latency buckets in seconds: the checkout targets (DESIGN §7) are p99 <= 10 ms (known account)
#: and <= 25 ms (unseen event), so the resolution is finest there.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """The metrics one app updates, and their text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.latency = Histogram(
            "ringwatch_request_seconds",
            "Request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "ringwatch_decisions_total",
            "Checkout scoring decisions by risk tier and decision.",
            ["tier", "decision"],
            registry=self.registry,
        )
        self.journal_depth = Gauge(
            "ringwatch_journal_depth",
            "Accepted checkout events not yet loaded into the graph store.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.alerts = Counter(
            "ringwatch_alerts_total",
            "Alerts raised, by kind and outcome (queued or deduplicated).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "ringwatch_auth_rejections_total",
            "Requests refused before the route ran, by reason (401, 403, 429).",
            ["reason"],
            registry=self.registry,
        )
        self.stage_cpu = Counter(
            "ringwatch_stage_cpu_seconds",
            "CPU seconds spent on checkout events, by stage (api.stages); flushed once per tail interval.",
            ["stage"],
            registry=self.registry,
        )
        self.stage_events = Counter(
            "ringwatch_stage_events",
            "Checkout events behind ringwatch_stage_cpu_seconds: scored here, or folded in from another worker.",
            ["kind"],
            registry=self.registry,
        )
        self.stages = CpuStages(self.stage_cpu, self.stage_events)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type (all workers merged in multiprocess mode)."""
        if self.multiprocess:
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
