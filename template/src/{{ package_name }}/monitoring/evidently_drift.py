"""The Evidently engine: DataDriftPreset's verdict per column, and the snapshot of its report.

Both profiles use it: the tabular drift job on the model's features, the LLM's on the text
statistics of its traffic (prompt and completion lengths, refusals...), one column each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from .verdicts import STAT_TESTS, ColumnDrift, DriftResult

if TYPE_CHECKING:
    from evidently.core.report import Snapshot


class Column(Protocol):
    name: str
    kind: str  # numeric or categorical


class Columns(Protocol):
    """The columns to test and their kinds: the tabular FeatureSpec, or the LLM's text stats."""

    @property
    def features(self) -> Sequence[Column]: ...
    @property
    def names(self) -> list[str]: ...
    @property
    def categorical(self) -> list[str]: ...


class Thresholds(Protocol):
    """The monitoring settings the engine reads (each profile's MonitoringSettings has them)."""

    drift_share: float
    column_threshold: float | None


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: Columns,
    monitoring: Thresholds,
    *,
    data_summary: bool = True,
) -> tuple[DriftResult, Snapshot]:
    """Evidently's DataDriftPreset verdicts, and the snapshot to render (with DataSummaryPreset)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    # Types from the feature spec, not guessed: Evidently would call a 0/1 column categorical.
    definition = DataDefinition(
        numerical_columns=[f.name for f in spec.features if f.kind == "numeric"],
        categorical_columns=spec.categorical,
    )
    presets: list[Any] = [
        DataDriftPreset(
            columns=spec.names,
            drift_share=monitoring.drift_share,
            threshold=monitoring.column_threshold,
        )
    ]
    if data_summary:
        presets.append(DataSummaryPreset(columns=spec.names))
    # Per-column verdicts are the outcomes of the preset's tests.
    snapshot = Report(presets, include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),  # current first
        Dataset.from_pandas(reference, data_definition=definition),
    )
    columns = _columns(snapshot.dict(), spec)
    return DriftResult(columns, monitoring.drift_share, engine="evidently"), snapshot


def _columns(results: dict[str, Any], spec: Columns) -> list[ColumnDrift]:
    failed = {t["metric_config"]["metric_id"] for t in results["tests"] if t["status"] == "FAIL"}
    kinds = {f.name: f.kind for f in spec.features}
    found = {}
    for metric in results["metrics"]:
        config = metric["config"]
        if config["type"] != "evidently:metric_v2:ValueDrift":
            continue
        test = STAT_TESTS.get(config["method"])
        found[config["column"]] = ColumnDrift(
            column=config["column"],
            kind=kinds[config["column"]],
            test=test.name if test else config["method"],
            test_title=config["method"],
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            drift_if=test.drift_if if test else "?",
            drifted=metric["id"] in failed,
        )
    return [found[name] for name in spec.names]
