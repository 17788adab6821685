"""finetune: train the LoRA adapter, log it to MLflow with its lineage, hand it to evaluate."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..config import Settings
from ..console import console
from ..data.prepare import kind_of, load_prepared
from ..tracking import connect
from .base import base_model
from .finetune import LoraParams, LossCallback, TrainParams, finetune


def train(settings: Settings) -> dict[str, str]:
    """Fine-tune on data/prepared; log params, loss curve, sizes and the adapter (only)."""
    import mlflow

    prepared = load_prepared(settings)
    base, method = base_model(settings), settings.model.method
    lora = settings.model.lora
    connect(settings)
    with mlflow.start_run() as run:
        mlflow.set_tags(lineage(settings, prepared.dataset))
        mlflow.log_params(
            {
                "base_model": settings.model.base,
                "method": method,
                **{f"lora_{key}": value for key, value in lora.model_dump().items()},
                **{f"train_{key}": value for key, value in settings.train.model_dump().items()},
                "train_rows": len(prepared.train),
                "data_source": prepared.dataset["source"],
            }
        )
        result = finetune(
            base,
            prepared.train,
            prepared.test,
            method,
            LoraParams(lora.r, lora.alpha, lora.dropout, lora.target_modules),
            TrainParams(**settings.train.model_dump()),
            settings.adapter_dir,
            preference_records=prepared.preferences or None,
            callbacks=[LossCallback(_log_loss)],
        )
        mlflow.log_metrics(
            {
                "trainable_params": result.trainable_params,
                "total_params": result.total_params,
                "train_tokens_per_second": result.train_tokens_per_second,
                **{f"final_{key}": value for key, value in result.eval_metrics.items()},
            }
        )
        # The adapter alone (its config names the base): megabytes, not the base's gigabytes.
        mlflow.log_artifacts(str(settings.adapter_dir), "adapter")
        mlflow.log_artifact(str(settings.quality_report))
    handoff = {"run_id": run.info.run_id, "model_uri": f"runs:/{run.info.run_id}/adapter"}
    settings.train_run_file.parent.mkdir(parents=True, exist_ok=True)
    settings.train_run_file.write_text(json.dumps(handoff, indent=2))
    console.print(
        f"Trained a {method} adapter on {base}: {result.trainable_params:,} trainable of "
        f"{result.total_params:,} parameters, {result.train_tokens_per_second:,.0f} tokens/s; "
        f"run {run.info.run_id}"
    )
    return handoff


def lineage(settings: Settings, dataset: dict[str, Any]) -> dict[str, str]:
    """The registry's semver reads these: another base or method is MAJOR, new data MINOR."""
    params = {"model": settings.model.model_dump(), "train": settings.train.model_dump()}
    return {
        "model_family": f"{settings.model.method}:{settings.model.base}",
        "input_schema": kind_of(settings.model.method),
        "data_sha256": str(dataset["sha256"]),
        "params_sha256": hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest(),
        "training_dataset": f"{dataset['source']}@{str(dataset['sha256'])[:12]}",
        "base_model": settings.model.base,
        "finetune_method": settings.model.method,
        "data_quality_report": settings.quality_report.name,
    }


def _log_loss(step: int, loss: float, stage: str) -> None:
    import mlflow

    mlflow.log_metric(f"{stage}_loss", loss, step=step)
