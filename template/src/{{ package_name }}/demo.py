"""`demo`: the whole loop in one command, in a scratch copy of the project, narrated.

Train and register a champion, serve it, send production-like traffic, run the drift job,
send shifted traffic, run it again, let the drift alert's webhook start a retraining, and show
what the gate and the champion decided. It runs under a temporary root (params.yaml copied),
so the project's own registry, logs and reports are untouched, and it stops every process it
started, also when interrupted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pandas as pd
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import ENV_PREFIX, Settings, load_settings
from .console import console
from .data.prepare import load_prepared
from .data.schema import FeatureSpec
from .errors import ProjectError

if TYPE_CHECKING:
    from rich.progress import TaskID

    from .pipelines.lock import RetrainLock

# What Alertmanager posts when the DataDriftDetected rule fires.
ALERT = {
    "version": "4",
    "status": "firing",
    "alerts": [{"status": "firing", "labels": {"alertname": "DataDriftDetected"}}],
}


@dataclass
class Phase:
    """One kind of traffic and what the drift job said about it: a row of the summary."""

    name: str
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    drift: str = "-"


def run(requests: int = 300, timeout: float = 300, keep: bool = False) -> tuple[list[Table], str]:
    """Run the loop; returns the summary tables and the verdict. `keep` keeps the scratch root."""
    from .pipelines import local
    from .pipelines.retraining import lock_for
    from .serving.client import serve_in_background

    original = load_settings()
    root = Path(tempfile.mkdtemp(prefix=f"{original.registry.model_name}-demo-"))
    steps = [
        "Train and register the first champion",
        "Start the server",
        "Send production-like traffic",
        "Drift job: production-like traffic",
        "Send shifted traffic",
        "Drift job: shifted traffic",
        "Drift alert -> webhook -> retraining",
    ]
    phases: list[Phase] = []
    try:
        with _scratch(original, root) as token, _progress() as progress:
            tasks = [progress.add_task(name, total=1, start=False) for name in steps]
            step = _stepper(progress, tasks)

            with step():
                settings = load_settings()
                if not local.run(settings).registered:
                    raise ProjectError("The first model failed its quality gate: see metrics.json.")
            with step(), serve_in_background(timeout=120) as client:
                prepared = load_prepared(settings)
                spec = prepared.spec
                normal = _sample(prepared.test.drop(columns=spec.target), requests)
                for name, records in (
                    ("production-like", normal),
                    ("shifted", shifted(normal, spec)),
                ):
                    settings.request_log.unlink(missing_ok=True)  # the window: this phase only
                    with step():
                        phase = _send(client, name, records.to_dict(orient="records"))
                    with step():
                        phase.drift = _drift(settings)
                    phases.append(phase)
                with step():
                    _alert(client, token, lock_for(settings), timeout)
            return [_traffic_table(phases), _registry_table(settings)], _verdict(settings)
    finally:
        if keep:
            console.print(f"The demo's project root is kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _scratch(original: Settings, root: Path) -> Iterator[str]:
    """Point the settings (and every process started from here) at `root`; yields the token."""
    shutil.copy(original.root / "params.yaml", root / "params.yaml")
    token = secrets.token_urlsafe(16)
    env = {f"{ENV_PREFIX}ROOT": str(root), f"{ENV_PREFIX}MONITORING__WEBHOOK_TOKEN": token}
    if original.data_path is not None:  # the user's own data, found from the scratch root too
        env[f"{ENV_PREFIX}DATA__PATH"] = str(original.data_path.resolve())
    saved = {name: os.environ.get(name) for name in [*env, "MLFLOW_TRACKING_URI"]}
    os.environ.update(env)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the scratch root's own SQLite registry
    try:
        yield token
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    )


def _stepper(progress: Progress, tasks: list[TaskID]) -> Callable[[], AbstractContextManager[None]]:
    """A context manager factory: each use runs the next step, shown live, ticked when done."""
    pending = iter(tasks)

    @contextmanager
    def step() -> Iterator[None]:
        task = next(pending)
        progress.start_task(task)
        yield
        progress.update(task, completed=1)
        progress.stop_task(task)

    return step


def _sample(features: pd.DataFrame, rows: int) -> pd.DataFrame:
    """`rows` records of the test split (drawn again if it is smaller), reproducibly."""
    return features.sample(rows, replace=len(features) < rows, random_state=0)


def shifted(features: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The same records after the world moved: numbers tripled and offset, rare categories."""
    moved = features.copy()
    for feature in spec.features:
        column = moved[feature.name]
        if feature.kind == "numeric":
            moved[feature.name] = column * 3 + (column.std() or 1.0)
        else:  # every record takes the category the test split shows least
            moved[feature.name] = column.value_counts().idxmin()
    return moved


