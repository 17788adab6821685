"""Cookiecutter's answers, judged and rendered by copier.yml and template/: one source.

Cookiecutter loads `TemplateRoot` as a Jinja extension (cookiecutter.json's `_extensions`), so the
hooks learn where the template lives: cookiecutter gives them the path as typed (`.`, say) and
runs them in the new project's folder. The hooks then import this module from there to turn
cookiecutter's answers into copier's: pre_gen_project.py refuses what copier.yml's validators
refuse, with their messages; post_gen_project.py renders template/ with copier.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.ext import Extension
from jinja2.sandbox import SandboxedEnvironment

ROOT = Path(__file__).resolve().parents[1]
MISSING_COPIER = (
    "Flywheel's files are rendered by copier, which this Python ({python}) cannot import.\n"
    "Install it next to cookiecutter: pip install copier (with pipx: pipx inject cookiecutter "
    "copier), then run cookiecutter again."
)


class TemplateRoot(Extension):
    """Jinja global `template_root()`: the template's absolute path, where cookiecutter renders
    its hooks from (cookiecutter.hooks.run_hook_from_repo_dir works in the template's folder)."""

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        environment.globals["template_root"] = os.getcwd


def _to_bool(value: Any) -> bool:
    """copier's reading of a bool answer (numbers, YAML words such as yes/no/off)."""
    try:
        return bool(float(value))
    except (TypeError, ValueError):
        pass
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"", "n", "no", "f", "false", "off", "~", "null", "none"}:
            return False
        if word in {"y", "yes", "t", "true", "on"}:
            return True
    return bool(value)


CAST = {"bool": _to_bool, "int": int, "float": float, "str": str}


def copier_answers(cookiecutter: dict[str, Any]) -> dict[str, Any]:
    """The data copier gets for cookiecutter's answers, as copier.yml's own Jinja judges them.

    Cast to each question's type (cookiecutter hands numbers over as text), then, as copier does:
    an answer to a question that copier would not ask (`when` false) is dropped when it is the
    default, validated otherwise; computed answers (`when: false`) are left to copier. Raises
    ValueError with copier's message for the first answer copier.yml's validators refuse.
    """
    copier_yml = yaml.safe_load((ROOT / "copier.yml").read_text())
    env = SandboxedEnvironment(**copier_yml.get("_envops", {}))
    context: dict[str, Any] = {}

    def render(value: Any, **extra: Any) -> Any:
        if not isinstance(value, str):
            return value
        return env.from_string(value).render({**context, **extra})

    data: dict[str, Any] = {}
    for name, question in copier_yml.items():
        if name.startswith("_"):
            continue
        cast = CAST[question.get("type", "str")]
        default = cast(render(question.get("default")))
        applies = _to_bool(render(question.get("when", True)))
        value = cast(cookiecutter[name]) if name in cookiecutter else default
        context[name] = value
        if name not in cookiecutter or (not applies and value == default):
            continue
        try:
            message = render(question.get("validator", ""), **{name: value}).strip()
        except Exception as error:  # copier reports a validator that fails to render this way
            message = str(error)
        if message:
            raise ValueError(f"Validation error for question '{name}': {message}")
        data[name] = value
    return data


def template_source(cookiecutter: dict[str, Any]) -> str:
    """What `copier update` will read (`_src_path`): this checkout when cookiecutter was given a
    folder, the repository's URL when it cloned one (`gh:org/flywheel`, a git URL)."""
    if cookiecutter["_repo_dir"] == cookiecutter["_template"]:
        return str(ROOT)
    origin = subprocess.run(
        ["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True, text=True
    ).stdout.strip()
    if not origin:
        return str(ROOT)
    # `git+` tells copier it is a git URL whatever its form (copier guesses only from a few
    # hosts and a .git suffix).
    return origin if origin.startswith("git+") else f"git+{origin}"


def render_with_copier(cookiecutter: dict[str, Any], project: Path) -> None:
    """Render template/ into `project` with copier: its files, answers file and tasks."""
    try:
        import copier
    except ModuleNotFoundError:
        sys.exit(MISSING_COPIER.format(python=sys.executable))
    copier.run_copy(
        template_source(cookiecutter),
        project,
        data=copier_answers(cookiecutter),
        defaults=True,
        unsafe=True,  # the template's own tasks (git init, first commit), as with --trust
        skip_tasks=_to_bool(cookiecutter.get("_skip_tasks", False)),
        # What cookiecutter read cookiecutter.json and the hooks from: the checkout as it is.
        vcs_ref=cookiecutter.get("_checkout") or "HEAD",
    )
