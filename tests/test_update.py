"""Update tier: a project generated from one release follows the next with `copier update`,
and nothing the user changed is lost.

Tests make their own releases in a scratch clone of this repository (the clone they run from
may carry no tags): tests/releases.py's RELEASES are tagged at their commits, and NEXT at a
commit on top of the working tree's HEAD that changes the template as a release does (a README
line, a parameter's default). Projects render with skip_tasks (the tasks' git init and first
commit are done here, without `uv lock`, which needs the network). An updated project is
checked with its own ruff settings here; its test suite needs the ML stack and runs in the
smoke tier.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from tests.helpers import ROOT
from tests.releases import NEXT, PREVIOUS, PROFILE_SINCE, RELEASES
from tests.variants import SUPPORTED

# One row a family (tests/variants.py): the default tabular project, the two other servers,
# an LLM project. A row whose profile is newer than PREVIOUS starts from the working tree's
# commit (HEAD), which NEXT's scratch commit follows.
FAMILIES = ["defaults", "bentoml", "triton-xgboost", "llm-tiny-local"]
NEXT_README_LINE = "Updated by the template's next release."
TABULAR_README = "template/{% if tabular %}README.md{% endif %}.jinja"
LLM_README = "template/{% if llm %}README.md{% endif %}.jinja"
TABULAR_PARAMS = "template/{% if tabular %}params.yaml{% endif %}.jinja"


def _git(*args: str, cwd: Path) -> str:
    identity = {"NAME": "Flywheel tests", "EMAIL": "tests@example.com"}
    env = {
        f"GIT_{who}_{key}": value
        for who in ("AUTHOR", "COMMITTER")
        for key, value in identity.items()
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _commit_all(project: Path, message: str) -> None:
    if not (project / ".git").exists():
        _git("init", "-q", "-b", "main", cwd=project)
    _git("add", "-A", cwd=project)
    _git("commit", "-q", "-m", message, cwd=project)


def _copy(template: Path, project: Path, ref: str, answers: dict | None = None) -> Path:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(template),
            project,
            data=answers or {},
            defaults=True,
            unsafe=True,
            skip_tasks=True,
            vcs_ref=ref,
            quiet=True,
        )
    _commit_all(project, "Initial commit from the Flywheel template")
    return project


def _update(project: Path, ref: str = NEXT, conflict: str = "inline") -> None:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_update(
            project,
            defaults=True,
            unsafe=True,
            overwrite=True,
            skip_tasks=True,
            vcs_ref=ref,
            conflict=conflict,
            quiet=True,
        )


def _files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A scratch clone with the releases tagged, and NEXT: HEAD plus a template change."""
    template = tmp_path_factory.mktemp("releases") / "template"
    _git("clone", "--quiet", str(ROOT), str(template), cwd=ROOT)
    for tag, commit in RELEASES.items():
        _git("tag", tag, commit, cwd=template)
    for readme in (TABULAR_README, LLM_README):
        path = template / readme
        path.write_text(path.read_text() + f"\n{NEXT_README_LINE}\n")
    params = template / TABULAR_PARAMS
    assert "max_iter: 200" in params.read_text()
    params.write_text(params.read_text().replace("max_iter: 200", "max_iter: 250"))
    _git("commit", "--quiet", "-am", "The next release's template change", cwd=template)
    _git("tag", NEXT, cwd=template)
    return template


