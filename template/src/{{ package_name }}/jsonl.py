"""JSON-lines logs (requests, feedback, shadow answers): one appender and one reader for all.

The server appends while jobs read, across processes and pods sharing a volume, so a reader
may meet a line being written, or one torn by a crash or a full disk. The reader skips such a
line and counts it (callers report the count) rather than failing the whole job over it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any


def now() -> str:
    """The timestamp every log line carries (local time with its offset, milliseconds)."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


class JsonlLog:
    """Thread-safe appender: one write per call keeps lines whole across workers (O_APPEND).

    `append` raises OSError (disk full, read-only volume) to the caller, which decides whether
    a lost line matters more than the answer it records.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Write `rows` as lines; returns how many."""
        lines = [json.dumps(row, allow_nan=False, default=str) + "\n" for row in rows]
        if not lines:
            return 0
        payload = "".join(lines).encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn tail: end it first
                    payload = b"\n" + payload
                os.write(fd, payload)
            finally:
                os.close(fd)
        return len(lines)


class Lines:
    """The rows of a JSONL file that parse as JSON objects; `skipped` counts the others."""

    def __init__(self, path: Path, lines: Iterable[bytes | str]) -> None:
        self.path = path
        self.skipped = 0
        self.rows: list[dict[str, Any]] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # torn by a crash, or being written right now
                self.skipped += 1
                continue
            if isinstance(row, dict):
                self.rows.append(row)
            else:
                self.skipped += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def note(self) -> str | None:
        """A warning for the job's output, or None when every line was readable."""
        if not self.skipped:
            return None
        return f"{self.path}: skipped {self.skipped} unreadable line(s)"


def read(path: Path) -> Lines:
    """Every readable row of `path` (none when the file does not exist)."""
    if not path.is_file():
        return Lines(path, [])
    with path.open("rb") as handle:
        return Lines(path, handle)


def tail(path: Path, count: int, block: int = 1 << 20) -> Lines:
    """The last `count` non-blank lines, read backwards: the log grows, the window does not."""
    if not path.is_file():
        return Lines(path, [])
    batches: list[list[bytes]] = []
    found, head = 0, b""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        while end > 0 and found < count:
            start = max(0, end - block)
            handle.seek(start)
            lines = (handle.read(end - start) + head).split(b"\n")
            head = lines.pop(0)  # cut by the block boundary: the next block completes it
            batches.append([line for line in lines if line.strip()])
            found += len(batches[-1])
            end = start
    if end == 0 and head.strip():  # the file's first line is whole
        batches.append([head])
    return Lines(path, [line for lines in reversed(batches) for line in lines][-count:])
