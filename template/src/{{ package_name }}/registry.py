"""Model registry: register models that pass the gate, semantic versions, lineage, aliases.

Aliases, not the deprecated stages: `champion` is what serving loads, `challenger` a registered
model that did not beat it. Versions follow MAJOR = new architecture or input schema,
MINOR = retrained on new data, PATCH = hyperparameters only (or a plain retrain).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import Settings
from .console import console
from .errors import ProjectError
from .tracking import connect, read_run, redact

CHAMPION, CHALLENGER = "champion", "challenger"
LINEAGE_KEYS = ("model_family", "input_schema", "data_sha256", "params_sha256", "training_dataset")
OPTIONAL_LINEAGE = ("base_model", "finetune_method", "data_quality_report")


class RegistryUnavailable(ProjectError):
    """The tracking server (or its database) cannot be read: not the same as "no model"."""


@dataclass(frozen=True)
class AliasedVersion:
    """Which version holds an alias, with its run and the feature spec it was trained on."""

    name: str
    alias: str
    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def semver(self) -> str:
        return self.tags.get("semver", "unknown")


@dataclass(frozen=True)
class Decision:
    registered: bool
    message: str
    version: str | None = None
    semver: str | None = None
    alias: str | None = None


def next_semver(previous: dict[str, str] | None, current: dict[str, str]) -> str:
    """The version a new model gets, from the newest registered version's tags."""
    if previous is None or "semver" not in previous:
        return "1.0.0"
    major, minor, patch = (int(part) for part in previous["semver"].split("."))
    if any(previous.get(key) != current[key] for key in ("model_family", "input_schema")):
        return f"{major + 1}.0.0"
    if previous.get("data_sha256") != current["data_sha256"]:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def register(settings: Settings) -> Decision:
    """Register the evaluated run if it passed the gate; promote it if it beats the champion."""
    report = _read_report(settings.metrics_file)
    name = settings.registry.model_name
    client = connect(settings)
    champion = _version_by_alias(client, name, CHAMPION)
    if not report["gate"]["passed"]:
        kept = (
            f"champion v{champion.version} ({champion.tags.get('semver')}) unchanged"
            if champion
            else "no champion yet"
        )
        failures = "; ".join(report["gate"]["failures"])
        return _say(
            Decision(
                False,
                f"Not registered: quality gate failed ({failures}); {kept}. See "
                f"{settings.metrics_file.name} (model and baseline metrics) and the run in MLflow; "
                "change the data or params.yaml and train again.",
            )
        )

    version, semver = _register_version(settings, client, report)
    metric = report["primary_metric"]
    score = report["metrics"][metric]
    best = float(champion.tags.get(metric, "-inf")) if champion else None
    if best is None or score > best:
        client.set_registered_model_alias(name, CHAMPION, version)
        if champion:
            client.set_registered_model_alias(name, "previous_champion", champion.version)
        why = "first champion" if best is None else f"{metric} {score:.4f} > {best:.4f}"
        message = f"Registered {name} v{version} ({semver}) as champion: {why}."
        return _say(Decision(True, message, version, semver, CHAMPION))
    client.set_registered_model_alias(name, CHALLENGER, version)
    message = (
        f"Registered {name} v{version} ({semver}) as challenger: {metric} {score:.4f} does not "
        f"beat champion v{champion.version} ({best:.4f}); champion unchanged."
    )
    return _say(Decision(True, message, version, semver, CHALLENGER))


def _register_version(settings: Settings, client, report: dict) -> tuple[str, str]:
    """A new registry version of the evaluated run, tagged with its semver and lineage."""
    import mlflow

    run = client.get_run(report["run_id"])
    lineage = {key: run.data.tags[key] for key in LINEAGE_KEYS}
    semver = next_semver(_newest(client, settings.registry.model_name), lineage)
    metric = report["primary_metric"]
    tags = {
        **lineage,
        "semver": semver,
        "training_run_id": run.info.run_id,
        "git_commit_sha": git_commit(settings.root),
        "primary_metric": metric,
        metric: str(report["metrics"][metric]),
    }
    # Lineage a profile adds when it has it (an LLM adapter: its base model, the data report).
    tags.update({key: run.data.tags[key] for key in OPTIONAL_LINEAGE if key in run.data.tags})
    model_uri = read_run(settings)["model_uri"]
    tags.update(_artifact_tags(model_uri))
    name = settings.registry.model_name
    if not model_uri.startswith("runs:/"):  # an MLflow Model (logged with log_model)
        return str(mlflow.register_model(model_uri, name, tags=tags).version), semver
    # Plain files logged with the run (an adapter): registered by their artifact location.
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    run_id, path = model_uri.removeprefix("runs:/").split("/", 1)
    source = f"{run.info.artifact_uri}/{path}"
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags).version
    return str(version), semver


def lookup(settings: Settings, alias: str) -> AliasedVersion:
    """The version behind `alias`; a clear error when there is none or the registry is down."""
    name = settings.registry.model_name
    client = _guarded(lambda: connect(settings, experiment=False))
    version = _version_by_alias(client, name, alias)
    if version is None:
        where = f"No model '{name}' with alias '{alias}' in {redact(settings.tracking_uri)}"
        failed = _last_failed_run(client)
        if failed is not None:
            raise ProjectError(
                f"{where}: the last training (run {failed.info.run_id}) failed its quality gate "
                f"({failed.data.tags.get('quality_gate_failures', 'see metrics.json')}). See "
                f"{settings.metrics_file.name} or the run in MLflow, change the data or params, "
                "and train again (make train)."
            )
        raise ProjectError(f"{where}: train and register one first (make train).")
    return AliasedVersion(name, alias, str(version.version), version.run_id, dict(version.tags))


