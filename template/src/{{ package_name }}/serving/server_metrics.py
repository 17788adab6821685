"""Prometheus metrics every server here exports, and the helpers each server's own metrics use.

One registry per app, so several apps (tests) can live in one process. Multi-worker safe when
PROMETHEUS_MULTIPROC_DIR is set: the exposition then merges every worker's files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class ServerMetrics:
    def __init__(self, *, request_log_lost: str, retraining: str) -> None:
        """Each server names these two itself: whole names stay greppable from an alert rule."""
        self.registry = CollectorRegistry()
        self.request_log_lost = self.counter(
            request_log_lost,
            "Request log lines not written (disk full, read-only volume); the answers were served.",
        )
        self.retraining = self.counter(
            retraining,
            "Retraining requests from webhooks, by outcome (started, deduplicated, ignored).",
            ["outcome"],
        )

    def counter(self, name: str, description: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, description, labels, registry=self.registry)

    def gauge(
        self, name: str, description: str, labels: Sequence[str] = (), **options: str
    ) -> Gauge:
        return Gauge(name, description, labels, registry=self.registry, **options)

    def histogram(
        self, name: str, description: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        return Histogram(name, description, labels, buckets=buckets, registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