def _simulate_training(project: Path) -> dict[str, bytes]:
    """What `make train` leaves behind, simulated by name: the update tier has no ML stack, and
    a real run takes 40-100 s a project (the smoke tier trains for real). The names are those a
    real `dvc repro` of the default project wrote (it was updated the same way by hand: the
    files stayed byte for byte).

    Returns the ignored files (they stay untracked) and their contents; dvc.lock and
    metrics.json are committed, as `make train` tells the user to.
    """
    ignored = {
        "mlflow.db": b"SQLite format 3\x00",
        "mlartifacts/models/m-1/artifacts/model.skops": b"model",
        "data/prepared/train.parquet": b"PAR1",
        "artifacts/train_run.json": b"{}",
    }
    for name, content in ignored.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(content)
    assert not _git("status", "--porcelain", "--", *ignored, cwd=project), "not ignored"
    (project / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (project / "metrics.json").write_text('{"roc_auc": 0.9}\n')
    _commit_all(project, "Train")
    return ignored


def _ruff(project: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "."], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _release_two_versions(template: Path) -> None:
    _git("clone", "--quiet", str(ROOT), str(template), cwd=ROOT)
    _git("tag", "v1.0.0", cwd=template)
    readme = template / "template" / "{% if tabular %}README.md{% endif %}.jinja"
    readme.write_text(readme.read_text() + "\nUpgraded by the template's v2.\n")
    params = template / "template" / "{% if tabular %}params.yaml{% endif %}.jinja"
    params.write_text(params.read_text() + "\nreleased_with: v2\n")
    _git("commit", "--quiet", "-am", "v2", cwd=template)
    _git("tag", "v2.0.0", cwd=template)


def test_copier_update_brings_template_changes_and_keeps_user_edits(tmp_path):
    import copier

    template, project = tmp_path / "template", tmp_path / "project"
    _release_two_versions(template)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(template), project, defaults=True, unsafe=True, vcs_ref="v1.0.0", quiet=True
        )
        # The user's own changes, committed as the tasks' first commit was.
        params = yaml.safe_load((project / "params.yaml").read_text())
        assert params["evaluate"]["baseline_margin"] != 0.1
        text = (project / "params.yaml").read_text()
        (project / "params.yaml").write_text(
            text.replace("baseline_margin: 0.05", "baseline_margin: 0.1")
        )
        (project / "notes.md").write_text("my notes\n")
        _git("add", "-A", cwd=project)
        _git("commit", "--quiet", "-m", "my changes", cwd=project)

        copier.run_update(
            project, defaults=True, unsafe=True, overwrite=True, vcs_ref="v2.0.0", quiet=True
        )

    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["evaluate"]["baseline_margin"] == 0.1, "the user's value was lost"
    assert params["released_with"] == "v2", "the template's new parameter did not arrive"
    assert "Upgraded by the template's v2." in (project / "README.md").read_text()
    assert (project / "notes.md").read_text() == "my notes\n"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v2.0.0"
    assert "<<<<<<<" not in (project / "params.yaml").read_text()


def test_a_tabular_project_from_before_the_llm_profile_updates_to_its_layout(tmp_path):
    """The LLM profile moved the tabular files behind `{% if tabular %}` names and split
    config.py: a project made before that follows with nothing lost and nothing left over."""
    import copier

    template, project, fresh = tmp_path / "template", tmp_path / "project", tmp_path / "fresh"
    _git("clone", "--quiet", str(ROOT), str(template), cwd=ROOT)
    # 0.1.0: the last release whose template wrote README.md from template/README.md.jinja.
    _git("tag", "v1.0.0", RELEASES["v0.1.0"], cwd=template)
    _git("tag", "v2.0.0", "HEAD", cwd=template)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(str(template), project, defaults=True, unsafe=True, vcs_ref="v1.0.0")
        assert not (project / "src" / "fraud_detection" / "params.py").exists()
        text = (project / "params.yaml").read_text()
        (project / "params.yaml").write_text(text.replace("max_iter: 200", "max_iter: 300"))
        (project / "src" / "fraud_detection" / "features.py").write_text("EXTRA = 1\n")
        _git("add", "-A", cwd=project)
        _git("commit", "--quiet", "-m", "my changes", cwd=project)
        copier.run_update(
            project, defaults=True, unsafe=True, overwrite=True, vcs_ref="v2.0.0", quiet=True
        )
        copier.run_copy(
            str(template), fresh, defaults=True, unsafe=True, vcs_ref="v2.0.0", quiet=True
        )

    assert "max_iter: 300" in (project / "params.yaml").read_text(), "the user's value was lost"
    assert (project / "src" / "fraud_detection" / "features.py").read_text() == "EXTRA = 1\n"

    def files(root: Path) -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and ".git" not in p.parts and p.name != ".copier-answers.yml"
        }

    # Exactly the new layout (the user's file aside), no conflict leftovers, same code.
    assert files(project) - {"src/fraud_detection/features.py"} == files(fresh)
    for name in files(fresh) - {"params.yaml"}:
        assert (project / name).read_bytes() == (fresh / name).read_bytes(), name


