"""The template's releases, as data: which commit each published version is.

The repository may be cloned without tags (CI's clone need not carry them), so tests never read
tags from it: they tag these commits in a scratch clone. CHANGELOG.md has a section per release
here (tests/test_update.py checks it). Cutting a release: docs/releasing.md.
"""

from __future__ import annotations

# Tag: commit, oldest first.
RELEASES = {
    "v0.1.0": "8746ff6d75eafecf00561e655f2a4cb0b7b53eeb",  # the tabular profile
}
PREVIOUS = list(RELEASES)[-1]
# The version the working tree becomes when released (CHANGELOG's Unreleased section).
NEXT = "v0.2.0"
# The release that brought each profile: a project of a newer one starts from the working tree.
PROFILE_SINCE = {"tabular": "v0.1.0", "llm": "v0.2.0"}
