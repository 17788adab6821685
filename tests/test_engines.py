"""Engines tier: cookiecutter, from the same copier.yml and template/, makes what copier makes.

cookiecutter.json is generated from copier.yml (tools/cookiecutter_json.py); cookiecutter's hooks
judge the answers with copier.yml's validators and render template/ with copier. So every
supported row renders to the same files with both engines, every unsupported row is refused
with the same message, and a project made with cookiecutter follows the template with
`copier update`. Copier's tasks are skipped except in the README's cookiecutter command, which
runs them once.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, TELEMETRY_OFF, render
from tests.variants import SUPPORTED, UNSUPPORTED

ANSWERS_FILE = ".copier-answers.yml"
INITIAL_COMMIT = "Initial commit from the Flywheel template"
# The README's second way to generate (the line that starts with `cookiecutter `).
README_COMMAND = next(
    line
    for line in (ROOT / "README.md").read_text().splitlines()
    if line.startswith("cookiecutter ")
)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A HOME for cookiecutter's replay files and clones, away from the user's."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def config(home) -> Path:
    """A cookiecutter user config that keeps its files under `home` (no ~/.cookiecutterrc)."""
    path = home / "cookiecutterrc.yaml"
    path.write_text(
        yaml.safe_dump({"replay_dir": str(home / "replay"), "cookiecutters_dir": str(home / "cc")})
    )
    return path


def by_cookiecutter(output_dir: Path, answers: dict[str, Any], config: Path) -> Path:
    """`cookiecutter --no-input` with `answers` as extra context; copier's tasks skipped."""
    from cookiecutter.main import cookiecutter

    project = cookiecutter(
        str(ROOT),
        no_input=True,
        extra_context={**answers, "_skip_tasks": True},
        output_dir=str(output_dir),
        config_file=str(config),
    )
    return Path(project)


def tree(project: Path) -> dict[str, tuple[int, str | bytes]]:
    """Every path under `project` (git's own files aside): mode and content (the answers file
    read as data, without `_src_path`, which names where each engine was started from)."""
    files: dict[str, tuple[int, str | bytes]] = {}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if ".git" in relative.parts:
            continue
        content: Any = path.read_bytes() if path.is_file() else "<dir>"
        if relative.as_posix() == ANSWERS_FILE:
            content = {k: v for k, v in yaml.safe_load(content).items() if k != "_src_path"}
            content = yaml.safe_dump(content)
        files[relative.as_posix()] = (path.stat().st_mode & 0o777, content)
    return files


def assert_same_tree(made: Path, expected: Path) -> None:
    mine, theirs = tree(made), tree(expected)
    assert sorted(mine) == sorted(theirs), "cookiecutter and copier made different paths"
    differ = [path for path in theirs if mine[path] != theirs[path]]
    assert not differ, f"cookiecutter and copier wrote these differently: {differ}"


def git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=project, capture_output=True, text=True, check=True
    ).stdout


def test_cookiecutter_json_is_generated_from_copier_yml():
    from tools.cookiecutter_json import render as cookiecutter_json

    committed = (ROOT / "cookiecutter.json").read_text()
    hint = "cookiecutter.json differs from copier.yml: run python tools/cookiecutter_json.py"
    assert committed == cookiecutter_json(), hint


def test_computed_answers_are_no_cookiecutter_prompts():
    import json

    questions = yaml.safe_load((ROOT / "copier.yml").read_text())
    computed = {
        name
        for name, spec in questions.items()
        if not name.startswith("_") and spec.get("when") is False
    }
    asked = {name for name in json.loads((ROOT / "cookiecutter.json").read_text())}
    assert computed, "copier.yml has computed answers (tabular, llm, ...)"
    assert not computed & asked


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_both_engines_make_the_same_project(name, tmp_path, config):
    answers = SUPPORTED[name]
    by_copier = render(tmp_path / "copier" / "project", answers)
    assert_same_tree(by_cookiecutter(tmp_path / "cookiecutter", answers, config), by_copier)


@pytest.mark.parametrize(("answers", "message"), list(UNSUPPORTED.values()), ids=list(UNSUPPORTED))
def test_cookiecutter_refuses_what_copier_refuses(answers, message, tmp_path, config, capfd):
    from cookiecutter.exceptions import FailedHookException

    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        render(tmp_path / "copier", answers)
    copier_message = str(refused.value)
    output = tmp_path / "cookiecutter"
    choice = re.match(r"Invalid choice for '(\w+)'", copier_message)
    if choice:
        # Cookiecutter checks a value against a choice list itself, before any hook runs: its
        # own words, naming the answer, the value and the choices.
        name = choice[1]
        expected = f"{answers[name]} provided for choice variable {name}, but the choices are"
        with pytest.raises(ValueError, match=re.escape(expected)):
            by_cookiecutter(output, answers, config)
    else:
        capfd.readouterr()
        with pytest.raises(FailedHookException):
            by_cookiecutter(output, answers, config)
        assert copier_message in capfd.readouterr().err
    assert not output.exists() or not any(output.iterdir()), "a refused project was written"


