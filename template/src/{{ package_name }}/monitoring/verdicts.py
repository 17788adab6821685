"""What a drift test decides: per-column verdicts, the dataset verdict, and Evidently's tests.

Both engines (Evidently and the vectorised fast path) return these, so the outputs (summary,
plot, gauges) never need to know which engine decided.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatTest:
    """One of Evidently's stat tests: its registry name, display name and decision rule."""

    name: str
    title: str
    default_threshold: float
    drift_if: str  # how the score compares with the threshold when the column drifted

    def drifted(self, score: float, threshold: float) -> bool:
        # NaN compares False everywhere, as in Evidently: no verdict is not drift.
        return bool(
            {"<": score < threshold, "<=": score <= threshold, ">=": score >= threshold}[
                self.drift_if
            ]
        )


KS = StatTest("ks", "K-S p_value", 0.05, "<=")
CHI_SQUARE = StatTest("chisquare", "chi-square p_value", 0.05, "<")
Z = StatTest("z", "Z-test p_value", 0.05, "<")
WASSERSTEIN = StatTest("wasserstein", "Wasserstein distance (normed)", 0.1, ">=")
JENSEN_SHANNON = StatTest("jensenshannon", "Jensen-Shannon distance", 0.1, ">=")
# Evidently reports a column's test by its display name: this maps it back.
STAT_TESTS = {test.title: test for test in (KS, CHI_SQUARE, Z, WASSERSTEIN, JENSEN_SHANNON)}


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numeric or categorical, from the feature spec
    test: str  # Evidently's name for the stat test: ks, wasserstein, jensenshannon...
    test_title: str
    score: float
    threshold: float
    drift_if: str  # "<", "<=" (p-values) or ">=" (distances)
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    drift_share_threshold: float
    engine: str  # evidently or fast

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.columns)

    @property
    def dataset_drift(self) -> bool:
        return self.share >= self.drift_share_threshold  # Evidently's rule (get_dataset_drift)
