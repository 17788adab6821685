"""The feature schema learnt from the training data; training, registry and serving share it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ..errors import ProjectError
from ..tracking import redact

if TYPE_CHECKING:
    from ..registry import AliasedVersion


class Feature(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    categories: list[str] = []
    example: float | str
    # Whether the training data had missing values in this column: only then does serving
    # accept null for it (specs written before this field load as False).
    missing: bool = False


class FeatureSpec(BaseModel):
    target: str
    classes: list[str]
    features: list[Feature]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def example(self) -> dict[str, float | str]:
        return {f.name: f.example for f in self.features}

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Features as the model takes them, and the target as indices into `classes`."""
        labels = frame[self.target].astype(str)
        return frame[self.names], labels.map({c: i for i, c in enumerate(self.classes)}).to_numpy()

    def fingerprint(self) -> str:
        """Changes when the model's inputs change (names, kinds, order): a MAJOR version."""
        shape = [(f.name, f.kind) for f in self.features] + [("__target__", self.target)]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls.model_validate_json(path.read_text())


def registered_spec(found: AliasedVersion) -> FeatureSpec:
    """The feature spec a registered version was trained on (its run's feature_spec.json)."""
    import mlflow

    try:
        raw = mlflow.artifacts.load_dict(f"runs:/{found.run_id}/feature_spec.json")
        return FeatureSpec.model_validate(raw)
    except Exception as exc:
        raise ProjectError(
            f"{found.name} v{found.version}: its run's feature_spec.json cannot be read "
            f"({redact(exc)}); retrain, or point the alias at another version."
        ) from None
