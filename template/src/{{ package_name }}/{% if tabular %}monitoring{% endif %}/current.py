"""The drift job's current data: the request log's latest window and batch files, typed like the
reference, with every problem named (which file, which column, which row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import jsonl
from ..config import Settings
from ..data.load import read_table, where
from ..data.schema import FeatureSpec
from ..errors import ProjectError
from .drift_outputs import relative


@dataclass(frozen=True)
class Current:
    """The rows to test (features only), where they came from, and warnings for the output."""

    frame: pd.DataFrame
    sources: list[str]
    notes: list[str]


def read_current(
    settings: Settings, spec: FeatureSpec, files: Sequence[Path], with_log: bool
) -> Current:
    """The request log's window (unless only batch files are given) and the batch files."""
    frames, notes = [], []
    if with_log or not files:
        frame, skipped = read_request_log(settings.request_log, settings.monitoring.window)
        source = relative(settings.request_log, settings.root)
        if skipped:
            notes.append(f"{source}: skipped {skipped} unreadable line(s) in the window")
        frames.append((frame, source))
    frames += [(_read_batch(path), relative(path, settings.root)) for path in files]
    checked, sources = [], []
    for frame, source in frames:
        features, warnings = check_current(frame, spec, source)
        checked.append(features)
        sources.append(source)
        notes += warnings
    current = pd.concat(checked, ignore_index=True)
    minimum = settings.monitoring.min_rows
    if len(current) < minimum:
        raise ProjectError(
            f"Only {len(current):,} current rows in {', '.join(sources)}, fewer than "
            f"monitoring.min_rows ({minimum:,}): too few to tell drift from noise. Wait for more "
            "traffic, or lower monitoring.min_rows in params.yaml."
        )
    return Current(current, sources, notes)


def read_request_log(path: Path, window: int, block: int = 1 << 20) -> tuple[pd.DataFrame, int]:
    """The inputs of the latest `window` predictions, and how many lines could not be used."""
    if not path.is_file():
        raise ProjectError(
            f"No request log at {path}: no traffic to test. Serve some predictions first, or "
            "pass a batch file (CSV or Parquet) to the drift command."
        )
    lines = jsonl.tail(path, window, block)
    # A line that parses but carries no inputs (a foreign writer) is as unusable as a torn one.
    records = [row["inputs"] for row in lines if isinstance(row.get("inputs"), dict)]
    return pd.DataFrame.from_records(records), lines.skipped + len(lines) - len(records)


def _read_batch(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ProjectError(f"Batch file {path} does not exist.")
    return read_table(path)


def check_current(
    frame: pd.DataFrame, spec: FeatureSpec, source: str
) -> tuple[pd.DataFrame, list[str]]:
    """The feature columns, typed like the reference; bad input raises an error that names it."""
    if frame.empty:
        raise ProjectError(f"{source} has no rows: no current data to test for drift.")
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        raise ProjectError(
            f"{source} lacks feature column(s) {', '.join(map(repr, missing))}; "
            f"the model's features are {spec.names}."
        )
    empty = [name for name in spec.names if frame[name].isna().all()]
    if empty:
        raise ProjectError(
            f"{source}: column(s) {', '.join(map(repr, empty))} hold no values (all null), so "
            "their drift cannot be tested: check that the inputs are captured."
        )
    # Extra columns (ids, timestamps, predictions) are not model inputs: testing them would
    # only add noise. A renamed feature still fails above, as missing.
    extra = [str(c) for c in frame.columns if c not in spec.names and c != spec.target]
    notes = [f"{source}: ignored column(s) that are not features: {extra}"] if extra else []
    features = pd.DataFrame(
        {f.name: _typed(frame[f.name], f.kind, source) for f in spec.features}, index=frame.index
    )
    return features.reset_index(drop=True), notes


def _typed(column: pd.Series, kind: str, source: str) -> pd.Series:
    if kind == "categorical":
        return column.astype(str).where(column.notna(), None)  # categories are strings
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    parsed = pd.to_numeric(column, errors="coerce")
    junk = (parsed.isna() & column.notna()).to_numpy()
    if junk.any():
        row = int(junk.argmax())
        raise ProjectError(
            f"{source}: numeric column '{column.name}' holds {column.iloc[row]!r} on "
            f"{where(source, row)}, "
            "which is not a number."
        )
    return parsed.astype(float)
