"""Smoke tier: generated projects installed into this (shared) environment, run for real.

nox installs the union of the smoke variants' dependencies once; each project is then added
with `pip install --no-deps -e`, so heavy packages are never installed per variant.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.helpers import TELEMETRY_OFF, dependencies, package_of, render
from tests.variants import SMOKE, SUPPORTED

pytestmark = pytest.mark.smoke
VENV = Path(sys.prefix)


def _env() -> dict[str, str]:
    env = {**os.environ, **TELEMETRY_OFF, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _run(command: list[str], cwd: Path, returncode: int = 0) -> str:
    result = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == returncode, (
        f"{' '.join(command)} gave {result.returncode}:\n{output[-4000:]}"
    )
    return " ".join(output.split())  # rich wraps long lines


@pytest.fixture(scope="module", params=SMOKE, ids=SMOKE)
def project(request, tmp_path_factory, monkeypatch_module) -> tuple[dict, Path]:
    answers = SUPPORTED[request.param]
    monkeypatch_module.setenv("PATH", _env()["PATH"])  # the tasks' `dvc init` needs dvc
    path = render(tmp_path_factory.mktemp(request.param) / "project", answers, tasks=True)
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."], path)
    yield answers, path
    name = tomllib.loads((path / "pyproject.toml").read_text())["project"]["name"]
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", name], check=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_shared_environment_satisfies_the_project(project):
    _, path = project
    for line in dependencies(path):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # for another platform (xgboost's GPU build off Linux)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            pytest.fail(f"{requirement.name} is not installed in the smoke environment")
        assert requirement.specifier.contains(installed, prereleases=True), (line, installed)


def test_project_test_suite_passes(project):
    answers, path = project
    # The defaults run their whole suite, the LLM profile too (its lifecycle is its own code).
    # Other tabular variants differ in family, tracker, serving or rollout: their quick suite
    # (`make test`'s) covers that code; the end-to-end and slow tests repeat the defaults' loop.
    full = answers == SUPPORTED[SMOKE[0]] or answers.get("use_case") == "llm"
    # As the project's make test-all runs it: a test file per worker, both cores busy.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"]
    command += ["--dist", "loadfile"]
    output = _run(command if full else [*command, "-m", "not e2e and not slow"], path)
    assert " passed" in output and "failed" not in output


def test_make_train_promotes_then_a_failing_model_leaves_the_champion(project):
    answers, path = project
    make = ["make", f"VENV={VENV}"]
    first = _run([*make, "train"], path)
    assert "as champion: first champion" in first

    if answers.get("use_dvc", True):
        assert "up to date" in _run([sys.executable, "-m", "dvc", "status"], path)
        _run([sys.executable, "-m", "dvc", "push"], path)
        assert any((path / ".dvc-storage").rglob("*")), "dvc push wrote nothing to the remote"

    params = yaml.safe_load((path / "params.yaml").read_text())
    params["evaluate"]["gate"][params["evaluate"]["primary_metric"]] = 0.999
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = _run([*make, "train"], path, returncode=2)  # make's own code: a recipe failed
    # The CLI's GATE_FAILED, straight from `pipeline` or through dvc repro's register stage.
    assert ("exited with 3" if answers.get("use_dvc", True) else "Error 3") in second
    assert "quality gate failed" in second and "champion v1 (1.0.0) unchanged" in second
    assert "champion" in _run([*make, "models"], path)

    answer = _run([*make, "smoke"], path)
    if answers.get("use_case") == "llm":  # the champion adapter answered through the OpenAI API
        assert '"answer"' in answer and '"question"' in answer
    else:
        assert '"prediction"' in answer and '"model_version": "1"' in answer


def test_make_demo_runs_the_whole_loop(project):
    answers, path = project
    if answers != SUPPORTED[SMOKE[0]]:
        pytest.skip("the loop's code is shared: the defaults variant runs the demo")
    # The train test above left an impossible gate in params.yaml; the demo uses the project's.
    _run(["git", "checkout", "--", "params.yaml"], path)
    output = _run(["make", f"VENV={VENV}", "demo", "REQUESTS=120"], path)
    for traffic in ("production-like", "shifted"):  # every request answered, whatever borders
        assert re.search(rf"{traffic}\W+120\W+0\b", output), output
    assert "no drift" in output and "DRIFT" in output
    assert "drift alert -> retraining" in output and "champion" in output


def test_serving_option_targets_serve_the_champion(project, monkeypatch, tmp_path):
    """After `make train`: BentoML builds and serves v1; Triton's repository holds v1 as ONNX."""
    answers, path = project
    make = ["make", f"VENV={VENV}"]
    serving = answers.get("serving", "fastapi")
    if serving == "bentoml":
        monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))  # not the user's store
        assert "Built Bento" in _run([*make, "bento"], path)
        answer = _run([*make, "smoke-bento"], path)
        assert '"prediction"' in answer and '"model_version": "1"' in answer
    elif serving == "triton":
        assert "predicts the model's class" in _run([*make, "triton"], path)
        package = package_of(path)
        model = path / "deploy" / "triton" / "model_repository" / package
        assert (model / "config.pbtxt").is_file() and (model / "1" / "model.onnx").is_file()
    else:
        pytest.skip("served by `make smoke` above")
