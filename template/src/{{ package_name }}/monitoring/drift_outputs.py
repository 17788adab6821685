"""What the drift job leaves behind: summary.json, the scores' bar chart, the Prometheus gauges
(names the alert rules and dashboards depend on) and the terminal's table and verdict."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exporter import Gauges, export, textfile
from .verdicts import ColumnDrift, DriftResult

if TYPE_CHECKING:
    from rich.table import Table

    from ..config import Settings

DESCRIPTIONS = {
    "drift_dataset_drift": "1 if at least monitoring.drift_share of the features drifted.",
    "drift_share": "Share of feature columns whose drift test fired.",
    "drift_feature_score": "Drift test statistic per feature (p-value or distance).",
    "drift_feature_drifted": "1 if the feature's drift test fired.",
    "drift_rows_current": "Rows of current data tested.",
    "drift_last_run_timestamp_seconds": "When the drift job last finished.",
}


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


def publish(
    summary: dict[str, Any], result: DriftResult, html: Path, settings: Settings, job: str
) -> dict[str, Any]:
    """Every drift job's end: summary.json and the chart beside `html`, then the gauges."""
    out, root = html.parent, settings.root
    summary["outputs"] = {
        "summary": relative(out / "summary.json", root),
        "report_html": relative(html, root) if html.exists() else None,
        "plot": relative(plot_scores(result, out / "scores.png"), root),
        "metrics": settings.monitoring.pushgateway_url or relative(textfile(settings, job), root),
    }
    write_json(out / "summary.json", summary)
    current_rows = summary["rows"]["current"]
    export(gauges(result, current_rows), job=job, settings=settings, descriptions=DESCRIPTIONS)
    return summary


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


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write then rename, so a dashboard or CI step never reads half a summary."""
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def relative(path: Path, root: Path) -> str:
    """`path` as the job's output shows it: relative to the project root when under it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
