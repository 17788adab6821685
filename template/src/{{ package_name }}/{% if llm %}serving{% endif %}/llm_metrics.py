"""Prometheus metrics of the LLM server: latency users feel, throughput, tokens, outcomes.

One registry per app, so several apps (tests) can live in one process. Names follow vLLM's
where they mean the same thing, with an `llm_` prefix, so one dashboard reads either server
after a relabel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from .generation import Finished

# CPU serving of a small model: tens of milliseconds to tens of seconds.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class LLMMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.time_to_first_token = Histogram(
            "llm_time_to_first_token_seconds",
            "From request received to first generated token (queueing and prompt included).",
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.tokens_per_second = Histogram(
            "llm_output_tokens_per_second",
            "Per generation: tokens after the first over the time after the first (decode speed).",
            buckets=TOKENS_PER_SECOND_BUCKETS,
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "llm_request_duration_seconds",
            "From request received to last token sent, by stream or not.",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "llm_queue_time_seconds",
            "Time a request waited for the model while others were generating.",
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "llm_prompt_tokens",
            "Prompt tokens of the requests served.",
            registry=self.registry,
        )
        self.completion_tokens = Counter(
            "llm_completion_tokens",
            "Tokens generated.",
            registry=self.registry,
        )
        self.requests = Counter(
            "llm_requests",
            "Requests to the OpenAI API routes, by route and HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.finished = Counter(
            "llm_generations_finished",
            "Generations by finish reason (stop, length, cancelled: the client left).",
            ["reason"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "llm_requests_in_flight",
            "Generation requests queued or running.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "llm_model_ready",
            "1 when the model is loaded and serving, 0 while loading or when it could not load.",
            registry=self.registry,
        )
        self.request_log_lost = Counter(
            "llm_request_log_lost_lines",
            "Request log lines not written (disk full, read-only volume); the answers were served.",
            registry=self.registry,
        )
        self.rollout_requests = Counter(
            "llm_rollout_requests",
            "Chats answered per arm (champion, challenger) while a rollout is on.",
            ["arm"],
            registry=self.registry,
        )
        self.shadow_requests = Counter(
            "llm_shadow_requests",
            "Chats mirrored to the challenger, by outcome (ok, error, dropped, unlogged).",
            ["outcome"],
            registry=self.registry,
        )
        self.retraining = Counter(
            "llm_retraining_requests",
            "Retraining requests from the webhook, by outcome (started, deduplicated, ignored).",
            ["outcome"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "llm_model_info",
            "The model served (value is always 1).",
            ["model_name", "base_model", "adapter"],
            registry=self.registry,
        )

    def count_generation(self, finished: Finished) -> None:
        """Tokens and outcome of one generation, served or abandoned (called on the worker)."""
        self.finished.labels(finished.finish_reason).inc()
        self.prompt_tokens.inc(finished.prompt_tokens)
        self.completion_tokens.inc(finished.completion_tokens)
        if finished.first_token_at is not None:
            decode_time = finished.ended_at - finished.first_token_at
            if finished.completion_tokens > 1 and decode_time > 0:
                self.tokens_per_second.observe((finished.completion_tokens - 1) / decode_time)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
