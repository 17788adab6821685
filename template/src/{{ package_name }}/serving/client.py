"""The real server in a subprocess on a free loopback port: for smoke runs, tests, benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from ..errors import ProjectError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_background(
    workers: int = 1, timeout: float = 90, env: dict[str, str] | None = None
) -> Iterator[httpx.Client]:
    """Yield a client for a server that answered /ready; the server stops on exit."""
    port = free_port()
    package = __package__.split(".")[0]
    command = [
        sys.executable,
        "-m",
        package,
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            _wait_ready(client, process, timeout)
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(client: httpx.Client, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise ProjectError(f"The server exited with code {process.returncode}:\n{output}")
        try:
            answer = client.get("/ready")
            if answer.status_code == 200:
                return
            last = answer.text
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise ProjectError(f"The server was not ready after {timeout:.0f}s: {last}")
