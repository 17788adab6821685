"""The drift job: recent inputs (request log, batch files) against the training snapshot.

Evidently decides up to `monitoring.fast_path_rows` current rows and writes its HTML report;
above that (or when asked) `fast_drift` runs the same tests vectorised. Either way the job
writes reports/drift/summary.json and a bar chart of the scores, and exports the gauges that
alert rules and dashboards read (see `gauges`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..config import MonitoringSettings, Settings
from ..console import console
from ..data.load import read_table
from ..data.prepare import load_prepared
from ..data.schema import FeatureSpec
from ..errors import ProjectError
from .exporter import Gauges, export, textfile

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from rich.table import Table

JOB = "drift"
DESCRIPTIONS = {
    "drift_dataset_drift": "1 if at least monitoring.drift_share of the features drifted.",
    "drift_share": "Share of feature columns whose drift test fired.",
    "drift_feature_score": "Drift test statistic per feature (p-value or distance).",
    "drift_feature_drifted": "1 if the feature's drift test fired.",
    "drift_rows_current": "Rows of current data tested.",
    "drift_last_run_timestamp_seconds": "When the drift job last finished.",
}


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numeric or categorical, from the feature spec
    test: str  # Evidently's name for the stat test: ks, wasserstein, jensenshannon...
    test_title: str
    score: float
    threshold: float
    drift_if: str  # "<", "<=" (p-values) or ">=" (distances)
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    drift_share_threshold: float
    engine: str  # evidently or fast

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.columns)

    @property
    def dataset_drift(self) -> bool:
        return self.share >= self.drift_share_threshold  # Evidently's rule (get_dataset_drift)


def run(
    settings: Settings, files: Sequence[Path] = (), *, with_log: bool = False, fast: bool = False
) -> dict[str, Any]:
    """Test current data for drift; write report, summary and plot; export the gauges."""
    reference, spec, reference_source = load_reference(settings)
    current, sources, notes = read_current(settings, spec, files, with_log)
    for note in notes:
        console.print(f"[yellow]Warning:[/] {note}")
    out = settings.reports_dir / JOB
    out.mkdir(parents=True, exist_ok=True)
    html = out / "report.html"
    result = _decide(reference, current, spec, settings.monitoring, fast=fast, html=html)
    root = settings.root
    summary = summarise(result, len(reference), len(current), sources, notes)
    summary["reference"] = reference_source
    summary["outputs"] = {
        "summary": _relative(out / "summary.json", root),
        "report_html": _relative(html, root) if html.exists() else None,
        "plot": _relative(plot_scores(result, out / "scores.png"), root),
        "metrics": settings.monitoring.pushgateway_url or _relative(textfile(settings, JOB), root),
    }
    _write_json(out / "summary.json", summary)
    export(gauges(result, len(current)), job=JOB, settings=settings, descriptions=DESCRIPTIONS)
    return summary


def load_reference(settings: Settings) -> tuple[pd.DataFrame, FeatureSpec, str]:
    """The training snapshot: data/prepared when this checkout trained, else the champion's.

    A scheduled job in a container has no data/prepared: it takes the reference sample the
    champion's training run logged (`reference.parquet`), so it compares with what the served
    model really saw.
    """
    if (settings.prepared_dir / "feature_spec.json").is_file():
        prepared = load_prepared(settings)
        source = _relative(settings.prepared_dir / "train.parquet", settings.root)
        return prepared.train[prepared.spec.names], prepared.spec, source
    import mlflow

    from ..serving.model import load_model

    try:
        champion = load_model(settings)
    except ProjectError as exc:
        raise ProjectError(
            f"No training snapshot: {settings.prepared_dir} is missing (run the 'prepare' step "
            f"first) and the champion's cannot be fetched: {exc}"
        ) from None
    run_id = champion.run_id
    frame = pd.read_parquet(
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/reference.parquet")
    )
    return frame[champion.spec.names], champion.spec, f"runs:/{run_id}/reference.parquet"


def _decide(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    monitoring: MonitoringSettings,
    *,
    fast: bool,
    html: Path,
) -> DriftResult:
    """Evidently, with its HTML report; the fast path above monitoring.fast_path_rows."""
    if fast or len(current) > monitoring.fast_path_rows:
        from .fast_drift import compare

        html.unlink(missing_ok=True)  # a report from an earlier run would contradict this one
        return compare(reference, current, spec, monitoring)
    result, snapshot = evidently_report(reference, current, spec, monitoring)
    snapshot.save_html(str(html))
    return result


# Current data -------------------------------------------------------------------------------


def read_current(
    settings: Settings, spec: FeatureSpec, files: Sequence[Path], with_log: bool
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The current rows (features only, typed like the reference), their sources, and warnings."""
    frames, sources, notes = [], [], []
    if with_log or not files:
        frame, broken = read_request_log(settings.request_log, settings.monitoring.window)
        source = _relative(settings.request_log, settings.root)
        if broken:
            notes.append(f"{source}: skipped {broken} unreadable line(s) in the window")
        frames.append((frame, source))
    frames += [(_read_batch(path), _relative(path, settings.root)) for path in files]
    checked = []
    for frame, source in frames:
        features, warnings = check_current(frame, spec, source)
        checked.append(features)
        sources.append(source)
        notes += warnings
    current = pd.concat(checked, ignore_index=True)
    minimum = settings.monitoring.min_rows
    if len(current) < minimum:
        raise ProjectError(
            f"Only {len(current):,} current rows in {', '.join(sources)}, fewer than "
            f"monitoring.min_rows ({minimum:,}): too few to tell drift from noise. Wait for more "
            "traffic, or lower monitoring.min_rows in params.yaml."
        )
    return current, sources, notes


