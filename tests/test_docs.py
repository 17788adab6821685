"""The documentation site's sources agree with the template (`nox -s docs` also builds the site
with `mkdocs build --strict`, which fails on a broken link, anchor or a page missing from the nav).
"""

from __future__ import annotations

import re

import yaml

from tests.helpers import ROOT
from tools.options_reference import COPIER_YML, PAGE, TEMPLATE, reference

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_options_reference_is_generated_from_copier_yml():
    assert PAGE.read_text() == reference(), (
        "docs/options.md is stale: run `python tools/options_reference.py` and commit it"
    )


def test_options_reference_follows_a_new_question(tmp_path):
    config = yaml.safe_load(COPIER_YML.read_text())
    config["gpu_count"] = {"type": "int", "help": "GPUs per replica", "default": 1}
    changed = tmp_path / "copier.yml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    page = reference(changed, TEMPLATE)
    assert "### `gpu_count`\n\nGPUs per replica." in page
    assert page != PAGE.read_text()


def test_options_reference_names_the_files_an_answer_switches():
    page = reference()
    use_dvc = page.split("### `use_dvc`", 1)[1].split("###", 1)[0]
    assert "`.dvcignore`, `dvc.yaml`" in use_dvc
    assert "`tests/`: `test_dvc.py`" in use_dvc


def test_readme_links_point_at_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = [t.split("#")[0] for t in LINK.findall(readme) if "://" not in t]
    missing = [t for t in targets if t and not (ROOT / t).exists()]
    assert targets, "README.md links to no file: the check below would pass vacuously"
    assert not missing, f"README.md links to missing files: {missing}"
