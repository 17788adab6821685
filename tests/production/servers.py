"""The production stack on loopback: PostgreSQL, an S3-protocol store (moto), `mlflow server`.

Each server is a real process on a free 127.0.0.1 port, started and stopped by the test. moto's
server mode speaks the S3 protocol and stands in for S3 or MinIO (deploy/compose runs MinIO).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# Credentials the servers and the projects read from the environment, as a team's would.
S3_KEY, S3_SECRET = "flywheel-test-key", "flywheel-s3-secret-do-not-print"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": S3_KEY,
    "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}
ARTIFACTS_BUCKET, DVC_BUCKET = "mlflow-artifacts", "dvc-store"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(
    command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """`command` in its own process group, its output in `log` (a pipe nobody reads would fill)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def _stop(process: subprocess.Popen) -> None:
    """Stop the process group (uvicorn's workers too)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _postgres_bin() -> Path:
    """The folder of initdb, pg_ctl and createdb: initdb's on PATH (links resolved), else where
    Debian's postgresql package puts them."""
    on_path = shutil.which("initdb")
    found = [Path(on_path).resolve()] if on_path else []
    found += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]
    if not found:
        raise RuntimeError("initdb not found: install PostgreSQL (apt-get install postgresql).")
    return found[0].parent


def _run(command: list, cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{command[0]} exited with {done.returncode}: {done.stderr[-2000:]}")


@contextmanager
def postgres(database: str = "mlflow") -> Iterator[str]:
    """A scratch PostgreSQL cluster on a free loopback port; yields its SQLAlchemy URI.

    PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to `nobody`.
    """
    # Not under pytest's tmp dirs: those are private to the user, and `nobody` must enter it.
    root = Path(tempfile.mkdtemp(prefix="flywheel-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
        as_user += ["--clear-groups", "--"]
    data, port, bin_dir = root / "data", free_port(), _postgres_bin()
    # In the cluster's folder: `nobody` may not enter the test's working directory.
    _run([*as_user, bin_dir / "initdb", "-D", data, "-U", "mlflow"], root)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    pg_ctl = [*as_user, bin_dir / "pg_ctl", "-D", data, "-l", root / "log"]
    try:
        _run([*pg_ctl, "-o", options, "-w", "start"], root)
        address = ["-h", "127.0.0.1", "-p", str(port), "-U", "mlflow"]
        _run([bin_dir / "createdb", *address, database], root)
        yield f"postgresql://mlflow@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], cwd=root, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def s3(log: Path, *buckets: str) -> Iterator[str]:
    """moto's S3-protocol server on a free port with `buckets`; yields its endpoint URL."""
    import boto3

    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = _start(command, log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint, process, log, 60)
        client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        _stop(process)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_KEY,
        "aws_secret_access_key": S3_SECRET,
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


def objects(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """The keys under `prefix` in `bucket`."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


class TrackingServer:
    """`mlflow server` with a PostgreSQL backend store and proxied artifacts in S3.

    Proxied (--serve-artifacts, the default): clients upload and download artifacts through the
    server, so only the server holds the bucket's credentials. stop() and start() keep the port.
    """

    def __init__(self, database: str, endpoint: str, log: Path) -> None:
        self.port, self.log = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "mlflow", "server", "--workers", "1"]
        self.command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.command += ["--backend-store-uri", database]
        self.command += ["--artifacts-destination", f"s3://{ARTIFACTS_BUCKET}"]
        self.env = {**os.environ, **S3_ENV, "MLFLOW_S3_ENDPOINT_URL": endpoint}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = _start(self.command, self.log, self.env)
        # Minutes at most: the first start creates MLflow's schema in the database.
        _wait(f"{self.url}/health", self.process, self.log, 180)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


@contextmanager
def serving(
    command: list[str], url: str, env: dict[str, str], log: Path, cwd: Path
) -> Iterator[httpx.Client]:
    """A model server from `command`, once its /health answers (ready or not)."""
    process = _start(command, log, env, cwd)
    try:
        _wait(f"{url}/health", process, log, 120)
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        _stop(process)
