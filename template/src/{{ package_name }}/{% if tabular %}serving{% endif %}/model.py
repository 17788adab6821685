"""Load a registered model by alias, with the feature spec it was trained on."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import registry
from ..config import Settings
from ..console import console
from ..data.schema import FeatureSpec, registered_spec
from ..errors import ProjectError
from ..tracking import redact
from .compiled import agrees, compile_trees

# Every answer's probabilities, whatever the model family, are rounded to this many decimals.
DECIMALS = 6
# The only serialization the server will load: skops refuses types it was not told to trust,
# where pickle and cloudpickle run whatever the file says.
SERIALIZATION = "skops"


@dataclass
class LoadedModel:
    name: str
    version: str
    semver: str
    estimator: Any
    spec: FeatureSpec
    run_id: str = ""
    _fast: FastPath | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._fast = FastPath.build(self.estimator, self.spec)

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Records may hold None where the spec allows missing values: NaN for numbers."""
        if self._fast is not None:
            return self._fast.predict_proba(records)
        return self.estimator.predict_proba(frame(records, self.spec))

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predict raw records (original column names) in one call to the estimator."""
        # float64 first: XGBoost answers in float32, whose rounded values print as 0.12345699...
        proba = np.asarray(self.predict_proba(records), dtype=np.float64).round(DECIMALS)
        labels = np.asarray(self.spec.classes)[proba.argmax(axis=1)]
        return [
            {
                "prediction": str(label),
                "probabilities": dict(zip(self.spec.classes, row.tolist(), strict=True)),
                "model_version": self.version,
            }
            for label, row in zip(labels, proba, strict=True)
        ]


def frame(records: list[dict[str, Any]], spec: FeatureSpec) -> pd.DataFrame:
    """Records as the pipeline takes them; a numeric column of nulls only is NaN, not object."""
    numeric = {f.name: float for f in spec.features if f.kind == "numeric"}
    return pd.DataFrame.from_records(records, columns=spec.names).astype(numeric)


class FastPath:
    """The pipeline's ordinal encoding done with dict look-ups, then the classifier's trees.

    scikit-learn's ColumnTransformer spends about 1.3 ms per call validating a DataFrame, more
    than the trees take; serving calls it for every batch. The look-ups come from the fitted
    encoder, the trees are predicted by treelite where it imports them (compiled.py), and
    `build` only returns a fast path whose output matches the pipeline's on probe records.
    """

    def __init__(
        self,
        columns: list[str],
        lookups: dict[str, dict[str | None, float]],
        predict_matrix: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        self.columns, self.lookups, self.predict_matrix = columns, lookups, predict_matrix

    @classmethod
    def build(cls, estimator: Any, spec: FeatureSpec) -> FastPath | None:
        try:
            encoder, classifier = estimator[0], estimator[-1]
            ordinal = encoder.named_transformers_["categorical"]
            lookups = {
                name: _lookup(categories)
                for name, categories in zip(
                    ordinal.feature_names_in_, ordinal.categories_, strict=True
                )
            }
            fast = cls(list(encoder.get_feature_names_out()), lookups, classifier.predict_proba)
        except (AttributeError, KeyError, TypeError, IndexError):
            return None
        probes = _probes(spec, lookups)
        expected = estimator.predict_proba(frame(probes, spec))
        if not np.array_equal(fast.predict_proba(probes), expected):
            console.print("[yellow]Fast inference path disagrees with the pipeline; not used.[/]")
            return None
        trees = compile_trees(classifier)
        if trees is not None:
            library, fast.predict_matrix = fast.predict_matrix, trees
            if not agrees(fast.predict_proba(probes), expected):
                console.print("[yellow]treelite disagrees with the model; not used.[/]")
                fast.predict_matrix = library
        return fast

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        nan = float("nan")
        matrix = np.empty((len(records), len(self.columns)))
        for j, name in enumerate(self.columns):
            lookup = self.lookups.get(name)
            if lookup is None:
                matrix[:, j] = [record[name] for record in records]
            else:
                matrix[:, j] = [lookup.get(record[name], nan) for record in records]
        return self.predict_matrix(matrix)


def _probes(spec: FeatureSpec, lookups: dict[str, dict[str | None, float]]) -> list[dict]:
    """Records that take every branch kind: each category, unseen ones, missing values, the text
    "None", and numbers around and far from the example, one feature changed at a time."""
    base = spec.example
    probes = [
        base,
        {**base, **{name: "__unseen__" for name in lookups}},
        {**base, **{f.name: None for f in spec.features if f.missing}},
        {**base, **{name: "None" for name in lookups}},
    ]
    for feature in spec.features:
        if feature.kind == "categorical":
            values: list[Any] = list(lookups.get(feature.name, {}))
        else:
            x = float(feature.example)
            values = [0.0, -1.0, x / 2, x * 2, x * 10 + 1, -1e9, 1e9]
        probes += [{**base, feature.name: value} for value in values]
    return probes


def _lookup(categories: Any) -> dict[str | None, float]:
    """Category -> code, as the fitted encoder maps them.

    None (missing in the training data) is a category of its own there, NaN is not, and the text
    "None" is an unseen category, not the missing value.
    """
    return {
        (None if value is None else str(value)): float(code)
        for code, value in enumerate(categories)
        if value is None or not (isinstance(value, float) and np.isnan(value))
    }


def load_model(settings: Settings, alias: str | None = None) -> LoadedModel:
    """The version behind `alias` (default: serving.model_alias, i.e. the champion)."""
    found = registry.lookup(settings, alias or settings.serving.model_alias)
    return LoadedModel(
        name=found.name,
        version=found.version,
        semver=found.semver,
        estimator=load_verified(found),
        spec=registered_spec(found),
        run_id=found.run_id,
    )


def load_verified(found: registry.AliasedVersion) -> Any:
    """The estimator of `found`, only if its files are those the registry recorded."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    f"models:/{found.name}/{found.version}", dst_path=tmp
                )
            )
        except Exception as exc:
            raise ProjectError(
                f"{found.name} v{found.version}: its files cannot be fetched ({redact(exc)})."
            ) from None
        if not (local / "MLmodel").is_file():
            raise ProjectError(
                f"{found.name} v{found.version}: its model files are missing from the artifact "
                "store (was mlartifacts/ deleted?); retrain and register it (make train)."
            )
        serialization = registry.verify_files(found, local)["model_serialization"]
        if serialization != SERIALIZATION:
            raise ProjectError(
                f"{found.name} v{found.version} is serialised with '{serialization}', not "
                f"{SERIALIZATION}: refusing to load."
            )
        try:
            return mlflow.sklearn.load_model(str(local))
        except Exception as exc:
            raise ProjectError(
                f"{found.name} v{found.version} does not load ({redact(exc)}): retrain it."
            ) from None
