"""Retraining triggers share one entry point and one lock.

A drift alert, an accuracy-SLO alert, a schedule or enough new labels all call
`request_retraining`; it starts `<cli> retrain` in the background unless a run holds the lock,
so a burst of duplicate alerts starts one run. The run itself goes to Kubeflow when
monitoring.kubeflow_host is set, else runs the project's own pipeline: the same stages either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..config import Settings
from ..console import console
from . import local


@dataclass(frozen=True)
class Request:
    started: bool
    message: str


class RetrainLock:
    """An O_EXCL lock file; a lock whose owner process died is stale and taken over."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def acquire(self, owner: int | None = None) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self._stale():
                    return False
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump({"pid": owner or os.getpid(), "since": time.time()}, handle)
            return True
        return False

    def hand_over(self, pid: int) -> None:
        """The background run now owns the lock (and releases it when it ends)."""
        self.path.write_text(json.dumps({"pid": pid, "since": time.time()}))

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        """A run holds the lock and its process is alive."""
        return self.holder() is not None and not self._stale()

    def _stale(self) -> bool:
        holder = self.holder()
        if holder is None:
            return True
        pid = int(holder["pid"])
        try:  # our own finished child is a zombie until reaped: reap it, it is gone
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, owned by another user
            return False
        return False


def lock_for(settings: Settings) -> RetrainLock:
    return RetrainLock(settings.root / "logs" / "retrain.lock")


def request_retraining(settings: Settings, reason: str) -> Request:
    """Start `retrain` in the background unless one is running; never blocks the caller."""
    lock = lock_for(settings)
    if not lock.acquire():
        since = datetime.fromtimestamp(lock.holder()["since"]).isoformat(timespec="seconds")
        return Request(False, f"retraining already running since {since}; not started again")
    log = settings.root / "logs" / f"retrain-{time.strftime('%Y%m%dT%H%M%S')}.log"
    package = __package__.split(".")[0]
    command = [sys.executable, "-m", package, "retrain", "--reason", reason, "--lock-held"]
    # The run imports this very code, however the server found it (installed or on a path).
    source = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=settings.root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives a server restart
        )
    lock.hand_over(process.pid)
    return Request(True, f"retraining started (pid {process.pid}, log {log.name}): {reason}")


def retrain(settings: Settings, reason: str, lock_held: bool = False) -> None:
    """The retraining run itself: Kubeflow when configured, else the local pipeline."""
    lock = lock_for(settings)
    if not lock_held and not lock.acquire():
        console.print("[yellow]Retraining already running; nothing to do.[/]")
        return
    try:
        console.print(f"Retraining: {reason}")
        host = settings.monitoring.kubeflow_host
        if host:
            from .kubeflow import submit

            console.print(f"Submitted Kubeflow run {submit(settings, host, reason)}")
        else:
            local.run(settings)
    finally:
        lock.release()


def new_labels_since_training(settings: Settings) -> int:
    """Labeled production rows received after the champion's training run started."""
    from ..registry import champion_trained_at

    trained_at = champion_trained_at(settings)
    if not settings.feedback_log.is_file():
        return 0
    count = 0
    with settings.feedback_log.open() as handle:
        for line in handle:
            received = datetime.fromisoformat(json.loads(line)["time"]).timestamp()
            count += received > trained_at
    return count
