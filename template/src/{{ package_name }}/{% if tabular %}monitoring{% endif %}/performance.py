"""Model performance on labeled production data: predictions joined with /feedback labels.

Concept drift shows here first: inputs may look familiar while the answers go wrong. The job
scores the latest `monitoring.accuracy_window` labeled predictions and exports
`model_accuracy_current` (and F1, ROC AUC) for the accuracy-SLO alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import jsonl
from ..config import Settings
from ..errors import ProjectError
from .exporter import export

JOB = "performance"
# What a line must hold to be scored; a line without them (torn, foreign) is skipped and counted.
PREDICTION_FIELDS = {"time": str, "prediction": str, "probabilities": dict}
LABEL_FIELDS = {"request_id": str, "label": str}


@dataclass(frozen=True)
class Labeled:
    """Served predictions that received a label, newest last, and warnings for the output."""

    frame: pd.DataFrame
    notes: list[str]


@dataclass(frozen=True)
class Performance:
    scores: dict[str, float]
    notes: list[str]
    below_slo: bool


def run(settings: Settings) -> Performance:
    """Score the latest labeled predictions and export the gauges."""
    labeled = labeled_predictions(settings)
    scores = score(labeled.frame)
    export(scores, job=JOB, settings=settings)
    return Performance(scores, labeled.notes, below_slo(scores, settings.monitoring.accuracy_slo))


def labeled_predictions(settings: Settings) -> Labeled:
    """Served predictions that received a label, newest last (one row per request_id)."""
    labels, label_notes = _read(
        settings.feedback_log, LABEL_FIELDS, "feedback log (POST /feedback)"
    )
    predictions, notes = _read(
        settings.request_log, PREDICTION_FIELDS, "request log (the server writes it)"
    )
    if "request_id" not in predictions:
        raise ProjectError(
            f"{settings.request_log} has no request_id column: serve with this version."
        )
    labels = labels.drop_duplicates("request_id", keep="last")[["request_id", "label"]]
    joined = predictions.merge(labels, on="request_id", how="inner")
    if joined.empty:
        raise ProjectError("No feedback label matches a logged prediction (check request_id).")
    window = joined.sort_values("time").tail(settings.monitoring.accuracy_window)
    return Labeled(window, label_notes + notes)


def _read(path: Path, fields: dict[str, type], what: str) -> tuple[pd.DataFrame, list[str]]:
    """The usable rows of a JSONL log, and a warning per kind of line that was skipped."""
    lines = jsonl.read(path)
    rows = [row for row in lines if _has(row, fields)]
    notes = [note] if (note := lines.note()) else []
    if len(rows) < len(lines):
        notes.append(
            f"{path}: skipped {len(lines) - len(rows)} line(s) without {', '.join(fields)}"
        )
    if not rows:
        found = f" ({'; '.join(notes)})" if notes else ""
        raise ProjectError(f"No {what} at {path}{found}.")
    return pd.DataFrame(rows), notes


def _has(row: dict[str, Any], fields: dict[str, type]) -> bool:
    return all(isinstance(row.get(name), kind) for name, kind in fields.items())


def score(joined: pd.DataFrame) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC of the logged predictions against the labels."""
    from sklearn import metrics as skm

    truth, predicted = joined["label"].astype(str), joined["prediction"].astype(str)
    classes = sorted(set(truth) | set(predicted) | set(joined["probabilities"].iloc[0]))
    scores = {
        "model_accuracy_current": skm.accuracy_score(truth, predicted),
        "model_labeled_predictions": float(len(joined)),
    }
    if len(classes) == 2:
        positive = classes[-1]
        scores["model_f1_current"] = skm.f1_score(
            truth, predicted, pos_label=positive, zero_division=0
        )
        if truth.nunique() == 2:  # AUC needs both classes among the labels
            proba = joined["probabilities"].map(lambda p: p[positive])
            scores["model_roc_auc_current"] = skm.roc_auc_score(truth == positive, proba)
    else:
        scores["model_f1_current"] = skm.f1_score(
            truth, predicted, average="macro", zero_division=0
        )
    return {name: round(float(value), 5) for name, value in scores.items()}


def below_slo(scores: dict[str, float], slo: float) -> bool:
    return scores["model_accuracy_current"] < slo