@pytest.mark.parametrize("family", FAMILIES)
def test_update_keeps_the_users_changes_and_brings_the_releases(template, tmp_path, family):
    answers = dict(SUPPORTED[family])
    since = PROFILE_SINCE[answers.get("use_case", "tabular")]
    released = Version(since) <= Version(PREVIOUS)
    start = PREVIOUS if released else _git("rev-parse", "HEAD", cwd=ROOT).strip()
    project = _copy(template, tmp_path / family, start, answers)
    package = yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]

    # The user's changes: a generated file edited, a module added, a parameter changed.
    assert NEXT_README_LINE not in (project / "README.md").read_text()
    readme = (project / "README.md").read_text().splitlines(keepends=True)
    (project / "README.md").write_text("".join([readme[0], "\nOur team's notes.\n", *readme[1:]]))
    module = project / "src" / package / "team_rules.py"
    module.write_text('"""Rules our team added."""\n\nTHRESHOLD = 0.7\n')
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("seed: 42", "seed: 7", 1))
    changed_by_next = "max_iter: 200" in params  # the HistGradientBoosting rows
    _commit_all(project, "Our changes")
    ignored = _simulate_training(project)

    _update(project)

    assert "Our team's notes." in (project / "README.md").read_text()
    assert NEXT_README_LINE in (project / "README.md").read_text()
    assert module.read_text() == '"""Rules our team added."""\n\nTHRESHOLD = 0.7\n'
    assert (project / "params.yaml").read_text().count("seed: 7") == 1
    if changed_by_next:
        assert "max_iter: 250" in (project / "params.yaml").read_text()
    for name, content in ignored.items():
        assert (project / name).read_bytes() == content, f"{name} was lost"
    assert (project / "dvc.lock").exists() and (project / "metrics.json").exists()
    assert not [name for name in _files(project) if name.endswith(".rej")]
    for name in _files(project) - set(ignored):
        text = (project / name).read_text(errors="replace")
        assert not re.search(r"^<<<<<<< ", text, re.M), f"conflict markers in {name}"
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["_commit"] == NEXT
    assert {k: recorded[k] for k in answers} == answers
    _ruff(project, "check")
    _ruff(project, "format", "--check")


@pytest.mark.parametrize("conflict", ["inline", "rej"])
def test_a_conflicting_edit_is_reported_the_way_copier_reports_it(template, tmp_path, conflict):
    """The user and the next release change the same line: inline markers hold both; rej
    keeps the release's line and puts the user's hunk in params.yaml.rej."""
    project = _copy(template, tmp_path / "project", PREVIOUS)
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("max_iter: 200", "max_iter: 300"))
    (project / "notes.md").write_text("my notes\n")
    _commit_all(project, "Our changes")

    _update(project, conflict=conflict)

    text = (project / "params.yaml").read_text()
    if conflict == "inline":
        ours, theirs = text.index("max_iter: 300"), text.index("max_iter: 250")
        assert text.index("<<<<<<< ") < ours < text.index("=======") < theirs
        assert theirs < text.index(">>>>>>> ")
        assert not (project / "params.yaml.rej").exists()
    else:
        assert "<<<<<<<" not in text and "max_iter: 250" in text
        assert "+    max_iter: 300" in (project / "params.yaml.rej").read_text()
    assert (project / "notes.md").read_text() == "my notes\n"
    assert NEXT_README_LINE in (project / "README.md").read_text()


def test_the_migration_renames_the_license_answer(template, tmp_path):
    """0.2.0 renamed license Proprietary to LicenseRef-Proprietary: `_migrations` rewrites the
    answers file before the update renders, so the project keeps its licence (without it,
    copier drops the recorded answer, no longer a choice, and writes the default: MIT)."""
    import copier

    with pytest.raises(ValueError, match="Invalid choice"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the next release refuses the old value
        copier.run_copy(
            str(template),
            tmp_path / "refused",
            data={"license": "Proprietary"},
            defaults=True,
            vcs_ref=NEXT,
            quiet=True,
            skip_tasks=True,
        )
    # The release before the rename; the update crosses v0.2.0 to NEXT.
    project = _copy(template, tmp_path / "project", "v0.1.0", {"license": "Proprietary"})
    assert 'license = { text = "Proprietary" }' in (project / "pyproject.toml").read_text()
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace("description =", "# ours\ndescription ="))
    _commit_all(project, "Our changes")

    _update(project)

    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["license"] == "LicenseRef-Proprietary"
    assert recorded["_commit"] == NEXT
    pyproject = (project / "pyproject.toml").read_text()
    assert 'license = { text = "LicenseRef-Proprietary" }' in pyproject
    assert "# ours\ndescription =" in pyproject


def test_the_changelog_has_a_section_for_every_release():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", changelog, re.M)
    assert headings[0] == f"Unreleased ({NEXT.removeprefix('v')})", headings
    for tag, commit in RELEASES.items():
        assert any(h.startswith(f"{tag.removeprefix('v')} - ") for h in headings), (tag, headings)
        _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=ROOT)  # the commit is in this history
