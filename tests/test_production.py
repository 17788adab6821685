"""Production tier: the default project against the servers a team runs, changed by settings only.

One PostgreSQL cluster behind one `mlflow server`, artifacts and DVC data in an S3-protocol store
(moto's server mode, standing in for S3 or MinIO), all on loopback. Two generated projects (two
teams) train, version data, serve and monitor against them; the tracking server is stopped and
started again to check what a team sees when it fails.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import TELEMETRY_OFF, package_of, render
from tests.production import servers

pytestmark = pytest.mark.production
VENV = Path(sys.prefix)
TRACKING_PASSWORD = "flywheel-tracking-secret-do-not-print"
SECRETS = (TRACKING_PASSWORD, servers.S3_SECRET)
ROWS = "4000"  # built-in data rows: a real model, trained in seconds


@dataclass
class Stack:
    tracking: servers.TrackingServer
    s3: str  # the S3 endpoint URL


@dataclass
class Project:
    path: Path
    package: str
    env: dict[str, str]  # the production settings: the only difference from the defaults

    def run(self, *command: str, returncode: int | None = 0, cwd: Path | None = None) -> str:
        """Run `command` in the project; its output with rich's line wrapping undone."""
        result = subprocess.run(
            command, cwd=cwd or self.path, env=self.env, capture_output=True, text=True
        )
        output = result.stdout + result.stderr
        if returncode is not None:
            assert result.returncode == returncode, (
                f"{' '.join(command)} gave {result.returncode}:\n{output[-4000:]}"
            )
        return " ".join(output.split())

    def cli(self, *args: str, returncode: int | None = 0) -> str:
        return self.run(sys.executable, "-m", self.package, *args, returncode=returncode)

    def make(self, target: str, returncode: int | None = 0) -> str:
        return self.run("make", f"VENV={VENV}", target, returncode=returncode)

    def champion(self, stack: Stack) -> str:
        """The version the champion alias points at, asked of the tracking server directly."""
        from mlflow import MlflowClient

        client = MlflowClient(stack.tracking.url, stack.tracking.url)
        return client.get_model_version_by_alias(self.package, "champion").version


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("logs")
    buckets = (servers.ARTIFACTS_BUCKET, servers.DVC_BUCKET)
    with servers.postgres() as database, servers.s3(logs / "s3.log", *buckets) as endpoint:
        tracking = servers.TrackingServer(database, endpoint, logs / "mlflow.log")
        tracking.start()
        try:
            yield Stack(tracking, endpoint)
        finally:
            tracking.stop()


@contextmanager
def _project(stack: Stack, root: Path, name: str) -> Iterator[Project]:
    """A rendered project installed into this environment, with the production settings."""
    env = {**os.environ, **TELEMETRY_OFF, **servers.S3_ENV}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env['PATH']}"  # the tasks' `dvc init` needs dvc
    old_path, os.environ["PATH"] = os.environ["PATH"], env["PATH"]
    try:
        path = render(root / "project", {"project_name": name}, tasks=True)
    finally:
        os.environ["PATH"] = old_path
    package = package_of(path)
    env |= {
        "MLFLOW_TRACKING_URI": stack.tracking.url,
        "MLFLOW_TRACKING_USERNAME": package,  # sent as basic auth; this server does not check
        "MLFLOW_TRACKING_PASSWORD": TRACKING_PASSWORD,
        f"{package.upper()}_DATA__BUILTIN_ROWS": ROWS,
    }
    project = Project(path, package, env)
    project.run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", ".")
    # DVC's remote is a setting of the repository (.dvc/config, committed); keys stay in the env.
    remote = f"s3://{servers.DVC_BUCKET}/{package}"
    project.run(sys.executable, "-m", "dvc", "remote", "add", "-d", "-f", "store", remote)
    project.run(sys.executable, "-m", "dvc", "remote", "modify", "store", "endpointurl", stack.s3)
    yield project
    name = tomllib.loads((path / "pyproject.toml").read_text())["project"]["name"]
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", name], check=False)


