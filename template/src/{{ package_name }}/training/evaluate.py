"""The evaluate stage: test-set metrics, the quality gate, metrics.json for DVC."""

from __future__ import annotations

import json

import numpy as np
from sklearn import metrics as skm

from ..config import Settings
from ..console import console, step
from ..data.prepare import load_prepared
from ..tracking import connect
from . import plots
from .train import read_run


def evaluate(settings: Settings) -> dict:
    """Score the trained run on the test split and decide whether it passes the gate."""
    import mlflow

    prepared = load_prepared(settings)
    spec = prepared.spec
    run = read_run(settings)
    connect(settings)
    with step("Scoring the test split"):
        model = mlflow.sklearn.load_model(run["model_uri"])
        x_test, y_test = spec.split(prepared.test)
        proba = model.predict_proba(x_test)
    scores = classification_metrics(y_test, proba)
    failures = gate_failures(scores, settings.evaluate.gate)
    matrix = skm.confusion_matrix(y_test, proba.argmax(axis=1), labels=range(len(spec.classes)))
    figure = plots.confusion_matrix(
        matrix, spec.classes, settings.artifacts_dir / "confusion_matrix.png"
    )
    with mlflow.start_run(run_id=run["run_id"]):
        mlflow.log_metrics(scores)
        mlflow.log_artifact(str(figure), "plots")
        mlflow.set_tag("quality_gate", "passed" if not failures else "failed")
    report = {
        "run_id": run["run_id"],
        "primary_metric": settings.evaluate.primary_metric,
        "metrics": scores,
        "gate": {"passed": not failures, "failures": failures, "minimums": settings.evaluate.gate},
    }
    settings.metrics_file.write_text(json.dumps(report, indent=2))
    _print(report)
    return report


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Binary metrics score the last class (e.g. 1 = fraud); more classes are macro-averaged."""
    predicted = proba.argmax(axis=1)
    binary = proba.shape[1] == 2
    average = "binary" if binary else "macro"
    roc_auc = (
        skm.roc_auc_score(y_true, proba[:, 1])
        if binary
        else skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=range(proba.shape[1]))
    )
    kwargs = {"average": average, "zero_division": 0}
    return {
        "roc_auc": round(float(roc_auc), 5),
        "f1": round(float(skm.f1_score(y_true, predicted, **kwargs)), 5),
        "precision": round(float(skm.precision_score(y_true, predicted, **kwargs)), 5),
        "recall": round(float(skm.recall_score(y_true, predicted, **kwargs)), 5),
        "accuracy": round(float(skm.accuracy_score(y_true, predicted)), 5),
    }


def gate_failures(scores: dict[str, float], minimums: dict[str, float]) -> list[str]:
    """One readable line per metric under its minimum; empty when the model passes."""
    return [
        f"{name} {scores[name]:.3f} < {minimum:.3f}"
        for name, minimum in minimums.items()
        if scores[name] < minimum
    ]


def _print(report: dict) -> None:
    scores = "  ".join(f"{k}={v:.3f}" for k, v in report["metrics"].items())
    console.print(f"Test metrics: {scores}")
    if report["gate"]["passed"]:
        console.print("[green]Quality gate passed.[/]")
    else:
        console.print(f"[red]Quality gate failed:[/] {'; '.join(report['gate']['failures'])}")
