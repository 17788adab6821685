"""Each served chat to the request log (logs/requests.jsonl), the drift job's input.

A line holds the chat's text statistics (monitoring/text_stats.py, computed on the full text),
its token counts, finish reason, latency and the arm that answered, and its prompt and answer
cut to serving.log_text_chars characters each (none at 0). Lines are written by one thread of
their own, after the answer is sent: logging never holds a request up, keeps lines whole and in
order under concurrent requests (jsonl.JsonlLog), and a line it cannot write (full disk) is
counted in llm_request_log_lost_lines and warned about, never raised (serving/request_log.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from ..monitoring.text_stats import describe, prompt_text
from .request_log import RequestLog

if TYPE_CHECKING:
    from .generation import Finished, LoadedModel

log = logging.getLogger(__name__)


class ChatLog:
    def __init__(
        self, path: Path, lost: Counter, text_chars: int, refusal_markers: Sequence[str]
    ) -> None:
        self.path = path
        self._log = RequestLog(path, lost)
        self._lost = lost
        self._text_chars = text_chars
        self._markers = tuple(refusal_markers)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")

    def record(
        self,
        loaded: LoadedModel,
        messages: Sequence[dict[str, Any]],
        completion: str,
        finished: Finished,
        **fields: Any,
    ) -> None:
        """Queue the chat's line (fields: model, arm, latency_s...); returns at once."""
        self._writer.submit(self._write, loaded, messages, completion, finished, fields)

    def _write(
        self,
        loaded: LoadedModel,
        messages: Sequence[dict[str, Any]],
        completion: str,
        finished: Finished,
        fields: dict[str, Any],
    ) -> None:
        prompt = prompt_text(messages)
        try:
            stats = describe(prompt, completion, loaded.count_tokens, self._markers)
        except Exception:  # a tokenizer failure costs the line, never the server
            log.exception("request log: statistics of a chat failed")
            self._lost.inc()
            return
        row: dict[str, Any] = {
            **fields,
            "prompt_tokens": finished.prompt_tokens,
            "completion_tokens": finished.completion_tokens,
            "finish_reason": finished.finish_reason,
            "stats": stats,
        }
        if self._text_chars:
            row["prompt"] = prompt[: self._text_chars]
            row["completion"] = completion[: self._text_chars]
        self._log.write([row])

    def close(self) -> None:
        """Write what is queued, then stop (the server's shutdown)."""
        self._writer.shutdown(wait=True)