def read_request_log(path: Path, window: int, block: int = 1 << 20) -> tuple[pd.DataFrame, int]:
    """The inputs of the latest `window` predictions, and how many lines could not be read."""
    if not path.is_file():
        raise ProjectError(
            f"No request log at {path}: no traffic to test. Serve some predictions first, or "
            "pass a batch file (CSV or Parquet) to the drift command."
        )
    records, broken = [], 0
    for line in _tail(path, window, block):
        try:
            records.append(json.loads(line)["inputs"])
        except (ValueError, KeyError, TypeError):  # a torn or foreign line must not stop the job
            broken += 1
    return pd.DataFrame.from_records(records), broken


def _tail(path: Path, count: int, block: int) -> list[bytes]:
    """The last `count` non-blank lines, read backwards: the log grows, the window does not."""
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
    return [line for lines in reversed(batches) for line in lines][-count:]


def _read_batch(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ProjectError(f"Batch file {path} does not exist.")
    return read_table(path)


def check_current(
    frame: pd.DataFrame, spec: FeatureSpec, source: str
) -> tuple[pd.DataFrame, list[str]]:
    """The feature columns, typed like the reference; bad input raises an error that names it."""
    if frame.empty:
        raise ProjectError(f"{source} has no rows: no current data to test for drift.")
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        raise ProjectError(
            f"{source} lacks feature column(s) {', '.join(map(repr, missing))}; "
            f"the model's features are {spec.names}."
        )
    empty = [name for name in spec.names if frame[name].isna().all()]
    if empty:
        raise ProjectError(
            f"{source}: column(s) {', '.join(map(repr, empty))} hold no values (all null), so "
            "their drift cannot be tested: check that the inputs are captured."
        )
    # Extra columns (ids, timestamps, predictions) are not model inputs: testing them would
    # only add noise. A renamed feature still fails above, as missing.
    extra = [str(c) for c in frame.columns if c not in spec.names and c != spec.target]
    notes = [f"{source}: ignored column(s) that are not features: {extra}"] if extra else []
    features = pd.DataFrame(
        {f.name: _typed(frame[f.name], f.kind, source) for f in spec.features}, index=frame.index
    )
    return features.reset_index(drop=True), notes


def _typed(column: pd.Series, kind: str, source: str) -> pd.Series:
    if kind == "categorical":
        return column.astype(str).where(column.notna(), None)  # categories are strings
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    parsed = pd.to_numeric(column, errors="coerce")
    junk = (parsed.isna() & column.notna()).to_numpy()
    if junk.any():
        row = int(junk.argmax())
        raise ProjectError(
            f"{source}: numeric column '{column.name}' holds {column.iloc[row]!r} in row {row}, "
            "which is not a number."
        )
    return parsed.astype(float)


# Engines ------------------------------------------------------------------------------------


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    monitoring: MonitoringSettings,
    *,
    data_summary: bool = True,
) -> tuple[DriftResult, Snapshot]:
    """Evidently's DataDriftPreset verdicts, and the snapshot to render (with DataSummaryPreset)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    # Types from the feature spec, not guessed: Evidently would call a 0/1 column categorical.
    definition = DataDefinition(
        numerical_columns=[f.name for f in spec.features if f.kind == "numeric"],
        categorical_columns=spec.categorical,
    )
    presets: list[Any] = [
        DataDriftPreset(
            columns=spec.names,
            drift_share=monitoring.drift_share,
            threshold=monitoring.column_threshold,
        )
    ]
    if data_summary:
        presets.append(DataSummaryPreset(columns=spec.names))
    # Per-column verdicts are the outcomes of the preset's tests.
    snapshot = Report(presets, include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),  # current first
        Dataset.from_pandas(reference, data_definition=definition),
    )
    columns = _evidently_columns(snapshot.dict(), spec)
    return DriftResult(columns, monitoring.drift_share, engine="evidently"), snapshot


def _evidently_columns(results: dict[str, Any], spec: FeatureSpec) -> list[ColumnDrift]:
    from .fast_drift import STAT_TESTS

    failed = {t["metric_config"]["metric_id"] for t in results["tests"] if t["status"] == "FAIL"}
    kinds = {f.name: f.kind for f in spec.features}
    found = {}
    for metric in results["metrics"]:
        config = metric["config"]
        if config["type"] != "evidently:metric_v2:ValueDrift":
            continue
        test = STAT_TESTS.get(config["method"])
        found[config["column"]] = ColumnDrift(
            column=config["column"],
            kind=kinds[config["column"]],
            test=test.name if test else config["method"],
            test_title=config["method"],
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            drift_if=test.drift_if if test else "?",
            drifted=metric["id"] in failed,
        )
    return [found[name] for name in spec.names]


# Outputs ------------------------------------------------------------------------------------


def summarise(
    result: DriftResult,
    reference_rows: int,
    current_rows: int,
    sources: list[str],
    notes: list[str],
) -> dict[str, Any]:
    """The verdict as JSON: the same shape whichever engine decided."""
    return {
        "dataset_drift": result.dataset_drift,
        "drift_share": result.share,
        "drift_share_threshold": result.drift_share_threshold,
        "drifted_columns": result.drifted,
        "columns": {
            c.column: {
                "type": c.kind,
                "test": c.test,
                "test_title": c.test_title,
                "score": c.score,
                "threshold": c.threshold,
                "drift_if": f"score {c.drift_if} threshold",
                "drifted": c.drifted,
            }
            for c in result.columns
        },
        "engine": result.engine,
        "rows": {"reference": reference_rows, "current": current_rows},
        "sources": sources,
        "warnings": notes,
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def gauges(result: DriftResult, current_rows: int) -> Gauges:
    """The job's Prometheus gauges; alert rules and dashboards depend on these names."""
    return {
        "drift_dataset_drift": float(result.dataset_drift),
        "drift_share": result.share,
        "drift_feature_score": ("feature", {c.column: c.score for c in result.columns}),
        "drift_feature_drifted": ("feature", {c.column: float(c.drifted) for c in result.columns}),
        "drift_rows_current": float(current_rows),
        "drift_last_run_timestamp_seconds": time.time(),
    }


