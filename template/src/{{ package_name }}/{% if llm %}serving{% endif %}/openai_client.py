"""One client for the fine-tuned model, served by this project's server or by vLLM.

Both speak OpenAI's API, so the official `openai` client talks to either; only the base URL
(and, for a vLLM started with --api-key, the key) differs:

    chat("http://127.0.0.1:8000", "support-bot:3", [{"role": "user", "content": "Hi"}])
    for piece in stream_chat("http://vllm:8000/v1", "support-bot:3", messages, temperature=0):
        print(piece, end="")

Parameters are OpenAI's (max_tokens, temperature, top_p, stop, seed, ...), passed through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

# Neither server checks a key unless started with one; the SDK insists on having some string.
NO_KEY = "not-needed"


def v1_url(base_url: str) -> str:
    """`base_url` ending in /v1, as the SDK wants it ("http://host:8000" works as well)."""
    base_url = base_url.rstrip("/")
    return base_url if base_url.endswith("/v1") else f"{base_url}/v1"


@lru_cache(maxsize=16)
def client(
    base_url: str, api_key: str | None = None, timeout: float = 120.0, max_retries: int = 2
) -> Any:
    """An `openai.OpenAI` for the server at `base_url`, cached so connections are reused.

    The key is `api_key`, else $OPENAI_API_KEY, else a placeholder. 429 (queue full) and 503
    (model still loading) answers are retried by the SDK with backoff.
    """
    import openai

    key = api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY
    return openai.OpenAI(
        base_url=v1_url(base_url), api_key=key, timeout=timeout, max_retries=max_retries
    )


def chat(
    base_url: str,
    model: str,
    messages: Sequence[dict[str, Any]],
    *,
    api_key: str | None = None,
    **params: Any,
) -> str:
    """The assistant's answer to `messages`."""
    response = client(base_url, api_key).chat.completions.create(
        model=model, messages=list(messages), stream=False, **params
    )
    return response.choices[0].message.content or ""


def stream_chat(
    base_url: str,
    model: str,
    messages: Sequence[dict[str, Any]],
    *,
    api_key: str | None = None,
    **params: Any,
) -> Iterator[str]:
    """The answer to `messages`, piece by piece as the server generates it.

    Leaving the loop early closes the connection, and both servers then stop generating.
    """
    stream = client(base_url, api_key).chat.completions.create(
        model=model, messages=list(messages), stream=True, **params
    )
    with stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


def list_models(base_url: str, *, api_key: str | None = None) -> list[str]:
    """The model names the server answers to."""
    return [model.id for model in client(base_url, api_key).models.list()]
