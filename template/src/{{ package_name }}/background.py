"""A server in a subprocess on a free loopback port until it is ready: smoke runs and tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from .errors import ProjectError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def background_server(
    command: list[str],
    ready_path: str,
    timeout: float,
    env: dict[str, str],
    cwd: Path | None = None,
    port: int | None = None,
) -> Iterator[httpx.Client]:
    """Run `command --host 127.0.0.1 --port <port or a free one>` until `ready_path` answers 200;
    stop on exit.

    The server gets its own process group so that its workers stop with it.
    """
    port = port or free_port()
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_ready(client, process, ready_path, timeout)
            yield client
    finally:
        _stop(process)


def _wait_ready(client: httpx.Client, process: subprocess.Popen, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise ProjectError(f"The server exited with code {process.returncode}:\n{output}")
        try:
            answer = client.get(path)
            if answer.status_code == 200:
                return
            last = answer.text
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise ProjectError(f"The server was not ready after {timeout:.0f}s: {last}")


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass  # it had already stopped
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
