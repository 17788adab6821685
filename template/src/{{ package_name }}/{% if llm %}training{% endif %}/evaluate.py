"""evaluate: the adapter against its base on the held-out split, and the quality gate."""

from __future__ import annotations

import json
from typing import Any

from ..config import Settings
from ..console import console, step
from ..data.builtin_chat import check_answer, expected_answer, normalize_answer
from ..data.prepare import load_prepared
from ..tracking import connect, read_run
from .base import base_model
from .evaluate_llm import TASK_METRIC, gate
from .evaluate_llm import evaluate as score


def evaluate(settings: Settings) -> dict[str, Any]:
    """Score base and adapter, apply the gate, write metrics.json and log both to the run."""
    import mlflow

    run = read_run(settings)
    records = load_prepared(settings).test[: settings.evaluate.max_records]
    base = base_model(settings)
    check = check_answer if settings.data_path is None else _exact_match
    tokens = settings.evaluate.max_new_tokens
    with step(f"Scoring the base model on {len(records)} held-out records"):
        base_metrics = score(base, None, records, tokens, check=check)
    with step("Scoring the adapter"):
        adapter_metrics = score(base, settings.adapter_dir, records, tokens, check=check)
    passed, failures = gate(
        adapter_metrics, base_metrics, settings.evaluate.gate, settings.evaluate.baseline_margin
    )
    numbers = ("loss", "perplexity", TASK_METRIC)
    report = {
        "run_id": run["run_id"],
        "primary_metric": TASK_METRIC,
        "metrics": {key: adapter_metrics[key] for key in numbers},
        "baseline": {"name": "base model", "metrics": {key: base_metrics[key] for key in numbers}},
        "gate": {"passed": passed, "failures": failures},
        "samples": adapter_metrics["samples"],
    }
    settings.metrics_file.write_text(json.dumps(report, indent=2))
    connect(settings)
    with mlflow.start_run(run_id=run["run_id"]):
        mlflow.log_metrics({f"test_{key}": adapter_metrics[key] for key in numbers})
        mlflow.log_metrics({f"base_{key}": base_metrics[key] for key in numbers})
        mlflow.set_tags(
            {
                "quality_gate": "passed" if passed else "failed",
                "quality_gate_failures": "; ".join(failures),
            }
        )
    console.print(
        f"{TASK_METRIC}: adapter {adapter_metrics[TASK_METRIC]:.3f}, base "
        f"{base_metrics[TASK_METRIC]:.3f}; perplexity {adapter_metrics['perplexity']:.2f} "
        f"(base {base_metrics['perplexity']:.2f})"
    )
    console.print(
        "Quality gate passed." if passed else f"Quality gate failed: {'; '.join(failures)}"
    )
    return report


def _exact_match(record: dict[str, Any], generated: str) -> bool:
    """Your own data's task metric: the answer, normalised, is the reference's."""
    return normalize_answer(generated) == normalize_answer(expected_answer(record))
