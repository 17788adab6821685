"""The drift job: recent inputs (request log, batch files) against the training snapshot.

Evidently decides up to `monitoring.fast_path_rows` current rows and writes its HTML report;
above that (or when asked) `fast_drift` runs the same tests vectorised. Either way the job
writes summary.json and a bar chart of the scores to `settings.report_dir("drift")`, and exports
the gauges that alert rules and dashboards read (`drift_outputs`).

    current.py          the current window: request log, batch files, typed like the reference
    evidently_drift.py  the Evidently engine        fast_drift.py  the vectorised engine
    verdicts.py         what either engine returns  drift_outputs.py  summary, plot, gauges
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from ..console import console
from ..data.schema import FeatureSpec
from ..errors import ProjectError
from ..params import MonitoringSettings
from . import drift_outputs as outputs
from .current import read_current
from .drift_outputs import relative
from .verdicts import DriftResult

JOB = "drift"


@dataclass(frozen=True)
class Reference:
    """The data the model was trained on (features only), its spec, and where it came from."""

    frame: pd.DataFrame
    spec: FeatureSpec
    source: str


def run(
    settings: Settings, files: Sequence[Path] = (), *, with_log: bool = False, fast: bool = False
) -> dict[str, Any]:
    """Test current data for drift; write report, summary and plot; export the gauges."""
    reference = load_reference(settings)
    current = read_current(settings, reference.spec, files, with_log)
    for note in current.notes:
        console.print(f"[yellow]Warning:[/] {note}")
    out = settings.report_dir(JOB)
    out.mkdir(parents=True, exist_ok=True)
    html = out / "report.html"
    result = decide(
        reference.frame, current.frame, reference.spec, settings.monitoring, fast=fast, html=html
    )
    summary = outputs.summarise(
        result, len(reference.frame), len(current.frame), current.sources, current.notes
    )
    summary["reference"] = reference.source
    return outputs.publish(summary, result, html, settings, JOB)


def load_reference(settings: Settings) -> Reference:
    """The training snapshot: data/prepared when this checkout trained, else the served model's.

    A scheduled job in a container has no data/prepared: it takes the reference sample that the
    training run of the version behind serving.model_alias logged (`settings.reference_file`'s
    name), so it compares with what the served model really saw.
    """
    from ..data.prepare import load_prepared

    try:
        prepared = load_prepared(settings)
    except ProjectError as missing:
        return _registered_reference(settings, missing)
    source = relative(settings.prepared_dir / "train.parquet", settings.root)
    return Reference(prepared.train[prepared.spec.names], prepared.spec, source)


def _registered_reference(settings: Settings, missing: ProjectError) -> Reference:
    from .. import registry
    from ..data.schema import registered_spec

    try:
        found = registry.lookup(settings, settings.serving.model_alias)
        spec = registered_spec(found)
    except ProjectError as exc:
        raise ProjectError(
            f"No training snapshot: {missing} The served model's cannot be fetched either: {exc}"
        ) from None
    uri = f"runs:/{found.run_id}/{settings.reference_file.name}"
    return Reference(_download_parquet(uri, found)[spec.names], spec, uri)


def _download_parquet(uri: str, found: Any) -> pd.DataFrame:
    import mlflow

    from ..tracking import redact

    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(uri, dst_path=tmp)
        except Exception as exc:
            raise ProjectError(
                f"{found.name} v{found.version}: its reference sample {uri} cannot be fetched "
                f"({redact(exc)}); run the 'prepare' step here to test against its split instead."
            ) from None
        return pd.read_parquet(path)


def decide(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    monitoring: MonitoringSettings,
    *,
    fast: bool,
    html: Path,
) -> DriftResult:
    """Evidently, with its HTML report; the fast path above monitoring.fast_path_rows."""
    if fast or len(current) > monitoring.fast_path_rows:
        from .fast_drift import compare

        html.unlink(missing_ok=True)  # a report from an earlier run would contradict this one
        return compare(reference, current, spec, monitoring)
    from .evidently_drift import evidently_report

    result, snapshot = evidently_report(reference, current, spec, monitoring)
    snapshot.save_html(str(html))
    return result
