"""Retraining triggers share one entry point and one lock.

A drift alert, an accuracy-SLO alert, a schedule or enough new labels all call
`request_retraining`; it starts `<cli> retrain` in the background unless a run holds the lock
(`lock.py`), so a burst of duplicate alerts, from any number of server workers and pods, starts
one run. The run itself goes to Kubeflow when monitoring.kubeflow_host is set, else runs the
project's own pipeline (the stage table) where `work_dir` says: the same stages either way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import jsonl
from ..config import Settings
from ..console import console
from ..errors import ProjectError
from . import local
from .lock import RetrainLock


@dataclass(frozen=True)
class Request:
    started: bool
    message: str


@dataclass(frozen=True)
class NewLabels:
    """Labels of served predictions received since the champion's training run started."""

    count: int
    notes: list[str]  # warnings for the job's output: skipped lines, unknown request ids


def lock_for(settings: Settings) -> RetrainLock:
    return RetrainLock(settings.retrain_lock, settings.monitoring.retrain_lease_s)


def request_retraining(settings: Settings, reason: str) -> Request:
    """Start `retrain` in the background unless one is running; never blocks the caller."""
    lock = lock_for(settings)
    if not lock.acquire():
        holder = lock.holder()
        since = (
            f" since {datetime.fromtimestamp(holder.since).isoformat(timespec='seconds')} "
            f"({holder.host}, pid {holder.pid})"
            if holder
            else ""
        )
        return Request(False, f"retraining already running{since}; not started again")
    try:
        process, log = _start(settings, reason)
    except OSError:
        lock.release()
        raise
    lock.hand_over(process.pid)
    return Request(True, f"retraining started (pid {process.pid}, log {log.name}): {reason}")


def _start(settings: Settings, reason: str) -> tuple[subprocess.Popen, Path]:
    log = settings.logs_dir / f"retrain-{time.strftime('%Y%m%dT%H%M%S')}.log"
    package = __package__.split(".")[0]
    command = [sys.executable, "-m", package, "retrain", "--reason", reason, "--lock-held"]
    # The run imports this very code, however the server found it (installed or on a path).
    source = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=settings.root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives a server restart
        )
    return process, log


def retrain(settings: Settings, reason: str, lock_held: bool = False) -> None:
    """The retraining run itself: Kubeflow when configured, else the local pipeline."""
    lock = lock_for(settings)
    if lock_held and not lock.adopt():
        raise ProjectError(
            f"--lock-held, but no lock in {settings.retrain_lock} is held for this process: "
            "start retraining with `retrain` (or a trigger), not --lock-held."
        )
    if not lock_held and not lock.acquire():
        console.print("[yellow]Retraining already running; nothing to do.[/]")
        return
    with lock.heartbeat():  # the lease stays fresh however long training takes
        console.print(f"Retraining: {reason}")
        host = settings.monitoring.kubeflow_host
        if host:
            from .kubeflow import submit

            console.print(f"Submitted Kubeflow run {submit(settings, host, reason)}")
        else:
            local.run(settings)


def new_labels_since_training(settings: Settings) -> NewLabels:
    """Distinct served predictions (in the request log) labeled after the champion's training.

    Only ids the server answered count: a flood of labels for ids it never served (a client's
    bug, or abuse of /feedback) cannot start retraining.
    """
    from ..registry import champion_trained_at

    trained_at = champion_trained_at(settings)
    feedback = jsonl.read(settings.feedback_log)
    notes = [note] if (note := feedback.note()) else []
    labeled, undated = set(), 0
    for row in feedback:
        try:
            received = datetime.fromisoformat(row["time"]).timestamp()
        except (KeyError, TypeError, ValueError):
            undated += 1
            continue
        if received > trained_at and isinstance(row.get("request_id"), str):
            labeled.add(row["request_id"])
    if undated:
        notes.append(f"{settings.feedback_log}: skipped {undated} line(s) without a valid time")
    if not labeled:
        return NewLabels(0, notes)
    requests = jsonl.read(settings.request_log)
    if note := requests.note():
        notes.append(note)
    served = labeled & {r for row in requests if isinstance(r := row.get("request_id"), str)}
    if unknown := len(labeled) - len(served):
        notes.append(f"ignored {unknown} label(s) for request ids the server never answered")
    return NewLabels(len(served), notes)
