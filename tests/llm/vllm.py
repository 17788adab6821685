"""What one vLLM release accepts and exports, and the checks that hold manifests to it.

The lists beside this file were read from the release's source by tools/vllm_flags.py (vLLM is
never installed here: its wheels need CUDA). Each check returns a list of problems, one
sentence each naming where and what; an empty list means it passed.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The release the generated vllm.Dockerfile's FROM names (a test checks they agree).
VLLM_RELEASE = "0.33.0"
VLLM_FLAGS = HERE / f"vllm-flags-{VLLM_RELEASE}.json"
VLLM_METRICS = HERE / f"vllm-metrics-{VLLM_RELEASE}.json"
VLLM_QUANTIZATIONS = HERE / f"vllm-quantizations-{VLLM_RELEASE}.json"
# Paths vLLM's OpenAI server answers that probes may use (vllm/entrypoints/serve/
# instrumentator/health.py and the OpenAI routers of the release).
VLLM_ROUTES = frozenset({"/health", "/metrics", "/v1/models", "/ping", "/version"})
# --max-lora-rank's choices (vllm/config/lora.py, MaxLoRARanks): the adapter's r rounded up.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Gone from vLLM (replaced by vllm:kv_cache_usage_perc): never to be used again.
REMOVED_METRICS = ("vllm:gpu_cache_usage_perc", "vllm:cpu_cache_usage_perc")


@cache
def vllm_flags() -> frozenset[str]:
    return frozenset(json.loads(VLLM_FLAGS.read_text()))


@cache
def vllm_metrics() -> frozenset[str]:
    return frozenset(json.loads(VLLM_METRICS.read_text()))


@cache
def vllm_quantizations() -> frozenset[str]:
    return frozenset(json.loads(VLLM_QUANTIZATIONS.read_text()))


def check_vllm_args(args: Iterable[Any], flags: Iterable[str]) -> list[str]:
    """The flags in a `vllm serve` argument list that the release does not know.

    Everything starting with `-` is a flag (values of ours never do, negative numbers aside).
    FlexibleArgumentParser's spellings are accepted: `--flag=value`, `--flag_name`
    (underscores), `--json-flag.key value`, and `-O3` for --optimization-level. Argparse's
    prefix abbreviations are not (deliberately stricter).
    """
    known = set(flags)
    unknown = []
    for arg in map(str, args):
        if not arg.startswith("-") or re.fullmatch(r"-\d+(\.\d+)?", arg):
            continue
        name = arg.split("=", 1)[0]
        if name.startswith("--"):
            name = "--" + name[2:].split(".", 1)[0].replace("_", "-")
        elif re.fullmatch(r"-O\d?|-O=?\w+", name) and "--optimization-level" in known:
            continue
        if name not in known:
            unknown.append(arg)
    return unknown


def flag_value(args: Iterable[Any], flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` in an argument list."""
    words = [str(a) for a in args]
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(flag + "="):
            return word.partition("=")[2]
    return None


def flag_values(args: Iterable[Any], flag: str) -> list[str]:
    """The values of a flag that takes several (`--lora-modules a=x b=y`), up to the next flag."""
    words = [str(a) for a in args]
    if flag not in words:
        return [value] if (value := flag_value(words, flag)) is not None else []
    values = []
    for word in words[words.index(flag) + 1 :]:
        if word.startswith("-"):
            break
        values.append(word)
    return values


# ------------------------------------------------------------------ where vLLM runs


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"


