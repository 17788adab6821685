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
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nUpgraded by the template's v2.\n")
    params = template / "template" / "params.yaml.jinja"
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
