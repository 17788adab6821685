"""Drift benchmark: Evidently's DataDriftPreset against the generated project's fast path.

100,000 reference rows against 1,000,000 current rows, 20 numeric and 3 categorical columns, 7 of
them shifted. Each engine runs in its own subprocess on the same Parquet files, read and checked
as the drift job does (`check_current`). Seconds are the engine's alone; "peak memory" is the
whole process's (ru_maxrss), "engine's peak" how far the engine raised the resident set above what
the process held before it ran (peak reset through /proc/self/clear_refs: Linux only). A third
subprocess only reads and checks the data: the floor both engines stand on. Evidently's time covers
`Report.run` (the verdicts), not rendering its HTML.

The code under test is the template's own, rendered with copier into a temporary folder (git HEAD
plus uncommitted changes) and imported from there; nothing is installed.

Run from the repository root:  python benchmarks/drift.py [--reference-rows N] [--current-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "fraud_detection"
NUMERIC, CATEGORICAL = 20, 3
SHIFTED = ["normal_0", "normal_5", "lognormal_1", "count_0", "few_values_0", "uniform_1", "cat_0"]
QUIET_ENV = {"DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def make_data(rows: int, seed: int, shift: bool) -> Any:
    """Columns of every shape the tests distinguish: continuous, counts, few values, categories."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    up = 1.0 if shift else 0.0
    columns: dict[str, Any] = {}
    for i in range(8):
        columns[f"normal_{i}"] = rng.normal(i + 0.4 * up * (i in (0, 5)), 1 + i / 4, rows)
    for i in range(4):
        columns[f"lognormal_{i}"] = np.round(rng.lognormal(3, 1, rows) * (1 + 2 * up * (i == 1)), 2)
    for i in range(3):
        columns[f"count_{i}"] = rng.poisson(3 + i + up * (i == 0), rows).astype(float)
    for i in range(2):
        weights = [0.7, 0.2, 0.1] if up and i == 0 else [0.4, 0.3, 0.3]
        columns[f"few_values_{i}"] = rng.choice([0.0, 1.0, 2.0], rows, p=weights)
    columns["flag"] = rng.binomial(1, 0.1, rows).astype(float)
    for i in range(2):
        columns[f"uniform_{i}"] = rng.uniform(0, 100 + 40 * up * (i == 1), rows)
    for i, size in enumerate((5, 12, 40)):
        weights = 1 / np.arange(1, size + 1) ** (0.3 if up and i == 0 else 1.0)
        values = rng.choice(
            np.array([f"c{j}" for j in range(size)], dtype=object), rows, p=weights / weights.sum()
        )
        columns[f"cat_{i}"] = values
    frame = pd.DataFrame(columns)
    frame.loc[rng.random(rows) < 0.01, ["normal_1", "lognormal_2", "cat_1"]] = None  # gaps
    return frame


def spec() -> dict[str, Any]:
    features = [
        {
            "name": name,
            "kind": "categorical" if name.startswith("cat_") else "numeric",
            "example": 0,
        }
        for name in make_data(1, 0, False).columns
    ]
    assert len(features) == NUMERIC + CATEGORICAL
    return {"target": "label", "classes": ["0", "1"], "features": features}


def render(dst: Path) -> Path:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier's DirtyLocalWarning for uncommitted changes
        copier.run_copy(
            str(REPO), dst, defaults=True, unsafe=True, skip_tasks=True, vcs_ref="HEAD", quiet=True
        )
    return dst / "src"


