"""Model performance on labeled production data: predictions joined with /feedback labels.

Concept drift shows here first: inputs may look familiar while the answers go wrong. The job
scores the latest `monitoring.accuracy_window` labeled predictions and exports
`model_accuracy_current` (and F1, ROC AUC) for the accuracy-SLO alert.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..config import Settings
from ..errors import ProjectError


def labeled_predictions(settings: Settings) -> pd.DataFrame:
    """Served predictions that received a label, newest last (one row per request_id)."""
    labels = _read_jsonl(settings.feedback_log, "feedback log (POST /feedback)")
    predictions = _read_jsonl(settings.request_log, "request log (the server writes it)")
    if "request_id" not in predictions:
        raise ProjectError(
            f"{settings.request_log} has no request_id column: serve with this version."
        )
    labels = labels.drop_duplicates("request_id", keep="last")[["request_id", "label"]]
    joined = predictions.merge(labels, on="request_id", how="inner")
    if joined.empty:
        raise ProjectError("No feedback label matches a logged prediction (check request_id).")
    return joined.sort_values("time").tail(settings.monitoring.accuracy_window)


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


def _read_jsonl(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        raise ProjectError(f"No {what} at {path}.")
    with path.open() as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return pd.DataFrame(rows)


def below_slo(scores: dict[str, float], slo: float) -> bool:
    return scores["model_accuracy_current"] < slo
