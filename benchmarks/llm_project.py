"""The LLM profile's benchmarks run against a rendered project: tests/variants.py's llm-tiny-local
row (package `support_bot`), rendered once into benchmarks/.llm-project/ and put on sys.path.

Run them in an environment with that project's dependencies, e.g. its own `make setup` venv.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "benchmarks" / ".llm-project"


def ensure() -> Path:
    """The rendered project's root, its src/ and tests/ importable."""
    sys.path.insert(0, str(REPO))
    if not (ROOT / "pyproject.toml").is_file():
        from tests.helpers import render
        from tests.variants import SUPPORTED

        render(ROOT, SUPPORTED["llm-tiny-local"])
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
    return ROOT
