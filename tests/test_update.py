"""Update tier: a project generated from one release follows the next with `copier update`,
and nothing the user changed is lost.

The test makes its own two releases in a scratch clone of this repository: v1 is HEAD, v2 adds
a line to the generated README and a new parameter. The user edits params.yaml (another value)
and adds a file; after the update both survive next to the template's changes.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import yaml

from tests.helpers import ROOT


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
    # The last commit whose template still wrote README.md from template/README.md.jinja.
    moved = _git("rev-list", "-1", "HEAD", "--", "template/README.md.jinja", cwd=template).strip()
    _git("tag", "v1.0.0", f"{moved}~1", cwd=template)
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