def vllm_containers(objects: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(where, container) of each Deployment container that runs `vllm serve`."""
    found = []
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"].get("containers", []):
            if [str(c) for c in container.get("command", [])][:2] == ["vllm", "serve"]:
                found.append((f"{_name(obj)} container {container['name']}", container))
    return found


def dockerfile_command(dockerfile: Path) -> list[str]:
    """The final stage's ENTRYPOINT + CMD (exec form) of an image."""
    text = dockerfile.read_text().replace("\\\n", " ")
    final = re.split(r"^FROM\s", text, flags=re.M)[-1]
    found = dict(re.findall(r"^(ENTRYPOINT|CMD)\s+(\[.*\])\s*$", final, re.M))
    return [str(w) for key in ("ENTRYPOINT", "CMD") for w in json.loads(found.get(key, "[]"))]


def serve_commands(
    objects: Iterable[dict[str, Any]], dockerfile: Path | None = None
) -> list[tuple[str, list[str]]]:
    """(where, args after `vllm serve`) of the Deployments and of the image's default command."""
    commands = [
        (where, [str(a) for a in c.get("args", [])]) for where, c in vllm_containers(objects)
    ]
    if dockerfile is not None:
        command = dockerfile_command(dockerfile)
        if command[:2] == ["vllm", "serve"]:
            commands.append((f"{dockerfile.name} ENTRYPOINT+CMD", command[2:]))
    return commands


# ------------------------------------------------------------------ checks


def vllm_arg_problems(
    commands: list[tuple[str, list[str]]],
    flags: Iterable[str] | None = None,
    quantizations: Iterable[str] | None = None,
) -> list[str]:
    """Every flag is one the release knows; the model comes first; --quantization names a
    method the release has."""
    known = set(vllm_flags() if flags is None else flags)
    methods = set(vllm_quantizations() if quantizations is None else quantizations)
    problems = []
    for where, args in commands:
        if not args or args[0].startswith("-"):
            problems.append(f"{where}: vllm serve needs the model first")
        for unknown in check_vllm_args(args, known):
            problems.append(f"{where}: vLLM {VLLM_RELEASE} has no flag {unknown}")
        method = flag_value(args, "--quantization") or flag_value(args, "-q")
        if method is not None and method not in methods:
            problems.append(
                f"{where}: --quantization {method} is not a method of vLLM {VLLM_RELEASE}"
            )
    return problems


def lora_problems(commands: list[tuple[str, list[str]]]) -> list[str]:
    """The adapters are served under their names, with LoRA on, room for all of them in a
    batch, a rank vLLM takes, and the first (the champion) with the chat template saved with it."""
    problems = []
    for where, args in commands:
        every = flag_values(args, "--lora-modules")
        if not every:
            problems.append(f"{where}: no --lora-modules: the adapter is not served")
            continue
        modules = every[0]
        if len(every) > int(flag_value(args, "--max-loras") or 1):
            problems.append(f"{where}: {len(every)} adapters but --max-loras is smaller")
        if "--enable-lora" not in args:
            problems.append(f"{where}: --lora-modules without --enable-lora")
        rank = flag_value(args, "--max-lora-rank")
        if rank is not None and int(rank) not in VLLM_MAX_LORA_RANKS:
            problems.append(f"{where}: --max-lora-rank {rank} is not one of {VLLM_MAX_LORA_RANKS}")
        name, _, adapter = modules.partition("=")
        if name == flag_value(args, "--served-model-name"):
            problems.append(
                f"{where}: the adapter and the base are both served as {name}: requests for "
                "it would reach the base"
            )
        template = flag_value(args, "--chat-template") or ""
        if not template.startswith(adapter.rstrip("/") + "/"):
            problems.append(
                f"{where}: --chat-template {template} is not the adapter's (under {adapter})"
            )
    return problems


def gpu_problems(objects: Iterable[dict[str, Any]]) -> list[str]:
    """A vLLM pod's GPUs are its tensor-parallel x pipeline-parallel size; a TrainJob node's
    GPUs are its processes per node."""
    problems = []
    for where, container in vllm_containers(objects):
        args = container.get("args", [])
        tp = int(flag_value(args, "--tensor-parallel-size") or flag_value(args, "-tp") or 1)
        pp = int(flag_value(args, "--pipeline-parallel-size") or flag_value(args, "-pp") or 1)
        resources = container.get("resources") or {}
        gpus = int(resources.get("limits", {}).get("nvidia.com/gpu", 0))
        if gpus != tp * pp:
            problems.append(
                f"{where}: {gpus} GPUs for tensor-parallel {tp} x pipeline-parallel {pp} = "
                f"{tp * pp}"
            )
    for job in [o for o in objects if o.get("kind") == "TrainJob"]:
        trainer = job["spec"].get("trainer", {})
        resources = trainer.get("resourcesPerNode", {})
        gpus = {int(resources.get(k, {}).get("nvidia.com/gpu", 0)) for k in ("limits", "requests")}
        procs = trainer.get("numProcPerNode")
        if len(gpus) != 1 or procs not in gpus:
            problems.append(
                f"{_name(job)}: numProcPerNode {procs} with nvidia.com/gpu {sorted(gpus)} a node"
            )
    return problems


_METRIC = re.compile(r"\b(vllm:[a-zA-Z_:][a-zA-Z0-9_:]*)")


def promql_expressions(objects: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, PromQL) of PrometheusRule rules, plain rule files and KEDA prometheus triggers."""
    found = []
    for obj in objects:
        if obj.get("kind") == "ScaledObject":
            for trigger in obj["spec"].get("triggers", []):
                if trigger.get("type") == "prometheus":
                    found.append((_name(obj), str(trigger["metadata"].get("query", ""))))
            continue
        groups = (obj.get("spec") or {}) if obj.get("kind") == "PrometheusRule" else obj
        for group in groups.get("groups", []):
            for rule in group.get("rules", []):
                label = rule.get("alert") or rule.get("record")
                found.append((f"{_name(obj)} {label}", str(rule.get("expr", ""))))
    return found


def metric_problems(
    objects: Iterable[dict[str, Any]], metrics: Iterable[str] | None = None
) -> list[str]:
    """Every vLLM series a rule or a KEDA query reads is one the release exports."""
    known = set(vllm_metrics() if metrics is None else metrics)
    problems = []
    for where, expr in promql_expressions(objects):
        for metric in _METRIC.findall(expr):
            if metric in REMOVED_METRICS:
                problems.append(
                    f"{where}: {metric} was removed from vLLM (vllm:kv_cache_usage_perc)"
                )
            elif metric not in known:
                problems.append(f"{where}: vLLM {VLLM_RELEASE} exports no {metric}")
    return problems


def shell_words(command: Iterable[Any]) -> list[str]:
    """A container command's words, `bash -c "..."` strings split as the shell would."""
    return shlex.split(" ".join(str(c) for c in command))
