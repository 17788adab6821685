"""The project's server in a subprocess on a free loopback port: smoke runs, tests, benchmarks."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from ..background import background_server, free_port

__all__ = ["background_server", "free_port", "serve_in_background"]


@contextmanager
def serve_in_background(
    workers: int = 1,
    timeout: float = 90,
    env: dict[str, str] | None = None,
    ready_path: str = "/ready",
) -> Iterator[httpx.Client]:
    """Yield a client for the project's server once `ready_path` answers; it stops on exit.

    ready_path="/health" waits for a server that is up without a model (to test that state).
    """
    package = __package__.split(".")[0]
    command = [sys.executable, "-m", package, "serve", "--workers", str(workers)]
    environment = {**os.environ, **(env or {})}
    with background_server(command, ready_path, timeout, environment) as client:
        yield client