@pytest.fixture(scope="session")
def team(stack: Stack, tmp_path_factory) -> Iterator[Project]:
    """The default project (Fraud Detection), trained once with `make train`."""
    with _project(stack, tmp_path_factory.mktemp("team-a"), "Fraud Detection") as project:
        yield project


@pytest.fixture(scope="session")
def trained(team: Project) -> str:
    """`make train`'s output: the first training on the server."""
    return team.make("train")


def _git(project: Project, *args: str) -> str:
    identity = ["-c", "user.name=Flywheel tests", "-c", "user.email=tests@example.com"]
    return project.run("git", *identity, *args)


def test_make_train_registers_a_champion_on_the_tracking_server(stack, team, trained):
    assert "as champion: first champion" in trained
    assert team.champion(stack) == "1"
    # The model's files went through the server into the bucket, not into the project.
    stored = servers.objects(stack.s3, servers.ARTIFACTS_BUCKET)
    assert any(key.endswith("MLmodel") for key in stored)
    assert not (team.path / "mlartifacts").exists() and not (team.path / "mlflow.db").exists()
    models = team.make("models")
    assert f"{team.package} in {stack.tracking.url}" in models and "champion" in models


def test_dvc_push_then_pull_in_a_fresh_clone_restores_the_data(stack, team, trained, tmp_path):
    _git(team, "add", "-A")
    _git(team, "commit", "-q", "-m", "Train, with the data on S3")
    team.run(sys.executable, "-m", "dvc", "push")
    assert servers.objects(stack.s3, servers.DVC_BUCKET, f"{team.package}/")
    clone = tmp_path / "clone"
    team.run("git", "clone", "-q", str(team.path), str(clone))
    assert not (clone / "data" / "prepared").exists()
    team.run(sys.executable, "-m", "dvc", "pull", cwd=clone)
    prepared = sorted(p.relative_to(team.path) for p in (team.path / "data/prepared").rglob("*"))
    assert prepared and prepared == sorted(
        p.relative_to(clone) for p in (clone / "data/prepared").rglob("*")
    )
    for name in prepared:
        if (team.path / name).is_file():
            assert (team.path / name).read_bytes() == (clone / name).read_bytes(), name


def test_the_champion_is_served_over_http_and_monitored(stack, team, trained, tmp_path):
    """The server loads models:/<name>@champion from the tracking server; the drift and accuracy
    jobs, in a checkout without the data (as a scheduled job), read what it logged."""
    answer = team.make("smoke")
    assert '"prediction"' in answer and '"model_version": "1"' in answer

    token = "monitoring-token"
    env = {**team.env, f"{team.package.upper()}_MONITORING__WEBHOOK_TOKEN": token}
    with _serving(team, env, tmp_path / "serve.log") as client:
        assert _ready(client).json() == {"status": "ready", "model_version": "1"}
        features = client.get("/model").json()["features"]
        records = [{f["name"]: f["example"] for f in features}] * 150
        answers = client.post("/predict/batch", json={"records": records}).json()["predictions"]
        labels = [{"request_id": a["request_id"], "label": a["prediction"]} for a in answers]
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/feedback", json={"labels": labels}, headers=auth).status_code == 202

    job = tmp_path / "job"
    team.run("git", "clone", "-q", str(team.path), str(job))
    (job / "logs").mkdir()
    for log in (team.path / "logs").glob("*.jsonl"):  # the server's log volume, mounted
        (job / "logs" / log.name).write_bytes(log.read_bytes())
    jobs = Project(job, team.package, {**team.env, f"{team.package.upper()}_ROOT": str(job)})
    drift = jobs.cli("drift", returncode=None)  # one repeated record: drift or not, it runs
    assert "vs runs:/" in drift and "Traceback" not in drift, drift  # the registered reference
    assert "model_accuracy_current=1 model_labeled_predictions=150" in jobs.cli("performance")


