"""Prometheus metrics of the model server (beside every server's, in server_metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .server_metrics import ServerMetrics

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics(ServerMetrics):
    def __init__(self) -> None:
        super().__init__(
            request_log_lost="request_log_lost_lines", retraining="retraining_requests"
        )
        self.latency = self.histogram(
            "http_request_duration_seconds",
            "Time to answer a prediction request.",
            LATENCY_BUCKETS,
            ["handler"],
        )
        self.errors = self.counter(
            "http_request_errors_total",
            "Requests answered with an error, by handler and status code.",
            ["handler", "status"],
        )
        self.predictions = self.counter(
            "model_predictions_total",
            "Predictions served, by model version and predicted class.",
            ["model_version", "predicted_class"],
        )
        self.feedback = self.counter(
            "model_feedback_labels_total", "Ground-truth labels received for served predictions."
        )
        self.model_info = self.gauge(
            "model_info",
            "The model being served (value is always 1).",
            ["model_name", "model_version", "model_semver"],
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