def plot_scores(result: DriftResult, path: Path) -> Path:
    """Each feature's score against its threshold (the black mark); drifted features in red."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    groups = [
        (scale, [c for c in result.columns if (c.drift_if == ">=") == (scale == "distance")])
        for scale in ("distance", "p-value")
    ]
    groups = [(scale, columns) for scale, columns in groups if columns]
    heights = [0.4 * len(columns) + 1.2 for _, columns in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, sum(heights)), squeeze=False)
    for ax, (scale, columns) in zip(axes[:, 0], groups, strict=True):
        _bars(ax, scale, columns)
    verdict = "dataset drift" if result.dataset_drift else "no dataset drift"
    fig.suptitle(
        f"{len(result.drifted)} of {len(result.columns)} features drifted: {verdict} "
        f"(threshold {result.drift_share_threshold:.0%})"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, scale: str, columns: list[ColumnDrift]) -> None:
    names = [f"{c.column} ({c.test})" for c in columns]
    # p-values of drifted columns reach 1e-300: only a log axis shows them and the threshold.
    scores = [max(c.score, 1e-300) if scale == "p-value" else c.score for c in columns]
    ax.barh(names, scores, color=["#ef4444" if c.drifted else "#3b82f6" for c in columns])
    for row, c in enumerate(columns):
        ax.plot([c.threshold] * 2, [row - 0.4, row + 0.4], color="black", linewidth=2)
    if scale == "p-value":
        ax.set_xscale("log")
        ax.set_xlabel("p-value (drift below the mark)")
    else:
        ax.set_xlabel("distance (drift at or above the mark)")
    ax.invert_yaxis()  # features in the spec's order, top down


def summary_table(summary: dict[str, Any]) -> Table:
    """Per-feature verdicts for the terminal."""
    from rich.table import Table

    table = Table(title=f"Drift: {', '.join(summary['sources'])} vs {summary['reference']}")
    for column in ("feature", "test", "score", "threshold", "drifted"):
        table.add_column(column, justify="right" if column in ("score", "threshold") else "left")
    for name, c in summary["columns"].items():
        drifted = "[red]yes[/]" if c["drifted"] else "no"
        table.add_row(name, c["test"], f"{c['score']:.4g}", f"{c['threshold']:g}", drifted)
    return table


def verdict(summary: dict[str, Any]) -> str:
    share = f"{summary['drift_share']:.0%} of features drifted"
    limit = f"threshold {summary['drift_share_threshold']:.0%}"
    if summary["dataset_drift"]:
        return f"[bold red]DRIFT[/]: {share} ({limit}): {', '.join(summary['drifted_columns'])}"
    return f"[bold green]NO DRIFT[/]: {share} ({limit})"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write then rename, so a dashboard or CI step never reads half a summary."""
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
