"""The Evidently engine: DataDriftPreset's verdict per column, and the snapshot of its report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from ..data.schema import FeatureSpec
from ..params import MonitoringSettings
from .verdicts import STAT_TESTS, ColumnDrift, DriftResult

if TYPE_CHECKING:
    from evidently.core.report import Snapshot


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    monitoring: MonitoringSettings,
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


def _columns(results: dict[str, Any], spec: FeatureSpec) -> list[ColumnDrift]:
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