def test_team_defaults_file_answers_as_copier_data_file_does(tmp_path, home):
    """`cookiecutter --config-file team.yaml` (default_context) = `copier copy --data-file`."""
    team = ROOT / "tests" / "engines" / "team.yaml"
    data_file = tmp_path / "team-data.yml"
    data = yaml.safe_load(team.read_text())["default_context"]
    data_file.write_text(yaml.safe_dump(data))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **TELEMETRY_OFF, "HOME": str(home)}
    copier_cli = [str(bin_dir / "copier"), "copy", "--trust", "--defaults", "--skip-tasks"]
    subprocess.run(
        [*copier_cli, "--vcs-ref=HEAD", "--data-file", str(data_file), str(ROOT), "by-copier"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    cookiecutter_cli = [str(bin_dir / "cookiecutter"), "--no-input", "--config-file", str(team)]
    subprocess.run(
        [*cookiecutter_cli, str(ROOT), "--output-dir", "by-cookiecutter", "_skip_tasks=yes"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    project = tmp_path / "by-cookiecutter" / "fraud-detection"
    recorded = yaml.safe_load((project / ANSWERS_FILE).read_text())
    assert {name: recorded[name] for name in data} == data, "the team's answers were not used"
    assert_same_tree(project, tmp_path / "by-copier")


def test_cookiecutter_from_a_git_url_records_the_url(tmp_path, config):
    """Cookiecutter clones a URL (gh:org/flywheel, https://...); copier must record the URL, not
    cookiecutter's clone, so `copier update` fetches the template's next releases."""
    from cookiecutter.main import cookiecutter

    url = f"git+file://{ROOT}"
    project = cookiecutter(
        url,
        no_input=True,
        extra_context={"_skip_tasks": True},
        output_dir=str(tmp_path),
        config_file=str(config),
    )
    answers = yaml.safe_load((Path(project) / ANSWERS_FILE).read_text())
    assert answers["_src_path"] == url


@pytest.fixture(scope="module")
def readme_project(tmp_path_factory, home) -> Path:
    """The README's cookiecutter command, verbatim, in a fresh clone; copier's tasks run."""
    where = tmp_path_factory.mktemp("readme")
    clone = where / "flywheel"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    # The cookiecutter and copier beside this Python, first on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, **TELEMETRY_OFF, "HOME": str(home), "PATH": path}
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", README_COMMAND], cwd=clone, env=env, check=True
    )
    (project,) = (p for p in where.iterdir() if p != clone)
    return project


def test_readme_cookiecutter_command_runs_the_tasks_as_copier_does(readme_project, tmp_path):
    answers = yaml.safe_load((readme_project / ANSWERS_FILE).read_text())
    assert answers["_src_path"] == str(readme_project.parent / "flywheel"), (
        "cookiecutter was given `.`: copier must record the clone's absolute path"
    )
    assert INITIAL_COMMIT in git(readme_project, "log", "--oneline")
    assert git(readme_project, "status", "--porcelain") == ""

    # The command's answers (`key=value` after the options), given to copier as data.
    words = shlex.split(README_COMMAND)
    answers = dict(word.split("=", 1) for word in words if "=" in word and word[0] != "-")
    by_copier = render(tmp_path / "project", answers, tasks=True)
    committed = git(readme_project, "ls-files")
    assert committed == git(by_copier, "ls-files")
    for name in committed.splitlines():
        if name != ANSWERS_FILE:
            assert (readme_project / name).read_bytes() == (by_copier / name).read_bytes(), name


def test_copier_update_works_on_a_project_cookiecutter_made(readme_project):
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_update(
            readme_project, defaults=True, unsafe=True, skip_tasks=True, overwrite=True, quiet=True
        )
    assert git(readme_project, "status", "--porcelain") == "", "the update changed the project"
    assert INITIAL_COMMIT in git(readme_project, "log", "--oneline")


def test_cookiecutter_without_copier_says_what_to_install(tmp_path, home):
    """A Python with cookiecutter and everything else installed here, copier removed."""
    site = Path(sysconfig.get_paths()["purelib"])
    linked = tmp_path / "site-without-copier"
    linked.mkdir()
    for entry in site.iterdir():
        if not entry.name.startswith("copier") and entry.suffix != ".pth":
            (linked / entry.name).symlink_to(entry)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(venv_site) / "without-copier.pth").write_text(f"{linked}\n")

    done = subprocess.run(
        [python, "-m", "cookiecutter", "--no-input", str(ROOT), "--output-dir", "out"],
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "pip install copier" in done.stderr
    assert not (tmp_path / "out" / "fraud-detection").exists()
