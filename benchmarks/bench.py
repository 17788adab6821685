"""Flywheel benchmarks: how fast the template renders, trains to a first prediction, and serves.

1. Render: seconds for `copier.run_copy` (median of 3), default answers and the largest variant
   (xgboost + GitLab CI + DVC), tasks skipped.
2. Render to first prediction: the default project's `python -m fraud_detection pipeline`
   (prepare, train, evaluate, register the champion), then `serve` until the first successful
   POST /predict. Setup excluded: the project runs on this interpreter, whose environment already
   holds its dependencies (the project's src/ goes on PYTHONPATH, so the shared environment is
   left untouched). Setup included (--with-setup): a fresh venv and `pip install -e` first.
3. Throughput: wrk against single-record POST /predict, one model for both servers: the
   serving=bentoml variant's champion (`pipeline`, then `bento-save` into BentoML's store), served
   by the generated FastAPI server (`serve --workers N`) and by the same project's BentoML service
   (`serve-bento`; N workers through BENTOML_CONFIG_OVERRIDES, else as shipped: async APIs over
   the server's micro-batching, so BentoML's thread pool, which serves sync APIs, is idle), next
   to a bare FastAPI endpoint returning a constant (bare_app.py, the framework's ceiling). 1 and 2
   workers, OpenMP/BLAS pinned to a thread per worker, each after readiness and a 2 s warm-up,
   all on 127.0.0.1.

Run from the repository root:  python benchmarks/bench.py [--duration 10] [--with-setup]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Self

import copier
import httpx
import psutil
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PACKAGE = "fraud_detection"
LARGEST = {"model_family": "xgboost", "ci_provider": "gitlab", "use_dvc": True}
QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
}
COPY = {"defaults": True, "unsafe": True, "skip_tasks": True, "vcs_ref": "HEAD", "quiet": True}
THREADS_ENV = {var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
console = Console()


def render(dst: Path, data: dict[str, Any]) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier's DirtyLocalWarning for uncommitted changes
        copier.run_copy(str(REPO), dst, data=data, **COPY)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_env(project: Path) -> dict[str, str]:
    """The project's src/ on PYTHONPATH (the shared environment stays untouched), stores in tmp."""
    path = os.pathsep.join(filter(None, [str(project / "src"), os.environ.get("PYTHONPATH")]))
    root, home = str(project), str(project.parent / "bentoml")
    return {**os.environ, "FRAUD_DETECTION_ROOT": root, "BENTOML_HOME": home, "PYTHONPATH": path}


def cli(python: str, project: Path, env: dict[str, str], *args: str) -> None:
    """`python -m fraud_detection ARGS` in the project; CalledProcessError carries its output."""
    command = [python, "-m", PACKAGE, *args]
    subprocess.run(
        command, env=env, cwd=project, capture_output=True, text=True, timeout=900, check=True
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL; then any descendant that left the group."""
    try:  # BentoML's workers start sessions of their own: a group signal misses them
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for sig, timeout in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
            break
    for child in psutil.wait_procs(family, timeout=10)[1]:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


class Server:
    """A server subprocess in its own session, always stopped (see stop)."""

    def __init__(
        self, command: list[str], env: dict[str, str], cwd: Path, port: int, ready: str = "/ready"
    ) -> None:
        self.command, self.env, self.cwd, self.url = command, env, cwd, f"http://127.0.0.1:{port}"
        self.ready = ready
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process:
            stop(self.process)
        self.log.close()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    self.log.seek(0)
                    tail = self.log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"{self.command} exited {self.process.returncode}:\n{tail}")
                try:
                    if client.get(f"{self.url}{self.ready}").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"{self.url} not ready after {timeout:.0f}s")


def project_server(python: str, project: Path, env: dict[str, str], workers: int) -> Server:
    port = free_port()
    command = [python, "-m", PACKAGE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Server([*command, "--workers", str(workers)], env, project, port)


def bento_server(project: Path, env: dict[str, str], workers: int) -> Server:
    """`serve-bento` (`bentoml serve` of the project's service), with `workers` workers."""
    port = free_port()
    command = [sys.executable, "-m", PACKAGE, "serve-bento", "--host", "127.0.0.1"]
    overrides = json.dumps({"services": {"Champion": {"workers": workers}}})
    env = {**env, "BENTOML_CONFIG_OVERRIDES": overrides}
    return Server([*command, "--port", str(port)], env, project, port, ready="/readyz")


def bare_server(env: dict[str, str], workers: int) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(HERE)]
    command += ["--port", str(port), "--workers", str(workers)]
    return Server([*command, "--log-level", "warning", "--no-access-log"], env, HERE, port)


def first_prediction(python: str, project: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds for the pipeline, then from `serve` to the first successful prediction."""
    start = time.perf_counter()
    cli(python, project, env, "pipeline")
    trained = time.perf_counter()
    with project_server(python, project, env, workers=1) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            schema = client.get("/openapi.json").json()
            example = schema["components"]["schemas"]["Record"]["examples"][0]
            client.post("/predict", json=example).raise_for_status()
    return trained - start, time.perf_counter() - trained


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]


def wrk(url: str, script: Path, seconds: float, connections: int) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout

    def grab(pattern: str, default: str | None = None) -> str:
        if match := re.search(pattern, out, re.MULTILINE):
            return match.group(1)
        if default is None:
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        return default

    return {
        "rps": float(grab(r"^Requests/sec:\s+([\d.]+)")),
        "p50": to_ms(grab(r"^\s+50%\s+(\S+)")),
        "p99": to_ms(grab(r"^\s+99%\s+(\S+)")),
        "errors": float(grab(r"Non-2xx or 3xx responses: (\d+)", "0")),
    }


def bento_project(tmp: Path) -> tuple[Path, dict[str, str]]:
    """The serving=bentoml variant, trained, its champion copied into BentoML's store."""
    project = tmp / "fraud-detection-bentoml"
    render(project, {"serving": "bentoml"})
    env = project_env(project)
    for command in ("pipeline", "bento-save"):
        cli(sys.executable, project, env, command)
    return project, env


def throughput(project: Path, env: dict[str, str], seconds: float, connections: int) -> None:
    env = {**env, **THREADS_ENV}
    with project_server(sys.executable, project, env, 1) as server:
        server.wait_ready()
        schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    example = schema["components"]["schemas"]["Record"]["examples"][0]
    body = json.dumps(example, ensure_ascii=False)
    script = project / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body}]==]\n"
    )
    table = Table(
        title=f"POST /predict, one model, wrk -t1 -c{connections} -d{seconds:g}s, 127.0.0.1",
        caption=f"FastAPI: `serve`, BentoML: `serve-bento`. {os.cpu_count()} cores, "
        f"load average before: {os.getloadavg()[0]:.2f}",
    )
    for column in ("server", "workers", "req/s", "p50 ms", "p99 ms", "% of ceiling", "non-2xx"):
        table.add_column(column, justify="left" if column == "server" else "right")
    ratios = []
    for workers in (1, 2):
        rps: dict[str, float] = {}
        for name, server in (
            ("bare FastAPI", bare_server(env, workers)),
            ("FastAPI", project_server(sys.executable, project, env, workers)),
            ("BentoML", bento_server(project, env, workers)),
        ):
            with server:
                server.wait_ready()
                wrk(f"{server.url}/predict", script, 2, connections)  # warm-up
                result = wrk(f"{server.url}/predict", script, seconds, connections)
            rps[name] = result["rps"]
            share = f"{100 * result['rps'] / rps['bare FastAPI']:.0f}%"
            cells = (f"{result['rps']:,.0f}", f"{result['p50']:.2f}", f"{result['p99']:.2f}")
            table.add_row(name, str(workers), *cells, share, f"{result['errors']:.0f}")
        ratios.append(f"{rps['FastAPI'] / rps['BentoML']:.1f}x ({workers} w)")
    console.print(table)
    console.print(f"FastAPI / BentoML: {', '.join(ratios)}; the issue's goal: >= 5x")


