"""Prometheus metrics of the LLM server: latency users feel, throughput, tokens, outcomes.

Beside every server's (server_metrics). Names follow vLLM's where they mean the same thing, with
an `llm_` prefix, so one dashboard reads either server after a relabel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .server_metrics import ServerMetrics

if TYPE_CHECKING:
    from .generation import Finished

# CPU serving of a small model: tens of milliseconds to tens of seconds.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class LLMMetrics(ServerMetrics):
    def __init__(self) -> None:
        super().__init__(
            request_log_lost="llm_request_log_lost_lines", retraining="llm_retraining_requests"
        )
        self.time_to_first_token = self.histogram(
            "llm_time_to_first_token_seconds",
            "From request received to first generated token (queueing and prompt included).",
            TTFT_BUCKETS,
        )
        self.tokens_per_second = self.histogram(
            "llm_output_tokens_per_second",
            "Per generation: tokens after the first over the time after the first (decode speed).",
            TOKENS_PER_SECOND_BUCKETS,
        )
        self.request_latency = self.histogram(
            "llm_request_duration_seconds",
            "From request received to last token sent, by stream or not.",
            LATENCY_BUCKETS,
            ["stream"],
        )
        self.queue_time = self.histogram(
            "llm_queue_time_seconds",
            "Time a request waited for the model while others were generating.",
            TTFT_BUCKETS,
        )
        self.prompt_tokens = self.counter(
            "llm_prompt_tokens", "Prompt tokens of the requests served."
        )
        self.completion_tokens = self.counter("llm_completion_tokens", "Tokens generated.")
        self.requests = self.counter(
            "llm_requests",
            "Requests to the OpenAI API routes, by route and HTTP status.",
            ["route", "status"],
        )
        self.finished = self.counter(
            "llm_generations_finished",
            "Generations by finish reason (stop, length, cancelled: the client left).",
            ["reason"],
        )
        self.in_flight = self.gauge(
            "llm_requests_in_flight", "Generation requests queued or running."
        )
        self.ready = self.gauge(
            "llm_model_ready",
            "1 when the model is loaded and serving, 0 while loading or when it could not load.",
        )
        self.rollout_requests = self.counter(
            "llm_rollout_requests",
            "Chats answered per arm (champion, challenger) while a rollout is on.",
            ["arm"],
        )
        self.shadow_requests = self.counter(
            "llm_shadow_requests",
            "Chats mirrored to the challenger, by outcome (ok, error, dropped, unlogged).",
            ["outcome"],
        )
        self.model_info = self.gauge(
            "llm_model_info",
            "The model served (value is always 1).",
            ["model_name", "base_model", "adapter"],
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
