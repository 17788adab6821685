"""The train stage: fit on the prepared split and log everything to the tracker."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..config import Settings
from ..console import console, step
from ..data.prepare import Prepared, load_prepared
from ..errors import ProjectError
from ..tracking import connect
from . import plots
from .model import FAMILY, build_model, pip_requirements, trusted_types

RUN_FILE = "train_run.json"
IMPORTANCE_SAMPLE = 2_000


def train(settings: Settings) -> dict[str, str]:
    """Fit, log params, plots and the model (signature, explicit requirements); returns the run."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.inspection import permutation_importance

    prepared = load_prepared(settings)
    spec = prepared.spec
    x_train, y_train = spec.split(prepared.train)
    x_test, y_test = spec.split(prepared.test)
    model = build_model(spec, settings.model.params, settings.train.seed)
    connect(settings)
    out = settings.artifacts_dir
    with mlflow.start_run() as run:
        with step(f"Training {FAMILY} on {len(x_train):,} rows x {len(spec.features)} features"):
            model.fit(x_train, y_train)
        with step("Computing permutation feature importance"):
            sample = x_test.sample(min(IMPORTANCE_SAMPLE, len(x_test)), random_state=0)
            scoring = "roc_auc" if len(spec.classes) == 2 else "accuracy"
            result = permutation_importance(
                model,
                sample,
                y_test[sample.index],
                scoring=scoring,
                n_repeats=3,
                random_state=0,
            )
            plots.feature_importance(
                spec.names, result.importances_mean, out / "feature_importance.png"
            )
        with step("Logging the model to MLflow"):
            mlflow.log_params({"family": FAMILY, **settings.model.params, **_data_params(prepared)})
            mlflow.set_tags(_lineage(settings, prepared.dataset, spec.fingerprint()))
            mlflow.log_artifact(str(out / "feature_importance.png"), "plots")
            mlflow.log_dict(spec.model_dump(), "feature_spec.json")
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(
                    x_train.head(100), model.predict_proba(x_train.head(100))
                ),
                input_example=x_train.head(3),
                pip_requirements=pip_requirements(),
                skops_trusted_types=trusted_types(model),
            )
    record = {"run_id": run.info.run_id, "model_uri": info.model_uri}
    _write_json(out / RUN_FILE, record)
    console.print(f"Run [bold]{run.info.run_id}[/] logged to {settings.tracking_uri}")
    return record


def params_fingerprint(settings: Settings) -> str:
    """Changes when hyperparameters or the split change: a PATCH version."""
    payload = {"model": settings.model.params, "train": settings.train.model_dump()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def _lineage(settings: Settings, dataset: dict, schema: str) -> dict[str, str]:
    return {
        "model_family": FAMILY,
        "input_schema": schema,
        "data_sha256": str(dataset["sha256"]),
        "params_sha256": params_fingerprint(settings),
        "training_dataset": f"{dataset['source']}@{str(dataset['sha256'])[:12]}",
    }


def _data_params(prepared: Prepared) -> dict[str, str | int]:
    return {"data_source": prepared.dataset["source"], "train_rows": len(prepared.train)}


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def read_run(settings: Settings) -> dict[str, str]:
    path = settings.artifacts_dir / RUN_FILE
    if not path.is_file():
        raise ProjectError(f"No training run recorded in {path}: run the 'train' step first.")
    return json.loads(path.read_text())
