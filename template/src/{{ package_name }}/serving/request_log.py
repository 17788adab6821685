"""Append every prediction to a JSON-lines log: the drift job's view of production traffic."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any


class RequestLog:
    """Thread-safe appender; one write per batch keeps lines whole across workers (O_APPEND)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, records: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        now = datetime.now().astimezone().isoformat(timespec="milliseconds")
        lines = "".join(
            json.dumps({"time": now, "inputs": record, **result}) + "\n"
            for record, result in zip(records, results, strict=True)
        )
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
