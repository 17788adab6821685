"""`python -m tests.production.requirements OUT`: what the production tier installs.

The default project's dependencies (its tests run against the servers), not the smoke tier's
union of every variant: no torch, no LLM stack.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.helpers import dependencies, render

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        requirements = dependencies(render(Path(tmp) / "defaults", {}))
    Path(sys.argv[1]).write_text("\n".join(sorted(requirements)) + "\n")
