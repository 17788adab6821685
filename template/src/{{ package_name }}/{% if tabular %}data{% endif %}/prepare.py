"""The prepare stage: load, validate, split, and record what the model will be trained on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from ..config import Settings
from ..errors import ProjectError
from .builtin import make_transactions
from .load import read_table, validate
from .schema import FeatureSpec


@dataclass(frozen=True)
class Prepared:
    train: pd.DataFrame
    test: pd.DataFrame
    spec: FeatureSpec
    dataset: dict[str, str | int]


def prepare(settings: Settings) -> Prepared:
    """Write train/test splits, the feature spec and the dataset fingerprint to data/prepared."""
    frame, dataset = _load(settings)
    frame, spec = validate(frame, settings.data.target, source=str(dataset["source"]))
    stratify = frame[spec.target] if frame[spec.target].value_counts().min() >= 2 else None
    train, test = train_test_split(
        frame,
        test_size=settings.train.test_size,
        random_state=settings.train.seed,
        stratify=stratify,
    )
    out = settings.prepared_dir
    out.mkdir(parents=True, exist_ok=True)
    train.to_parquet(out / "train.parquet", index=False)
    test.to_parquet(out / "test.parquet", index=False)
    spec.save(out / "feature_spec.json")
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return Prepared(train, test, spec, dataset)


def load_prepared(settings: Settings) -> Prepared:
    """Read what `prepare` wrote; tells the user to run it first when it is missing."""
    out = settings.prepared_dir
    if not (out / "feature_spec.json").is_file():
        raise ProjectError(f"No prepared data in {out}: run the 'prepare' step first.")
    return Prepared(
        train=pd.read_parquet(out / "train.parquet"),
        test=pd.read_parquet(out / "test.parquet"),
        spec=FeatureSpec.load(out / "feature_spec.json"),
        dataset=json.loads((out / "dataset.json").read_text()),
    )


def _load(settings: Settings) -> tuple[pd.DataFrame, dict[str, str | int]]:
    path = settings.data_path
    if path is None:
        rows, seed = settings.data.builtin_rows, settings.data.seed
        frame = make_transactions(rows, seed)
        source = f"builtin:transactions?rows={rows}&seed={seed}"
        digest = hashlib.sha256(source.encode()).hexdigest()
    else:
        frame = read_table(path)
        source = _relative(path, settings.root)
        digest = _sha256(path)
    return frame, {"source": source, "sha256": digest, "rows": len(frame)}


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