def failed(what: str, exc: Exception) -> tuple[str]:
    """Print why a measurement failed, with the tail of the command's output."""
    output = getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or ""
    lines = [line for line in str(output).splitlines() if line.strip()]
    console.print(f"[red]{what} failed:[/]")
    console.print(str(exc), *lines[-15:], sep="\n", markup=False, highlight=False)
    return ("failed (see above)",)


def with_setup(tmp: Path) -> tuple[str, ...]:
    """Render, fresh venv, `pip install -e` with every dependency, then the first prediction."""
    project, venv = tmp / "fresh" / "fraud-detection", tmp / "fresh" / "venv"
    python = str(venv / "bin" / "python")
    start = time.perf_counter()
    try:
        render(project, {})
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = [python, "-m", "pip", "install", "-q", "-e", str(project)]
        subprocess.run(pip, check=True, capture_output=True, text=True, timeout=1800)
        setup = time.perf_counter() - start
        trained, served = first_prediction(
            python, project, {**os.environ, "FRAUD_DETECTION_ROOT": str(project)}
        )
    except (subprocess.SubprocessError, RuntimeError) as exc:
        return failed("setup included", exc)
    total = setup + trained + served
    return f"{setup:.1f}", f"{trained:.1f}", f"{served:.1f}", f"{total:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-render", action="store_true", help="skip render timing")
    parser.add_argument("--skip-throughput", action="store_true", help="skip the wrk runs")
    parser.add_argument("--with-setup", action="store_true", help="also time venv + pip install")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        if not args.skip_render:
            table = Table(title="copier.run_copy (median of 3, tasks skipped)")
            table.add_column("variant")
            table.add_column("seconds", justify="right")
            for name, data in (("defaults", {}), ("xgboost + gitlab + dvc", LARGEST)):
                times = [render(Path(tmp) / f"render-{name[:3]}-{i}", data) for i in range(3)]
                table.add_row(name, f"{statistics.median(times):.2f}")
            console.print(table)

        project = Path(tmp) / "fraud-detection"
        render(project, {})
        env = project_env(project)
        table = Table(title="Render to first served prediction (default project)")
        for column in ("setup", "install s", "pipeline s", "serve->predict s", "total s"):
            table.add_column(column, justify="left" if column == "setup" else "right")
        try:
            trained, served = first_prediction(sys.executable, project, env)
            table.add_row(
                "excluded", "-", f"{trained:.1f}", f"{served:.1f}", f"{trained + served:.1f}"
            )
        except (subprocess.SubprocessError, RuntimeError) as exc:
            table.add_row("excluded", *failed("setup excluded", exc))
        table.add_row(
            "included",
            *with_setup(Path(tmp)) if args.with_setup else ("skipped (use --with-setup)",),
        )
        console.print(table)

        if args.skip_throughput:
            return
        if shutil.which("wrk") is None:
            console.print("[red]wrk not found: apt-get install wrk[/] (throughput skipped)")
            return
        try:
            project, env = bento_project(Path(tmp))
        except subprocess.SubprocessError as exc:
            failed("training the serving=bentoml project", exc)
            return
        throughput(project, env, args.duration, args.connections)


if __name__ == "__main__":
    main()
