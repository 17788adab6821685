"""The pipeline in one process: what `pipeline`, `dvc repro` and local retraining all run."""

from __future__ import annotations

import tempfile
from typing import Any

from ..config import ENV_PREFIX, Settings
from ..errors import ProjectError
from .stages import STAGES


def run(settings: Settings) -> Any:
    """Every stage of the table in order; register decides what becomes champion."""
    check_writable(settings)
    result = None
    for stage in STAGES:
        result = stage.run(settings)
    return result


def check_writable(settings: Settings) -> None:
    """Fail before training, naming the setting, where the stages' outputs cannot be written.

    A container's root (/app) is read-only: a retraining started inside the serving pod needs
    `work_dir` on a writable volume, or monitoring.kubeflow_host to run in Kubeflow's pods.
    """
    written = (getattr(settings, name) for stage in STAGES for name in stage.writes)
    for folder in sorted({settings.plots_dir, *(path.parent for path in written)}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise ProjectError(
                f"The pipeline cannot write to {folder} ({exc.strerror or exc}): set "
                f"{ENV_PREFIX}WORK_DIR to a writable folder (a volume in a container), or "
                "monitoring.kubeflow_host to retrain on Kubeflow."
            ) from None
