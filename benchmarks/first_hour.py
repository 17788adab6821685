"""The first hour in a generated project, timed as a user lives it: make targets, nothing faked.

Renders the default project with its tasks (git, DVC, uv.lock when uv is on PATH), then times
`make setup` (venv + locked install; uv when present or installable), `make train`, `make smoke`,
`make test` (the quick suite) and, with --all, `make test-all`. A warm package cache is assumed:
run it twice and read the second table (the first fills uv's cache). Goals (idle 2 cores):
render -> first served prediction, setup included, under 30 s; `make test` under 60 s.

Run from the repository root:  python benchmarks/first_hour.py [--all] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import TELEMETRY_OFF, render  # noqa: E402  the tests' own render

console = Console()
# A user's shell, not a sandbox's: PYTHONDONTWRITEBYTECODE (set on some CI images) makes every
# process recompile every module it imports, which doubles `make train` (four dvc stages, each
# importing sklearn and MLflow) and is not what a laptop does.
USER_ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    **TELEMETRY_OFF,
}


def timed(command: list[str], cwd: Path) -> float:
    """Seconds `command` took; its output is shown only when it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=USER_ENV, capture_output=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        console.print(done.stdout.decode()[-3000:], done.stderr.decode()[-3000:])
        raise SystemExit(f"{' '.join(command)} failed with {done.returncode}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also time make test-all")
    parser.add_argument("--keep", type=Path, help="render here and keep the project")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = (args.keep or Path(tmp)) / "fraud-detection"
        start = time.perf_counter()
        render(project, {}, tasks=True)
        rows = [("render (copier copy, tasks included)", time.perf_counter() - start)]
        for target in ("setup", "train", "smoke"):
            rows.append((f"make {target}", timed(["make", target], project)))
        first_prediction = sum(seconds for _, seconds in rows)
        rows.append(("render -> first served prediction, setup included", first_prediction))
        rows.append(("make test (quick suite)", timed(["make", "test"], project)))
        if args.all:
            rows.append(("make test-all", timed(["make", "test-all"], project)))
    table = Table(title=f"First hour, default project ({os.cpu_count()} cores)")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, seconds in rows:
        table.add_row(step, f"{seconds:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
