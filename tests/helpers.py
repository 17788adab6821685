"""Render the template the way users do (copier, from this repository's git HEAD)."""

from __future__ import annotations

import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
}


def render(dst: Path, answers: dict[str, Any], tasks: bool = False) -> Path:
    """Copy the template into `dst` with `answers` (defaults for the rest)."""
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns that uncommitted changes are included
        copier.run_copy(
            str(ROOT),
            dst,
            data=answers,
            defaults=True,
            unsafe=True,  # the template's own tasks: git init, dvc init, first commit
            skip_tasks=not tasks,
            vcs_ref="HEAD",
            quiet=True,
        )
    return dst


def package_of(project: Path) -> str:
    """The package a rendered project holds, as its answers file recorded it."""
    import yaml

    return yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]


def dependencies(project: Path) -> list[str]:
    """What a rendered project declares, its dev extra included."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    return [*meta["dependencies"], *meta["optional-dependencies"]["dev"]]


if __name__ == "__main__":
    # `python tests/helpers.py OUT`: the union of the smoke variants' dependencies, for nox.
    import tempfile

    sys.path.insert(0, str(ROOT))
    from tests.variants import SMOKE, SUPPORTED

    requirements: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for name in SMOKE:
            requirements |= set(dependencies(render(Path(tmp) / name, SUPPORTED[name])))
    Path(sys.argv[1]).write_text("\n".join(sorted(requirements)) + "\n")