def test_kubeflow_components_get_the_production_settings(
    stack, team, trained, monkeypatch, tmp_path
):
    """What `kubeflow-run --host` submits: every component runs with the tracking server's URI."""
    import kfp
    from kfp import compiler

    submitted = {}

    class Cluster:  # no Kubeflow here: the pipeline the client was handed is compiled instead
        def __init__(self, host: str) -> None:
            pass

        def create_run_from_pipeline_func(self, pipeline, **kwargs):
            submitted["pipeline"] = pipeline
            return type("Run", (), {"run_id": "run-1"})()

    for key, value in team.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(f"{team.package.upper()}_ROOT", str(team.path))
    monkeypatch.setattr(kfp, "Client", Cluster)
    monkeypatch.syspath_prepend(str(team.path / "src"))  # installed after this process started
    config = importlib.import_module(f"{team.package}.config")
    kubeflow = importlib.import_module(f"{team.package}.pipelines.kubeflow")
    kubeflow.submit(config.load_settings(), "http://kubeflow.invalid", "production test")
    compiler.Compiler().compile(submitted["pipeline"], str(tmp_path / "pipeline.yaml"))
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert executors
    for name, executor in executors.items():
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env.get("MLFLOW_TRACKING_URI") == stack.tracking.url, name


def test_two_teams_on_one_tracking_server_keep_to_their_own_models(
    stack, team, trained, tmp_path_factory
):
    before = team.champion(stack)
    with _project(stack, tmp_path_factory.mktemp("team-b"), "Churn Guard") as other:
        assert "as champion: first champion" in other.make("train")
        assert other.champion(stack) == "1"
        theirs = other.make("models")
        assert f"{other.package} in" in theirs and team.package not in theirs
    ours = team.make("models")
    assert f"{team.package} in" in ours and "churn_guard" not in ours
    assert team.champion(stack) == before


def test_tracking_server_stopped_during_make_train_fails_clearly_and_keeps_the_champion(
    stack, team, trained
):
    before = team.champion(stack)
    # A tracking URI with credentials in it: the error must name the server, not them.
    uri = stack.tracking.url.replace("://", f"://{team.package}:{TRACKING_PASSWORD}@")
    params = yaml.safe_load((team.path / "params.yaml").read_text())
    params["model"]["params"]["max_iter"] -= 50  # so that dvc repro trains again
    (team.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make = subprocess.Popen(
        ["make", f"VENV={VENV}", "train"],
        cwd=team.path,
        env={**team.env, "MLFLOW_TRACKING_URI": uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in make.stdout:
            lines.append(line)
            if "Running stage 'train'" in line:
                stack.tracking.stop()
        make.wait(timeout=300)
    finally:
        team.run("git", "checkout", "--", "params.yaml")
        if stack.tracking.process is None:
            stack.tracking.start()
    output = " ".join("".join(lines).split())
    assert make.returncode != 0, output
    assert f"tracking server unreachable at http://***@127.0.0.1:{stack.tracking.port}" in output
    assert not any(secret in output for secret in SECRETS), output
    assert team.champion(stack) == before


def test_serving_started_while_the_tracking_server_is_down_becomes_ready_when_it_is_back(
    stack, team, trained, tmp_path
):
    stack.tracking.stop()
    try:
        with _serving(team, team.env, tmp_path / "serve.log") as client:
            ready = client.get("/ready")
            assert ready.status_code == 503, ready.text
            assert "tracking server unreachable" in ready.json()["reason"]
            assert not any(secret in ready.text for secret in SECRETS)
            stack.tracking.start()
            champion = team.champion(stack)
            assert _ready(client).json() == {"status": "ready", "model_version": champion}
    finally:
        if stack.tracking.process is None:
            stack.tracking.start()


def _serving(project: Project, env: dict[str, str], log: Path):
    """The project's server in the background on a free port, once /health answers."""
    port = servers.free_port()
    command = [sys.executable, "-m", project.package, "serve", "--port", str(port)]
    return servers.serving(command, f"http://127.0.0.1:{port}", env, log, cwd=project.path)


def _ready(client: httpx.Client, timeout: float = 120) -> httpx.Response:
    """/ready once it answers 200 (the server retries the registry by itself)."""
    deadline = time.monotonic() + timeout
    while (ready := client.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, f"not ready after {timeout:.0f}s: {ready.text}"
        time.sleep(1)
    return ready
