"""Append every answer to a JSON-lines log: the drift job's view of production traffic.

The tabular server logs each prediction's inputs (`append`); the LLM server logs each chat's
text statistics, and its text within serving.log_text_chars (`write`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from .. import jsonl
from ..tracking import redact

logger = logging.getLogger(__name__)
# One warning per this many seconds: a full disk fails every request, the log must not.
WARN_EVERY_S = 60.0


class RequestLog:
    """One line per prediction: the inputs, the answer, its request_id and model version.

    A line that cannot be written (disk full, read-only volume) does not fail the request: the
    answer matters more than its log line. Lost lines are counted in `lost` (the
    request_log_lost_lines_total metric, which an alert watches) and warned about, rate-limited.
    """

    def __init__(self, path: Path, lost: Counter | None = None) -> None:
        self.path = path
        self._log = jsonl.JsonlLog(path)
        self._lost = lost
        self._guard = threading.Lock()
        self._unwarned = 0
        self._warned_at = -WARN_EVERY_S

    def append(self, records: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        """One line per prediction: its inputs and its result."""
        rows = [
            {"inputs": record, **result} for record, result in zip(records, results, strict=True)
        ]
        self.write(rows)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """`rows` as lines, each stamped with the time; never raises (lost lines are counted)."""
        now = jsonl.now()
        try:
            self._log.append({"time": now, **row} for row in rows)
        except (OSError, ValueError) as exc:  # ValueError: a value JSON cannot hold
            self._count_lost(len(rows), exc)

    def _count_lost(self, lines: int, exc: Exception) -> None:
        if self._lost is not None:
            self._lost.inc(lines)
        with self._guard:
            self._unwarned += lines
            if time.monotonic() - self._warned_at < WARN_EVERY_S:
                return
            lost, self._unwarned, self._warned_at = self._unwarned, 0, time.monotonic()
        logger.warning(
            "Request log %s not written (%s): %d line(s) lost, predictions still served; "
            "next warning in %.0fs at the earliest.",
            self.path,
            redact(f"{type(exc).__name__}: {exc}"),
            lost,
            WARN_EVERY_S,
        )
