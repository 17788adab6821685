"""The adapter the registry's alias points at, fetched and checked, and the server's settings."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .. import registry
from ..config import Settings
from ..errors import ProjectError
from ..tracking import redact
from .llm_app import ServerConfig

SERVED_NAME = "{{ project_slug }}"


def fetch_adapter(
    settings: Settings, alias: str | None = None
) -> tuple[registry.AliasedVersion, Path]:
    """The adapter files of `alias` (default: serving.model_alias), verified against the
    sha256 recorded at registration, in models/served/<name>-v<version>/ (fetched once)."""
    import mlflow

    found = registry.lookup(settings, alias or settings.serving.model_alias)
    folder = settings.root / "models" / "served" / f"{found.name}-v{found.version}"
    if folder.is_dir():
        registry.verify_files(found, folder)
        return found, folder
    with tempfile.TemporaryDirectory(prefix="adapter-") as tmp:
        try:
            uri = f"models:/{found.name}/{found.version}"
            local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        except Exception as exc:
            raise ProjectError(
                f"{found.name} v{found.version}: its adapter cannot be fetched ({redact(exc)})."
            ) from None
        registry.verify_files(found, local)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(local, folder)
    return found, folder


def server_config(settings: Settings) -> ServerConfig:
    """What the server serves: the champion adapter on its base, or why it cannot (/ready 503)."""
    from ..training.base import base_model

    serving = settings.serving
    limits = {
        "max_context_tokens": serving.max_context_tokens,
        "default_max_tokens": serving.default_max_tokens,
        "max_output_tokens": serving.max_output_tokens,
        "max_body_bytes": serving.max_body_bytes,
        "max_in_flight": serving.max_in_flight,
    }
    try:
        found, folder = fetch_adapter(settings)
    except ProjectError as exc:
        missing = settings.root / "models" / "served" / "none"
        return ServerConfig(SERVED_NAME, missing, unavailable=str(exc), **limits)
    return ServerConfig(
        SERVED_NAME,
        folder,
        base_model=base_model(settings),
        aliases=(f"{SERVED_NAME}:{found.version}",),
        **limits,
    )
