"""Artifact tier: every supported variant's Kubeflow pipeline compiles to the right YAML.

Each variant, of either profile, is rendered and its pipeline compiled by the project's own code
in a subprocess (`PYTHONPATH=<project>/src`, nothing installed), which must not import the ML
libraries: the `kubeflow` nox session installs kfp and the settings' packages only. The
generated projects' own tests run the compiled pipeline with kfp's local runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.helpers import TELEMETRY_OFF, render
from tests.variants import SUPPORTED

TAG = "9.9.9"
STAGES = ("prepare", "train", "evaluate", "promote")
COMPILE = """
import json, sys
from pathlib import Path
from {package}.pipelines.kubeflow import compile_pipeline
compile_pipeline(Path(sys.argv[1]), tag=sys.argv[2])
heavy = ("mlflow", "sklearn", "pandas", "numpy", "xgboost", "lightgbm", "torch", "transformers")
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))))
"""


@pytest.fixture(scope="module", params=list(SUPPORTED), ids=list(SUPPORTED))
def compiled(request, tmp_path_factory) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(recorded answers, the compiled pipeline spec, ML libraries compiling imported)."""
    project = render(tmp_path_factory.mktemp(request.param) / "project", SUPPORTED[request.param])
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    output = project / "pipeline.yaml"
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": str(project / "src")}
    done = subprocess.run(
        [sys.executable, "-c", COMPILE.format(package=answers["package_name"]), output, TAG],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return answers, yaml.safe_load(output.read_text()), json.loads(done.stdout)


def _executors(spec: dict) -> dict[str, dict]:
    executors = spec["deploymentSpec"]["executors"].items()
    return {name.removeprefix("exec-"): e["container"] for name, e in executors}


def _branch(spec: dict, name: str) -> dict:
    """The condition task named `name` in the pipeline's If/Else group."""
    group = next(c for key, c in spec["components"].items() if key.startswith("comp-condition-b"))
    tasks = group["dag"]["tasks"].values()
    return next(t for t in tasks if t["taskInfo"]["name"] == name)


def test_compiling_needs_no_ml_library(compiled):
    _, _, heavy = compiled
    assert heavy == []


def test_components_run_the_projects_stages_in_its_image(compiled):
    answers, spec, _ = compiled
    executors = _executors(spec)
    assert set(executors) == {*STAGES, "keep-champion"}
    image = f"{answers['image_registry']}/{answers['project_slug']}:{TAG}"
    assert {e["image"] for e in executors.values()} == {image}
    for stage in STAGES:
        body = executors[stage]["command"][-1]
        assert f"from {answers['package_name']}.pipelines.kubeflow import" in body, stage
    for container in executors.values():
        # pip at start would need the network (and the local runner would run it too).
        assert "pip install" not in " ".join(container["command"])


def test_stages_run_in_order_and_are_never_cached(compiled):
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert spec["pipelineInfo"]["name"].endswith("-retraining")
    assert tasks["train"]["dependentTasks"] == ["prepare"]
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["prepare", "train"]
    for name in ("prepare", "train", "evaluate"):
        assert not tasks[name]["cachingOptions"].get("enableCache"), name


def test_promotion_runs_only_inside_the_gate_condition(compiled):
    _, spec, _ = compiled
    assert "promote" not in spec["root"]["dag"]["tasks"]
    passed, failed = _branch(spec, "quality-gate-passed"), _branch(spec, "quality-gate-failed")
    gate = "inputs.parameter_values['pipelinechannel--evaluate-Output'] == 'passed'"
    assert passed["triggerPolicy"]["condition"] == gate
    assert failed["triggerPolicy"]["condition"] == f"!({gate})"
    inside = spec["components"][passed["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inside) == {"promote"}
    otherwise = spec["components"][failed["componentRef"]["name"]]["dag"]["tasks"]
    assert set(otherwise) == {"keep-champion"}


def test_pipeline_returns_the_verdict_of_whichever_branch_ran(compiled):
    _, spec, _ = compiled
    output = spec["root"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"]
    group = spec["components"][f"comp-{output['producerSubtask']}"]["dag"]["outputs"]
    selectors = group["parameters"][output["outputParameterKey"]]["valueFromOneof"]
    keys = {s["outputParameterKey"] for s in selectors["parameterSelectors"]}
    assert keys == {"pipelinechannel--promote-Output", "pipelinechannel--keep-champion-Output"}


def test_only_the_llm_fine_tuning_asks_for_gpus(compiled):
    answers, spec, _ = compiled
    accelerators = {
        name: resources["accelerator"]
        for name, container in _executors(spec).items()
        if "accelerator" in (resources := container.get("resources", {}))
    }
    if answers["use_case"] == "llm":  # params.yaml's kubeflow.accelerator_*, by default one GPU
        assert accelerators == {
            "train": {
                "type": "nvidia.com/gpu",
                "count": "1",
                "resourceType": "nvidia.com/gpu",
                "resourceCount": "1",
            }
        }
    else:
        assert accelerators == {}
