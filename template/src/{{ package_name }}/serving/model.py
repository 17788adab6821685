"""Load a registered model by alias, with the feature spec it was trained on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import registry
from ..config import Settings
from ..console import console
from ..data.schema import FeatureSpec


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
        if self._fast is not None:
            return self._fast.predict_proba(records)
        return self.estimator.predict_proba(
            pd.DataFrame.from_records(records, columns=self.spec.names)
        )

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predict raw records (original column names) in one call to the estimator."""
        proba = self.predict_proba(records)
        labels = np.asarray(self.spec.classes)[proba.argmax(axis=1)]
        return [
            {
                "prediction": str(label),
                "probabilities": dict(zip(self.spec.classes, row.round(6).tolist(), strict=True)),
                "model_version": self.version,
            }
            for label, row in zip(labels, proba, strict=True)
        ]


class FastPath:
    """The pipeline's ordinal encoding done with dict look-ups, then the classifier itself.

    scikit-learn's ColumnTransformer spends about 1.3 ms per call validating a DataFrame, more
    than the trees take; serving calls it for every batch. The look-ups come from the fitted
    encoder, and `build` only returns a fast path whose output equals the pipeline's.
    """

    def __init__(self, columns: list[str], lookups: dict[str, dict[str, float]], classifier: Any):
        self.columns, self.lookups, self.classifier = columns, lookups, classifier

    @classmethod
    def build(cls, estimator: Any, spec: FeatureSpec) -> FastPath | None:
        try:
            encoder, classifier = estimator[0], estimator[-1]
            ordinal = encoder.named_transformers_["categorical"]
            lookups = {
                name: {str(value): float(code) for code, value in enumerate(categories)}
                for name, categories in zip(
                    ordinal.feature_names_in_, ordinal.categories_, strict=True
                )
            }
            fast = cls(list(encoder.get_feature_names_out()), lookups, classifier)
        except (AttributeError, KeyError, TypeError, IndexError):
            return None
        check = [spec.example, {**spec.example, **{name: "__unseen__" for name in lookups}}]
        expected = estimator.predict_proba(pd.DataFrame.from_records(check, columns=spec.names))
        if not np.array_equal(fast.predict_proba(check), expected):
            console.print("[yellow]Fast inference path disagrees with the pipeline; not used.[/]")
            return None
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
        return self.classifier.predict_proba(matrix)


def load_model(settings: Settings, alias: str | None = None) -> LoadedModel:
    """The version behind `alias` (default: serving.model_alias, i.e. the champion)."""
    found = registry.lookup(settings, alias or settings.serving.model_alias)
    return LoadedModel(
        name=found.name,
        version=found.version,
        semver=found.semver,
        estimator=registry.load_verified(found),
        spec=found.spec(),
        run_id=found.run_id,
    )
