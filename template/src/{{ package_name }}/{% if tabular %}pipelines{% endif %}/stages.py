"""The pipeline's stages, declared once: the local runner, the Kubeflow pipeline and the test of
dvc.yaml all read this table.

Each stage is the CLI command of the same name. `reads` and `writes` name the `Settings`
attributes of the files one stage hands to a later one: where the project keeps them locally,
and the artifacts Kubeflow passes between pods. The stage functions are imported when a stage
runs, not here: compiling the Kubeflow pipeline imports this table but no ML library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ProjectError


@dataclass(frozen=True)
class Stage:
    name: str  # the CLI command, the dvc.yaml stage, the Kubeflow task
    run: Callable[[Settings], Any]
    reads: tuple[str, ...] = ()  # Settings attributes: files an earlier stage wrote
    writes: tuple[str, ...] = ()  # Settings attributes: files a later stage reads
    # Runs only when the quality gate passed. Kubeflow runs it under dsl.If on evaluate's
    # verdict; run locally, `register` reads the verdict from metrics_file and decides itself.
    gated: bool = False

    def path(self, settings: Settings, attribute: str) -> Path:
        """Where the project keeps the hand-off `attribute` (one of reads/writes)."""
        if attribute not in (*self.reads, *self.writes):
            raise ProjectError(f"Stage '{self.name}' declares no hand-off '{attribute}'.")
        return getattr(settings, attribute)


def _prepare(settings: Settings) -> Any:
    from ..data.prepare import prepare

    return prepare(settings)


def _train(settings: Settings) -> Any:
    from ..training.train import train

    return train(settings)


def _evaluate(settings: Settings) -> Any:
    from ..training.evaluate import evaluate

    return evaluate(settings)


def _register(settings: Settings) -> Any:
    from ..registry import register

    return register(settings)


STAGES = (
    Stage("prepare", _prepare, writes=("prepared_dir",)),
    Stage("train", _train, reads=("prepared_dir",), writes=("train_run_file",)),
    Stage(
        "evaluate",
        _evaluate,
        reads=("prepared_dir", "train_run_file"),
        writes=("metrics_file",),
    ),
    Stage("register", _register, reads=("metrics_file", "train_run_file"), gated=True),
)


def named(name: str) -> Stage:
    """The stage called `name`; an error listing the stages otherwise."""
    for candidate in STAGES:
        if candidate.name == name:
            return candidate
    raise ProjectError(f"No stage '{name}': the stages are {[s.name for s in STAGES]}.")
