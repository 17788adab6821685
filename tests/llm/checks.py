"""Checks of the LLM profile's Kubernetes objects that the tabular tier has no use for.

They complete tests/artifacts/checks.py (schemas, Services, probes, scanners, the README's
Secret), which runs on the same objects: volumes claimed from PersistentVolumeClaims that
exist, caches on writable volumes, KEDA's ScaledObject and its query, one autoscaler a
Deployment, the ServiceMonitor's Service, Secrets read by a TrainJob, the TrainJob's command
and accelerate's configuration. Each returns a list of problems (empty: passed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.artifacts import checks as artifact_checks
from tests.artifacts.checks import DocumentedSecret
from tests.llm.vllm import flag_value, shell_words

# Keys of an accelerate config file (accelerate 1.x: commands/config/config_args.py,
# BaseConfig and ClusterConfig), and those without a default.
ACCELERATE_KEYS = frozenset(
    {"compute_environment", "distributed_type", "mixed_precision", "use_cpu", "debug"}
    | {"num_processes", "machine_rank", "num_machines", "gpu_ids", "main_process_ip"}
    | {"main_process_port", "rdzv_backend", "same_network", "main_training_function"}
    | {"enable_cpu_affinity", "fp8_config", "deepspeed_config", "fsdp_config"}
    | {"parallelism_config", "megatron_lm_config", "mpirun_config", "downcast_bf16"}
    | {"tpu_name", "tpu_zone", "tpu_use_cluster", "tpu_use_sudo", "command_file", "commands"}
    | {"tpu_vm", "tpu_env", "dynamo_config"}
)
ACCELERATE_REQUIRED = frozenset(
    {"compute_environment", "distributed_type", "mixed_precision", "use_cpu", "debug"}
)
# Kubeflow Trainer's runtime for torch: one pod per node, its container named "node".
TORCH_RUNTIME = ("ClusterTrainingRuntime", "torch-distributed")
TORCH_CONTAINER = "node"


def name_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"


def _ns(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace", "default")


def _find(objects, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == kind and _ns(obj) == namespace and meta.get("name") == name:
            return obj
    return None


def _selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs of a workload: a Deployment's template, a TrainJob's runtime patches."""
    if obj.get("kind") == "TrainJob":
        specs = []
        for patch in obj["spec"].get("runtimePatches", []):
            template = patch.get("trainingRuntimeSpec", {}).get("template", {})
            for job in template.get("spec", {}).get("replicatedJobs", []):
                spec = job.get("template", {}).get("spec", {}).get("template", {}).get("spec")
                if spec:
                    specs.append(spec)
        return specs
    spec = (obj.get("spec") or {}).get("template", {}).get("spec")
    return [spec] if isinstance(spec, dict) else []


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a workload; a TrainJob's trainer is merged into the runtime's
    container it runs in (its env with the patch's mounts and securityContext)."""
    found = []
    for spec in pod_specs(obj):
        found += [*spec.get("initContainers", []), *spec.get("containers", [])]
    if obj.get("kind") == "TrainJob":
        trainer = obj["spec"].get("trainer", {})
        patched = [c for c in found if c.get("name") == TORCH_CONTAINER]
        rest = [c for c in found if c.get("name") != TORCH_CONTAINER]
        merged = {"name": TORCH_CONTAINER, **(patched[0] if patched else {})}
        merged["env"] = [*merged.get("env", []), *trainer.get("env", [])]
        found = [merged, *rest]
    return found


# ------------------------------------------------------------------ volumes


def volume_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Mounted volumes exist, PersistentVolumeClaims exist, and with a read-only root every
    path the environment makes a process write (HOME, HF_HOME, *_CACHE_DIR, TMPDIR, /tmp)
    is a writable mount."""
    problems = []
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "TrainJob"):
            continue
        volumes = {v["name"]: v for spec in pod_specs(obj) for v in spec.get("volumes", [])}
        for volume in volumes.values():
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and not _find(objects, "PersistentVolumeClaim", _ns(obj), claim):
                problems.append(f"{name_of(obj)}: PersistentVolumeClaim {claim} does not exist")
        for container in containers(obj):
            where = f"{name_of(obj)} container {container['name']}"
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{where}: volume {mount['name']} does not exist")
            problems += _writable_problems(where, container)
    return problems


def _writable_problems(where: str, container: dict[str, Any]) -> list[str]:
    if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return []
    mounts = [m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    paths = {"/tmp"} | {
        str(value)
        for key, value in env.items()
        if value
        and str(value).startswith("/")
        and (key in ("HOME", "TMPDIR") or key.endswith(("_HOME", "_CACHE_DIR", "_CACHE_ROOT")))
    }
    return [
        f"{where}: writes {path} on a read-only root filesystem"
        for path in sorted(paths)
        if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)
    ]


# ------------------------------------------------------------------ scaling and scraping


def scaling_problems(objects: list[dict[str, Any]]) -> list[str]:
    """KEDA's ScaledObject scales a Deployment that exists, within its replica range, on its
    own namespace's queue; no Deployment has two autoscalers (KEDA makes an HPA of its own);
    a ServiceMonitor built with Services selects one with the port it scrapes."""
    problems = []
    targets: dict[tuple[str, str], list[str]] = {}
    for obj in objects:
        kind = obj.get("kind")
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            ref = obj["spec"]["scaleTargetRef"]
            targets.setdefault((_ns(obj), ref["name"]), []).append(name_of(obj))
        if kind == "ScaledObject":
            problems += _scaled_object_problems(objects, obj)
        elif kind == "ServiceMonitor" and any(o.get("kind") == "Service" for o in objects):
            # (deploy/k8s/monitoring applied on its own has no Service to select: the
            # overlays list it with ../../base.)
            problems += _service_monitor_problems(objects, obj)
    problems += [
        f"Deployment {ns}/{target} is scaled by {len(names)} autoscalers: {', '.join(names)}"
        for (ns, target), names in targets.items()
        if len(names) > 1
    ]
    return problems


def _scaled_object_problems(objects, scaler) -> list[str]:
    spec, name = scaler["spec"], name_of(scaler)
    ref = spec["scaleTargetRef"]
    kind = ref.get("kind", "Deployment")
    target = _find(objects, kind, _ns(scaler), ref["name"])
    if target is None:
        return [f"{name}: scale target {kind} {ref['name']} does not exist"]
    problems = []
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    replicas = target["spec"].get("replicas", 1)
    if not low <= replicas <= high:
        problems.append(f"{name}: {name_of(target)} has {replicas} replicas, outside {low}-{high}")
    # Kustomize rewrites no PromQL: an overlay that moves the ScaledObject to another
    # namespace must patch its query, or it scales on another environment's queue.
    for trigger in spec.get("triggers", []):
        if trigger.get("type") != "prometheus":
            continue
        query = str(trigger.get("metadata", {}).get("query", ""))
        namespaces = re.findall(r'\bnamespace\s*=\s*"([^"]*)"', query)
        if namespaces != [_ns(scaler)]:
            problems.append(
                f"{name}: its query reads namespace {namespaces or 'any'}, not {_ns(scaler)}"
            )
    return problems


def _service_monitor_problems(objects, monitor) -> list[str]:
    selector = monitor["spec"].get("selector", {}).get("matchLabels")
    services = [
        s
        for s in objects
        if s.get("kind") == "Service"
        and _ns(s) == _ns(monitor)
        and _selects(selector, s["metadata"].get("labels", {}))
    ]
    if not services:
        return [f"{name_of(monitor)}: selector {selector} selects no Service"]
    problems = []
    for endpoint in monitor["spec"].get("endpoints", []):
        port = endpoint.get("port")
        for service in services:
            if port and port not in {p.get("name") for p in service["spec"].get("ports", [])}:
                problems.append(f"{name_of(monitor)}: {name_of(service)} has no port {port}")
    return problems


# ------------------------------------------------------------------ secrets


def secret_references(obj: dict[str, Any]) -> list[tuple[str, str, str | None, bool]]:
    """The tabular check's references, a TrainJob's trainer included."""
    return artifact_checks.secret_references(obj, containers, pod_specs)


def secret_problems(objects: Iterable[dict[str, Any]], documented: DocumentedSecret) -> list[str]:
    """Every Secret a workload reads is the documented one, with keys it has, in a namespace
    where it is created (the tabular check, on these references)."""
    return artifact_checks.secret_problems(objects, documented, references=secret_references)


# ------------------------------------------------------------------ training


def trainjob_problems(
    objects: Iterable[dict[str, Any]], project: Path, slug: str, commands: Iterable[str]
) -> list[str]:
    """The TrainJob runs the project's CLI (`slug <command>`, a command of `commands`) through
    `accelerate launch --no_python`, with a config file the project has, on the torch runtime,
    patching only the runtime's container."""
    problems = []
    for job in [o for o in objects if o.get("kind") == "TrainJob"]:
        name = name_of(job)
        ref = job["spec"]["runtimeRef"]
        if (ref.get("kind", "ClusterTrainingRuntime"), ref["name"]) != TORCH_RUNTIME:
            problems.append(
                f"{name}: runtime {ref.get('kind')} {ref['name']}, not torch-distributed"
            )
        trainer = job["spec"].get("trainer", {})
        words = shell_words(trainer.get("command", []))
        launch = next(
            (i for i in range(len(words) - 1) if words[i : i + 2] == ["accelerate", "launch"]),
            None,
        )
        if launch is None:
            problems.append(f"{name}: the command does not run `accelerate launch`")
        elif "--no_python" not in words[launch:]:
            problems.append(f"{name}: accelerate launch runs {slug}, a script: --no_python")
        cli = [i for i, word in enumerate(words) if word == slug]
        if not cli:
            problems.append(f"{name}: the command does not run the project's CLI ({slug})")
        for i in cli:
            command = words[i + 1] if i + 1 < len(words) else None
            if command not in set(commands):
                problems.append(f"{name}: `{slug} {command}`: the CLI has no such command")
        config = flag_value(words, "--config_file")
        local = project / str(config).removeprefix("/app/") if config else None
        if local is None or not local.is_file():
            problems.append(f"{name}: accelerate's --config_file {config} is not a project file")
        else:
            problems += accelerate_config_problems(local, trainer.get("numProcPerNode"))
        for spec in pod_specs(job):
            names = {c["name"] for c in spec.get("containers", [])} - {TORCH_CONTAINER}
            if names:
                problems.append(
                    f"{name}: patches containers {sorted(names)}: torch-distributed's is "
                    f"{TORCH_CONTAINER}"
                )
    return problems


def accelerate_config_problems(path: Path, procs_per_node: int | None = None) -> list[str]:
    """Keys accelerate knows, the required ones present, data-parallel over GPUs in bf16, one
    process per GPU of a node."""
    config = yaml.safe_load(path.read_text())
    problems = [f"{path.name}: unknown key {key}" for key in sorted(set(config) - ACCELERATE_KEYS)]
    problems += [f"{path.name}: missing {key}" for key in sorted(ACCELERATE_REQUIRED - set(config))]
    if config.get("distributed_type") != "MULTI_GPU":
        problems.append(f"{path.name}: distributed_type {config.get('distributed_type')}")
    if config.get("mixed_precision") != "bf16":
        problems.append(f"{path.name}: mixed_precision {config.get('mixed_precision')}")
    if procs_per_node is not None and config.get("num_processes") != procs_per_node:
        problems.append(
            f"{path.name}: num_processes {config.get('num_processes')}, the TrainJob runs "
            f"{procs_per_node} a node"
        )
    return problems
