"""Prometheus metrics of the server; multi-worker safe when PROMETHEUS_MULTIPROC_DIR is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    """One registry per app, so several apps (tests) can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer a prediction request.",
            ["handler"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "http_request_errors_total",
            "Requests answered with an error, by handler and status code.",
            ["handler", "status"],
            registry=self.registry,
        )
        self.predictions = Counter(
            "model_predictions_total",
            "Predictions served, by model version and predicted class.",
            ["model_version", "predicted_class"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "model_feedback_labels_total",
            "Ground-truth labels received for served predictions.",
            registry=self.registry,
        )
        self.request_log_lost = Counter(
            "request_log_lost_lines",
            "Request log lines not written (disk full, read-only volume); the answers were served.",
            registry=self.registry,
        )
        self.retraining = Counter(
            "retraining_requests_total",
            "Retraining requests from webhooks, by outcome (started, deduplicated, ignored).",
            ["outcome"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "model_info",
            "The model being served (value is always 1).",
            ["model_name", "model_version", "model_semver"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    @contextmanager
    def counting_failures(self, handler: str) -> Iterator[None]:
        """Count an unexpected failure as a 500 for the error-rate alert, then let it raise."""
        try:
            yield
        except Exception:
            self.errors.labels(handler, "500").inc()
            raise

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