def verify_files(found: AliasedVersion, folder: Path) -> dict[str, str]:
    """Refuse `folder` (the downloaded files of `found`) unless they are those registered;
    returns what was measured (model_sha256, model_serialization)."""
    expected = found.tags.get("model_sha256")
    if not expected:
        raise ProjectError(
            f"{found.name} v{found.version} has no model_sha256 tag: it was not registered by "
            "this project's `register`, so it is not loaded. Retrain and register it."
        )
    actual = _artifact_tags_of(folder)
    if actual["model_sha256"] != expected:
        raise ProjectError(
            f"{found.name} v{found.version}: the model files changed since registration "
            f"(sha256 {actual['model_sha256'][:12]} != {expected[:12]}); refusing to load."
        )
    return actual


def versions(settings: Settings) -> list[tuple[Any, list[str]]]:
    """Every registered version, newest first, with the aliases it holds."""
    client = connect(settings, experiment=False)
    name = settings.registry.model_name
    found = _guarded(lambda: client.search_model_versions(f"name = '{name}'"))
    held: dict[str, list[str]] = {}
    if found:  # search results carry no aliases; the registered model does
        for alias, number in client.get_registered_model(name).aliases.items():
            held.setdefault(str(number), []).append(alias)
    return [(v, held.get(str(v.version), [])) for v in sorted(found, key=lambda v: -int(v.version))]


def _artifact_tags(model_uri: str) -> dict[str, str]:
    """model_sha256 and model_serialization of a logged model, recorded at registration."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        return _artifact_tags_of(Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp)))


def _artifact_tags_of(folder: Path) -> dict[str, str]:
    digest = hashlib.sha256()
    # registered_model_meta is written by the download itself (the name and version asked for).
    files = (p for p in folder.rglob("*") if p.is_file() and p.name != "registered_model_meta")
    for path in sorted(files):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    try:
        flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]
        serialization = str(flavor.get("serialization_format", "unknown"))
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        serialization = "unknown"
    return {"model_sha256": digest.hexdigest(), "model_serialization": serialization}


def promote_challenger(settings: Settings) -> str:
    """Challenger becomes champion; the old champion stays reachable as previous_champion."""
    client = connect(settings, experiment=False)
    name = settings.registry.model_name
    challenger = _version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        raise ProjectError(f"No '{CHALLENGER}' alias on {name}: nothing to promote.")
    champion = _version_by_alias(client, name, CHAMPION)
    if champion:
        client.set_registered_model_alias(name, "previous_champion", champion.version)
    client.set_registered_model_alias(name, CHAMPION, challenger.version)
    client.delete_registered_model_alias(name, CHALLENGER)
    return str(challenger.version)


def retire_challenger(settings: Settings) -> None:
    """Roll back: the challenger alias goes, the champion stays."""
    client = connect(settings, experiment=False)
    if _version_by_alias(client, settings.registry.model_name, CHALLENGER):
        client.delete_registered_model_alias(settings.registry.model_name, CHALLENGER)


def aliases(settings: Settings) -> dict[str, str]:
    """{version: alias} for champion and challenger, e.g. to name the arms of a canary."""
    client = connect(settings, experiment=False)
    found = {}
    for alias in (CHAMPION, CHALLENGER):
        version = _version_by_alias(client, settings.registry.model_name, alias)
        if version:
            found[str(version.version)] = alias
    return found


def champion_trained_at(settings: Settings) -> float:
    """When the champion's training run started (epoch seconds); 0 without a champion."""
    client = connect(settings, experiment=False)
    champion = _version_by_alias(client, settings.registry.model_name, CHAMPION)
    if champion is None:
        return 0.0
    return client.get_run(champion.run_id).info.start_time / 1000


def git_commit(root: Path) -> str:
    """The commit the model was trained from; `-dirty` when tracked files had changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _read_report(path: Path) -> dict:
    if not path.is_file():
        raise ProjectError(f"No evaluation in {path}: run the 'evaluate' step first.")
    return json.loads(path.read_text())


def _version_by_alias(client, name: str, alias: str):
    """The version holding `alias`, None when no version does; RegistryUnavailable if unreadable."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise _unavailable(exc) from None
    except Exception as exc:  # a corrupt SQLite file, a refused connection, a bad URI
        raise _unavailable(exc) from None


def _unavailable(exc: Exception) -> RegistryUnavailable:
    import mlflow

    uri = redact(mlflow.get_registry_uri())
    reason = redact(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    if uri.startswith(("http://", "https://")):
        return RegistryUnavailable(f"tracking server unreachable at {uri}: {reason}")
    return RegistryUnavailable(f"the model registry at {uri} cannot be read: {reason}")


def _last_failed_run(client):
    """The newest training run of this project's experiment, if it failed the gate."""
    from .tracking import EXPERIMENT

    experiment = _guarded(lambda: client.get_experiment_by_name(EXPERIMENT))
    if experiment is None:
        return None
    runs = _guarded(
        lambda: client.search_runs(
            [experiment.experiment_id],
            "tags.quality_gate != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    )
    return runs[0] if runs and runs[0].data.tags.get("quality_gate") == "failed" else None


def _guarded(call):
    try:
        return call()
    except Exception as exc:
        raise _unavailable(exc) from None


def _newest(client, name: str) -> dict[str, str] | None:
    versions = client.search_model_versions(f"name = '{name}'")
    tagged = [v for v in versions if "semver" in v.tags]
    if not tagged:
        return None
    return max(tagged, key=lambda v: tuple(int(p) for p in v.tags["semver"].split("."))).tags


def _say(decision: Decision) -> Decision:
    colour = "green" if decision.alias == CHAMPION else "yellow" if decision.registered else "red"
    console.print(f"[{colour}]{decision.message}[/]")
    return decision
