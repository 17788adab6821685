#!/usr/bin/env python3
"""Write cookiecutter.json from copier.yml: the same questions, choices and defaults.

copier.yml is the one source of the questions. Cookiecutter asks them in the same order, with
copier's `help` as the prompt and its choice labels (`__prompts__`); copier's Jinja defaults
become cookiecutter's (`project_slug` from `{{ cookiecutter.project_name ... }}`). Computed
answers (`when: false`) are no prompts: copier computes them when hooks/post_gen_project.py
renders template/. Conditional questions (`when: "{{ use_case == 'llm' }}"`) are asked by
cookiecutter in every case (it has no `when`); hooks/copier_bridge.py drops the answers copier
would not have asked.

Usage (from the repository root): `python tools/cookiecutter_json.py` rewrites cookiecutter.json;
tests/test_engines.py fails when the committed file differs from what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Where cookiecutter imports the extension that tells the hooks where the template lives.
EXTENSION = "hooks.copier_bridge.TemplateRoot"


def questions(copier_yml: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """copier.yml's questions, in order, without its settings (`_subdirectory`, `_tasks`...)."""
    return {name: spec for name, spec in copier_yml.items() if not name.startswith("_")}


def is_computed(spec: dict[str, Any]) -> bool:
    """A `when: false` answer: never asked, never recorded, recomputed on every render."""
    return spec.get("when") is False


def choice_values(spec: dict[str, Any]) -> list[Any]:
    """The values a choice question takes (copier's choices: a list, or labels to values)."""
    choices = spec["choices"]
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


def to_cookiecutter(template: str, asked: set[str], computed: set[str]) -> str:
    """copier's Jinja with each answer `x` read as `cookiecutter.x`, the way cookiecutter
    renders its defaults; attributes (`.lower()`) and everything else stay as written."""
    tokens = list(jinja2.Environment().lex(template))
    if "".join(value for _, _, value in tokens) != template:
        raise ValueError(f"cannot translate {template!r}: the Jinja lexer does not round-trip it")
    out, previous = [], None
    for _, kind, value in tokens:
        if kind == "name" and previous != "." and value in computed:
            raise ValueError(f"{template!r} reads {value}, a computed answer cookiecutter lacks")
        if kind == "name" and previous != "." and value in asked:
            value = f"cookiecutter.{value}"
        out.append(value)
        if kind != "whitespace":
            previous = value
    return "".join(out)


def cookiecutter_json(copier_yml: dict[str, Any]) -> dict[str, Any]:
    """The cookiecutter.json content for the questions of `copier_yml`."""
    specs = questions(copier_yml)
    computed = {name for name, spec in specs.items() if is_computed(spec)}
    asked: set[str] = set()
    context: dict[str, Any] = {}
    prompts: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in computed:
            continue
        default = spec["default"]
        templated = isinstance(default, str) and "{{" in default
        if templated:
            default = to_cookiecutter(default, asked, computed)
        if "choices" in spec:
            values = choice_values(spec)
            if templated:
                # A default that depends on earlier answers renders first; the plain values stay
                # in the list, so `--config-file`/extra context can pick any of them (cookiecutter
                # refuses a value its list does not hold).
                context[name] = [default, *values]
            else:
                context[name] = [default, *(value for value in values if value != default)]
            labels = spec["choices"] if isinstance(spec["choices"], dict) else {}
            prompts[name] = {
                "__prompt__": spec["help"],
                **{str(value): label for label, value in labels.items()},
            }
        else:
            context[name] = default
            prompts[name] = spec["help"]
        asked.add(name)
    # Private settings (not asked): where the hooks find the template, and copier's --skip-tasks.
    context["_extensions"] = [EXTENSION]
    context["_skip_tasks"] = False
    context["__prompts__"] = prompts
    return context


def render(copier_yml_path: Path = ROOT / "copier.yml") -> str:
    """cookiecutter.json's text, as committed."""
    content = cookiecutter_json(yaml.safe_load(copier_yml_path.read_text()))
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = ROOT / "cookiecutter.json"
    target.write_text(render())
    print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)