def worker(engine: str, data: Path, out: Path) -> None:
    """One measurement, in a fresh process: read and check the data, then run `engine` once."""
    import resource

    import pandas as pd

    config = __import__(f"{PACKAGE}.config", fromlist=["MonitoringSettings"])
    schema = __import__(f"{PACKAGE}.data.schema", fromlist=["FeatureSpec"])
    current_data = __import__(f"{PACKAGE}.monitoring.current", fromlist=["check_current"])
    evidently_drift = __import__(
        f"{PACKAGE}.monitoring.evidently_drift", fromlist=["evidently_report"]
    )
    fast_drift = __import__(f"{PACKAGE}.monitoring.fast_drift", fromlist=["compare"])
    if engine == "evidently":
        import evidently.presets  # noqa: F401  (import time is not the engine's run time)

    feature_spec = schema.FeatureSpec.model_validate_json((data / "spec.json").read_text())
    reference, _ = current_data.check_current(
        pd.read_parquet(data / "reference.parquet"), feature_spec, "reference"
    )
    current, _ = current_data.check_current(
        pd.read_parquet(data / "current.parquet"), feature_spec, "current"
    )
    monitoring = config.MonitoringSettings()
    loaded = _reset_peak()
    start = time.perf_counter()
    if engine == "fast":
        result = fast_drift.compare(reference, current, feature_spec, monitoring)
    elif engine == "evidently":
        result, _ = evidently_drift.evidently_report(
            reference, current, feature_spec, monitoring, data_summary=False
        )
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {
        "seconds": seconds,
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rise": _status("VmHWM") - loaded,
    }
    if engine != "load":
        report["columns"] = {c.column: [c.test, c.score, c.drifted] for c in result.columns}
        report["dataset_drift"] = result.dataset_drift
    out.write_text(json.dumps(report))


def _reset_peak() -> int:
    """Reset the process's peak RSS (Linux: clear_refs 5) and return the RSS now."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    """A size from /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(engine: str, src: Path, data: Path) -> dict[str, Any]:
    out = data / f"{engine}.json"
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--worker", engine, str(data), str(out)]
    subprocess.run(command, env=env, check=True)
    return json.loads(out.read_text())


def table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    evidently, fast = results["evidently"], results["fast"]
    summary = Table(
        title=f"Drift: {args.reference_rows:,} reference vs {args.current_rows:,} current rows, "
        f"{NUMERIC} numeric + {CATEGORICAL} categorical columns, {os.cpu_count()} cores"
    )
    for column in ("engine", "seconds", "peak memory", "engine's peak", "drifted", "dataset drift"):
        summary.add_column(column, justify="left" if column == "engine" else "right")
    summary.add_row("read + check data only", "", _mib(results["load"]["peak"]), "", "", "")
    for name, label in (("evidently", "Evidently DataDriftPreset"), ("fast", "fast path")):
        result = results[name]
        summary.add_row(
            label,
            f"{result['seconds']:.2f}",
            _mib(result["peak"]),
            _mib(result["rise"]),
            f"{len(_drifted(result))} of {len(result['columns'])}",
            "yes" if result["dataset_drift"] else "no",
        )
    console = Console(width=max(Console().width, 110))
    console.print(summary)
    columns = fast["columns"]
    same_tests = all(evidently["columns"][c][0] == columns[c][0] for c in columns)
    gap = max(_relative_gap(evidently["columns"][c][1], columns[c][1]) for c in columns)
    console.print(
        f"Speed-up {evidently['seconds'] / fast['seconds']:.0f}x. Same drifted columns: "
        f"{_drifted(evidently) == _drifted(fast)} ({', '.join(_drifted(fast))}; shifted on "
        f"purpose: {', '.join(SHIFTED)}). Same test per column: {same_tests}. Largest relative "
        f"score difference: {gap:.1e}."
    )


def _drifted(result: dict[str, Any]) -> list[str]:
    return [column for column, (_, _, drifted) in result["columns"].items() if drifted]


def _relative_gap(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, data, out = args.worker
        worker(engine, Path(data), Path(out))
        return
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        data = Path(tmp)
        src = render(data / "project")
        make_data(args.reference_rows, 1, shift=False).to_parquet(data / "reference.parquet")
        make_data(args.current_rows, 2, shift=True).to_parquet(data / "current.parquet")
        (data / "spec.json").write_text(json.dumps(spec()))
        results = {engine: measure(engine, src, data) for engine in ("load", "fast", "evidently")}
        table(results, args)


if __name__ == "__main__":
    main()