def _send(client: httpx.Client, name: str, records: list[dict]) -> Phase:
    """One POST /predict per record, timed from here (what a caller would see)."""
    latencies, errors = [], 0
    for record in records:
        start = time.perf_counter()
        answer = client.post("/predict", json=record)
        latencies.append((time.perf_counter() - start) * 1000)
        errors += answer.status_code != 200
    p50, p99 = np.percentile(latencies, [50, 99])
    return Phase(name, len(records), errors, float(p50), float(p99))


def _drift(settings: Settings) -> str:
    from .monitoring import drift

    summary = drift.run(settings)
    drifted = len(summary["drifted_columns"])
    verdict = "DRIFT" if summary["dataset_drift"] else "no drift"
    return f"{verdict} ({drifted} of {len(summary['columns'])} columns)"


def _alert(client: httpx.Client, token: str, lock: RetrainLock, timeout: float) -> None:
    """What Alertmanager does on DataDriftDetected; then wait for the retraining to finish."""
    answer = client.post(
        "/webhook/drift-detected", json=ALERT, headers={"Authorization": f"Bearer {token}"}
    )
    if answer.status_code != 200 or not answer.json().get("started"):
        raise ProjectError(f"The webhook did not start a retraining: {answer.text}")
    deadline = time.monotonic() + timeout
    while lock.running():
        if time.monotonic() > deadline:
            raise ProjectError(f"Retraining did not finish within {timeout:.0f} s (logs/).")
        time.sleep(0.5)


def _traffic_table(phases: list[Phase]) -> Table:
    table = Table(title="Traffic and drift")
    for column in ("traffic", "requests", "errors", "p50 ms", "p99 ms", "drift job"):
        table.add_column(column, justify="left" if column in ("traffic", "drift job") else "right")
    for p in phases:
        table.add_row(
            p.name, str(p.requests), str(p.errors), f"{p.p50_ms:.1f}", f"{p.p99_ms:.1f}", p.drift
        )
    return table


def _registry_table(settings: Settings) -> Table:
    from .registry import versions

    table = Table(title=f"Registry: {settings.registry.model_name}")
    for column in ("version", "semver", "aliases", settings.evaluate.primary_metric, "trained by"):
        table.add_column(column)
    for version, aliases in versions(settings):
        tags = version.tags
        table.add_row(
            str(version.version),
            tags.get("semver", "?"),
            ", ".join(sorted(aliases)) or "-",
            tags.get(tags.get("primary_metric", settings.evaluate.primary_metric), "?"),
            "first training" if str(version.version) == "1" else "drift alert -> retraining",
        )
    return table


def _verdict(settings: Settings) -> str:
    """What the gated promotion decided about the retrained version, in one sentence."""
    from .registry import versions

    (newest, aliases), *older = versions(settings)
    if not older:
        return "The retrained model failed the quality gate: nothing registered, champion v1 kept."
    if "champion" in aliases:
        return f"The retrained v{newest.version} beat the champion and replaced it."
    return (
        f"The retrained v{newest.version} did not beat the champion on "
        f"{newest.tags.get('primary_metric', 'the primary metric')}: it is challenger, and the "
        "champion keeps serving (retraining on the same data rarely wins; new data would)."
    )
