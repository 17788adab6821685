"""Render tier: every supported answer set renders clean; every unsupported one is refused."""

from __future__ import annotations

import json
import keyword
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, package_of, render
from tests.variants import SUPPORTED, UNSUPPORTED

TEMPLATE = ROOT / "template"

LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|(?<!chat_template)\.jinja\b")
# Templates meant to survive rendering: the chat template (transformers' Jinja), Ollama's
# Modelfile (Go templates), and the LLM tests' fixture chat templates, copied as they are.
VERBATIM_TEMPLATES = ("chat_template.jinja", "Modelfile", "llm_fixtures.py")
# Prometheus alert templates ({{ $labels.handler }}, {{ $value | humanizePercentage }}) are meant
# to survive rendering in the monitoring folders; `{{ $` is never Jinja (no name starts with $).
PROMETHEUS_LEFTOVER = re.compile(r"(?<!\$)\{\{(?! \$)|\{%|\.jinja\b")
PROMETHEUS_FOLDERS = ("deploy/monitoring/", "deploy/k8s/monitoring/")


@pytest.fixture(scope="module", params=list(SUPPORTED), ids=list(SUPPORTED))
def rendered(request, tmp_path_factory) -> tuple[dict, Path]:
    answers = SUPPORTED[request.param]
    return answers, render(tmp_path_factory.mktemp(request.param) / "project", answers)


def _files(project: Path) -> list[Path]:
    return [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts]


def test_every_file_parses(rendered):
    _, project = rendered
    for path in _files(project):
        text = path.read_text()
        if path.suffix in {".yml", ".yaml"} or path.name == ".copier-answers.yml":
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".py":
            compile(text, str(path), "exec")


def test_no_template_syntax_is_left(rendered):
    _, project = rendered
    for path in _files(project):
        monitoring = path.relative_to(project).as_posix().startswith(PROMETHEUS_FOLDERS)
        leftover = PROMETHEUS_LEFTOVER if monitoring else LEFTOVER
        if path.name not in VERBATIM_TEMPLATES:
            assert not leftover.search(path.read_text()), f"leftover template syntax in {path}"
        assert ("{{" not in str(path) and not path.name.endswith(".jinja")) or (
            path.name == "chat_template.jinja"
        )


