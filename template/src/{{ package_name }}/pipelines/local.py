"""The pipeline in one process: what `pipeline`, `dvc repro` and local retraining all run."""

from __future__ import annotations

from ..config import Settings


def run(settings: Settings) -> None:
    """prepare -> train -> evaluate -> register; register decides what becomes champion."""
    from ..data.prepare import prepare
    from ..registry import register
    from ..training.evaluate import evaluate
    from ..training.train import train

    for stage in (prepare, train, evaluate, register):
        stage(settings)
