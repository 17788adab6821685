"""Read a CSV or Parquet file and check it before anything trains on it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import ProjectError
from .schema import Feature, FeatureSpec

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
# A column is meant to be numeric when at least this share of its values parse as numbers.
NUMERIC_SHARE = 0.9


def read_table(path: Path) -> pd.DataFrame:
    """Load a data file, naming the file in every error."""
    if not path.is_file():
        raise ProjectError(f"Data file {path} does not exist (set data.path in params.yaml).")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ProjectError(
            f"Data file {path} has an unsupported format '{path.suffix}': use .csv or .parquet."
        )
    try:
        frame = reader(path)
    except pd.errors.EmptyDataError:
        raise ProjectError(f"Data file {path} is empty.") from None
    except Exception as exc:  # parser errors differ between formats and engines
        raise ProjectError(f"Data file {path} could not be read: {exc}") from exc
    if frame.empty:
        raise ProjectError(f"Data file {path} has no rows.")
    return frame


def where(source: str, row: int) -> str:
    """Where the 0-based data row `row` is for the person who opens the file.

    A CSV's line in an editor: the header is line 1 (a quoted cell spanning lines would shift
    it). Other formats have no lines: the row, counted from 1.
    """
    return f"line {row + 2}" if source.lower().endswith(".csv") else f"row {row + 1}"


def validate(frame: pd.DataFrame, target: str, source: str) -> tuple[pd.DataFrame, FeatureSpec]:
    """Check the frame and learn its feature schema; returns the frame with clean dtypes."""
    if target not in frame.columns:
        raise ProjectError(
            f"{source}: target column '{target}' is missing; columns are {list(frame.columns)}. "
            "Set data.target in params.yaml."
        )
    if frame[target].isna().any():
        row = int(frame[target].isna().to_numpy().argmax())
        raise ProjectError(f"{source}: target column '{target}' is empty on {where(source, row)}.")
    if frame[target].nunique() < 2:
        raise ProjectError(f"{source}: target column '{target}' has a single class.")
    frame = frame.copy()
    features = []
    for name in frame.columns.drop(target):
        frame[name], feature = _check_column(frame[name], source)
        features.append(feature)
    if not features:
        raise ProjectError(f"{source}: no feature columns besides the target '{target}'.")
    classes = sorted(frame[target].astype(str).unique())
    frame[target] = frame[target].astype(str)
    return frame, FeatureSpec(target=target, classes=classes, features=features)


def _check_column(column: pd.Series, source: str) -> tuple[pd.Series, Feature]:
    name = str(column.name)
    present = column.dropna()
    if present.empty:
        raise ProjectError(f"{source}: column '{name}' holds no values at all.")
    if pd.api.types.is_bool_dtype(column):
        column = column.astype(float)
    missing = bool(column.isna().any())
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(float), Feature(
            name=name, kind="numeric", example=float(present.median()), missing=missing
        )
    parsed = pd.to_numeric(present, errors="coerce")
    if parsed.notna().mean() >= NUMERIC_SHARE:
        bad = parsed.isna().to_numpy().argmax()
        raise ProjectError(
            f"{source}: column '{name}' is numeric but {where(source, present.index[bad])} holds "
            f"{present.iloc[bad]!r}, which is not a number."
        )
    values = column.astype("string").astype(object).where(column.notna(), None)
    categories = sorted(present.astype(str).unique())
    example = str(present.astype(str).mode().iloc[0])
    feature = Feature(
        name=name, kind="categorical", categories=categories, example=example, missing=missing
    )
    return values, feature