def test_python_is_lint_clean(rendered):
    _, project = rendered
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_markdown_is_lint_clean(rendered):
    """pymarkdown over every rendered Markdown file: a Jinja whitespace-control slip that joins
    two paragraphs, or glues a heading or a fence to text, fails here (tests/pymarkdown.json:
    GitHub tables on, prose lines up to 120 characters since names expand in them)."""
    _, project = rendered
    documents = sorted(str(p) for p in _files(project) if p.suffix == ".md")
    assert documents, "no Markdown rendered"
    config = ROOT / "tests" / "pymarkdown.json"
    result = subprocess.run(
        [sys.executable, "-m", "pymarkdown", "--config", str(config), "scan", *documents],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_answers_are_recorded_for_copier_update(rendered):
    answers, project = rendered
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert "_src_path" in recorded and "_commit" in recorded
    for key, value in answers.items():
        assert recorded[key] == value


def optional_paths() -> set[str]:
    """Template files and folders switched by their names (`{% if %}`), as they render.

    Read from the template tree, so that a new optional file is in the render tier's check at
    once; the package folder is written `src/{package}`, as in tests/variants.py's rows.
    """
    return set(_optional_sources())


def _optional_sources() -> dict[str, set[str]]:
    """Each optional path as it renders -> the template paths that render it (two for a file
    each profile writes under one name, e.g. README.md)."""
    found: dict[str, set[str]] = {}
    for path in TEMPLATE.rglob("*"):
        if "{%" in path.name:
            parts = path.relative_to(TEMPLATE).parts
            # .jinja is the template suffix only outside the tags (chat_template.jinja stays).
            parts = [_rendered_name(part) for part in parts]
            name = "/".join(parts).replace("{{ package_name }}", "{package}")
            found.setdefault(name, set()).add(path.relative_to(TEMPLATE).as_posix())
    return found


def _rendered_name(part: str) -> str:
    suffix = part.endswith(".jinja")
    name = re.sub(r"\{%.*?%\}", "", part.removesuffix(".jinja") if suffix else part)
    return name


def test_optional_paths_are_exactly_those_the_row_lists(rendered):
    answers, project = rendered
    package = package_of(project)
    present = {p for p in optional_paths() if (project / p.format(package=package)).exists()}
    missing, unexpected = answers.files - present, present - answers.files
    assert not missing and not unexpected, (
        f"tests/variants.py's row lists {sorted(missing)} (not rendered); the render holds "
        f"{sorted(unexpected)} (not in the row)"
    )


def test_every_optional_path_is_switched_on_and_off_by_some_rows():
    """A new optional file needs rows: one variant with it and one without."""
    optional = optional_paths()
    listed = [variant.files for variant in SUPPORTED.values()]
    unknown = set().union(*listed) - optional
    assert not unknown, f"rows list paths that are not optional in template/: {sorted(unknown)}"
    never = optional - set().union(*listed)
    # A path each profile renders from its own source (README.md) is in every row, by design.
    per_profile = {path for path, sources in _optional_sources().items() if len(sources) > 1}
    always = set.intersection(*map(set, listed)) & optional - per_profile
    assert not never, f"no row of tests/variants.py renders {sorted(never)}"
    assert not always, f"every row renders {sorted(always)}: no row shows it switched off"


def test_names_and_dependencies_follow_the_answers(rendered):
    answers, project = rendered
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    package = package_of(project)
    assert (project / "src" / package / "cli.py").is_file()
    assert meta["requires-python"] == f">={answers.get('python_version', '3.11')}"
    names = {re.split(r"[<>=\[ ;]", dep)[0] for dep in meta["dependencies"]}
    assert ("dvc" in names) == answers.get("use_dvc", True)
    assert ("wandb" in names) == (answers.get("tracker") == "wandb")
    params = yaml.safe_load((project / "params.yaml").read_text())
    if answers.get("use_case") == "llm":
        assert {
            "torch",
            "transformers",
            "peft",
            "trl",
            "bitsandbytes",
            "datasketch",
            "kfp",
            "evidently",  # the drift job of the chats
        } <= names
        assert "scikit-learn" not in names
        assert params["model"]["base"] == answers.get(
            "base_model", "meta-llama/Llama-3.1-8B-Instruct"
        )
        assert params["model"]["method"] == answers.get("finetune_method", "sft")
        assert params["model"]["lora"]["r"] == answers.get("lora_r", 16)
        return
    family = answers.get("model_family", "hist_gradient_boosting")
    assert ("xgboost-cpu" in names) == (family == "xgboost")
    assert ("lightgbm" in names) == (family == "lightgbm")
    assert not {"torch", "peft", "trl"} & names
    assert params["model"]["family"] == family


def test_make_targets_of_the_readme_exist(rendered):
    _, project = rendered
    makefile = (project / "Makefile").read_text()
    readme = (project / "README.md").read_text()
    for target in ("setup", "train", "serve", "smoke", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in readme


@pytest.mark.parametrize(("answers", "message"), list(UNSUPPORTED.values()), ids=list(UNSUPPORTED))
def test_unsupported_answers_are_refused_with_a_message(tmp_path, answers, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        render(tmp_path / "project", answers)
    assert not (tmp_path / "project" / "pyproject.toml").exists()


def test_package_name_validator_refuses_every_python_keyword():
    """copier.yml writes the keywords out (validators are Jinja): none may be missing."""
    import jinja2

    validator = yaml.safe_load((ROOT / "copier.yml").read_text())["package_name"]["validator"]
    check = jinja2.Environment().from_string(validator)
    words = sorted({*keyword.kwlist, *keyword.softkwlist, "type"})  # `type`: soft from 3.12
    accepted = [w for w in words if "is a Python keyword" not in check.render(package_name=w)]
    assert not accepted, f"copier.yml's package_name validator accepts {accepted}"
    assert check.render(package_name="fraud_detection").strip() == ""


def test_tasks_make_a_repository_with_a_first_commit(tmp_path):
    project = render(tmp_path / "project", {"use_dvc": False}, tasks=True)
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=project, capture_output=True, text=True, check=True
    )
    assert "Initial commit from the Flywheel template" in log.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""


def test_options_reference_lists_every_question():
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    names = [key for key in config if not key.startswith("_")]
    # Computed values (`when: false`) are never asked; the page lists them apart.
    computed = [key for key in names if config[key].get("when") is False]
    reference = (ROOT / "docs" / "options.md").read_text()
    asked, _, derived = reference.partition("## Computed values")
    missing = [q for q in names if q not in computed and f"`{q}`" not in asked]
    missing += [q for q in computed if f"`{q}`" not in derived]
    assert not missing, f"docs/options.md does not describe {missing}"
