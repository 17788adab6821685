"""The base model: a Hugging Face id or folder, or the tiny Llama built here for CPU runs."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..console import step
from ..errors import ProjectError
from ..params import TINY


def base_model(settings: Settings) -> str:
    """What to load as the base: the setting, or the local tiny base (built on first use)."""
    if settings.model.base != TINY:
        return settings.model.base
    folder = settings.tiny_base_dir
    if not (folder / "config.json").is_file():
        from ..data.builtin_chat import corpus_texts
        from .tiny import build_tiny_base

        with step(f"Building the tiny base model in {folder} (once)"):
            build_tiny_base(folder, corpus_texts(seed=0), seed=0)
    return str(folder)


def load_tokenizer(settings: Settings) -> Any:
    """The base model's tokenizer (the quality stage counts tokens with it)."""
    from transformers import AutoTokenizer

    name = base_model(settings)
    try:
        return AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        raise ProjectError(
            f"Cannot load the tokenizer of model.base '{name}' ({exc}). Offline, the base must "
            "be in the Hugging Face cache or a local folder; 'tiny' needs no download."
        ) from None
