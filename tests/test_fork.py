"""Team standards: the documented team file sets an organisation's answers, and a fork that
changes defaults, adds a question and a file keeps pulling upstream without conflicts
(docs/forking.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.helpers import ROOT, render
from tests.test_update import _git

TEAM_FILE = ROOT / "docs" / "examples" / "team.yml"


def test_the_team_file_lands_in_the_generated_files(tmp_path):
    team = yaml.safe_load(TEAM_FILE.read_text())
    project = tmp_path / "project"
    # The documented command, through copier's CLI: --data-file is the CLI's.
    command = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--skip-tasks"]
    command += ["--vcs-ref=HEAD", "--data-file", str(TEAM_FILE), str(ROOT), str(project)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    makefile = (project / "Makefile").read_text()
    assert f"IMAGE  ?= {team['image_registry']}/fraud-detection\n" in makefile
    assert f"python{team['python_version']}" in makefile
    deployment = (project / "deploy/k8s/base/server/deployment.yaml").read_text()
    assert f"image: {team['image_registry']}/fraud-detection:" in deployment
    for env in ("staging", "production"):
        namespace = yaml.safe_load((project / f"deploy/k8s/overlays/{env}/namespace.yaml").open())
        assert namespace["metadata"]["name"] == f"{team['k8s_namespace']}-{env}"
    assert (project / ".gitlab-ci.yml").exists() and not (project / ".github").exists()
    pyproject = (project / "pyproject.toml").read_text()
    assert f'name = "{team["author_name"]}", email = "{team["author_email"]}"' in pyproject
    assert f'license = {{ text = "{team["license"]}" }}' in pyproject
    # make setup (and the copy task, where dvc is installed) adds the team's remote.
    repository = (project / "src/fraud_detection/repository.py").read_text()
    add = f'"remote", "add", "-d", "storage", "{team["dvc_remote"]}"'
    assert add in repository
    assert f"DVC pushes to `{team['dvc_remote']}`" in (project / "README.md").read_text()
    # Recorded, so `copier update` keeps them without the file.
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert {key: recorded[key] for key in team} == team


def test_a_dvc_remote_with_a_space_is_refused(tmp_path):
    with pytest.raises(ValueError, match="dvc_remote 's3://my bucket' must be a folder or a URL"):
        render(tmp_path / "project", {"dvc_remote": "s3://my bucket"})


def test_a_fork_keeps_its_changes_and_pulls_upstream_without_conflicts(tmp_path):
    import copier

    upstream, fork, project = tmp_path / "upstream", tmp_path / "fork", tmp_path / "project"
    _git("clone", "--quiet", str(ROOT), str(upstream), cwd=tmp_path)
    _git("clone", "--quiet", str(upstream), str(fork), cwd=tmp_path)

    # The team's fork, as docs/forking.md recommends: a default changed in place, its own
    # question appended to copier.yml, its own files in a folder upstream never touches.
    questions = fork / "copier.yml"
    text = questions.read_text().replace(
        "default: ghcr.io/example", "default: registry.acme.example"
    )
    questions.write_text(
        text + "\n# ---------------------------------------------------------------- Acme\n"
        "cost_center:\n  type: str\n  help: Cost centre billed for the project\n"
        "  default: ml-platform\n"
    )
    team_doc = fork / "template" / "docs" / "acme" / "ownership.md.jinja"
    team_doc.parent.mkdir(parents=True)
    team_doc.write_text("# Ownership\n\nCost centre: {{ cost_center }}.\n")
    _git("add", "-A", cwd=fork)
    _git("commit", "-qm", "Acme: registry, cost centre, ownership page", cwd=fork)

    # Upstream releases a change meanwhile, in files the fork also has.
    makefile = upstream / "template" / "Makefile.jinja"
    makefile.write_text(makefile.read_text() + "\n# Upstream's new line.\n")
    readme = upstream / "template" / "{% if tabular %}README.md{% endif %}.jinja"
    readme.write_text(readme.read_text() + "\nUpstream's new paragraph.\n")
    _git("commit", "-qam", "Upstream change", cwd=upstream)

    _git("pull", "--quiet", "--no-rebase", "--no-edit", str(upstream), "HEAD", cwd=fork)
    assert not _git("diff", "--name-only", "--diff-filter=U", cwd=fork)

    copier.run_copy(str(fork), project, defaults=True, skip_tasks=True, vcs_ref="HEAD", quiet=True)
    assert (project / "docs/acme/ownership.md").read_text().endswith("Cost centre: ml-platform.\n")
    assert "IMAGE  ?= registry.acme.example/fraud-detection" in (project / "Makefile").read_text()
    assert "# Upstream's new line." in (project / "Makefile").read_text()
    assert "Upstream's new paragraph." in (project / "README.md").read_text()
