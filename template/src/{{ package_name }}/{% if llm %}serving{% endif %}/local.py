"""This project's OpenAI-compatible server in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..background import background_server
from ..errors import ProjectError


@contextmanager
def serve_in_background(timeout: float = 300, env: dict[str, str] | None = None) -> Iterator[str]:
    """Yield the server's OpenAI base URL (http://127.0.0.1:<port>/v1) once the model is
    loaded; a server that will never be ready (no champion, a corrupt adapter) fails at once."""
    package = __package__.split(".")[0]
    command = [sys.executable, "-m", package, "serve"]
    environment = {**os.environ, **(env or {})}
    with background_server(command, "/health", timeout, environment) as client:
        deadline = time.monotonic() + timeout
        while (answer := client.get("/ready")).status_code != 200:
            if answer.json().get("status") == "unavailable":
                raise ProjectError(f"The server cannot serve: {answer.json()['reason']}")
            if time.monotonic() > deadline:
                raise ProjectError(f"The model was not loaded after {timeout:.0f}s.")
            time.sleep(0.2)
        yield f"{client.base_url}".rstrip("/") + "/v1"
