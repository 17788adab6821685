"""The trees of the classifier, predicted by treelite's native library instead of Python.

scikit-learn's HistGradientBoosting predicts tree by tree from Python: about 20 us a tree
whatever the batch size, 1 ms for a small model, and all of it holding the GIL the event loop
needs. treelite (the tree-model exchange format) imports the model, and its GTIL predicts all
trees in one C++ call (about 30 us for one row) with the GIL released. XGBoost and LightGBM
already predict natively, and in float32, which treelite does not reproduce to TOLERANCE: they
keep their own predictor. Sums run in another order than the library's, so probabilities can
differ in the last bits (1e-16): FastPath accepts the compiled trees only when they give the
same classes and probabilities within TOLERANCE of the library, and otherwise uses the library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Answers are rounded to model.DECIMALS (6): a difference this small never changes one.
TOLERANCE = 1e-9

PredictProba = Callable[[np.ndarray], np.ndarray]


def compile_trees(classifier: Any, threads: int = 1) -> PredictProba | None:
    """A predict_proba on a numeric matrix through treelite, or None if it cannot import it."""
    try:
        import treelite
    except ImportError:
        return None
    try:
        model = _import(classifier)
    except Exception:  # an unsupported model or version: the library predicts instead
        return None
    if model is None:
        return None

    def predict_proba(matrix: np.ndarray) -> np.ndarray:
        out = treelite.gtil.predict(model, matrix, nthread=threads).reshape(len(matrix), -1)
        return np.column_stack([1.0 - out[:, 0], out[:, 0]]) if out.shape[1] == 1 else out

    return predict_proba


def agrees(candidate: np.ndarray, expected: np.ndarray) -> bool:
    """Same shape, same classes, probabilities within TOLERANCE."""
    return (
        candidate.shape == expected.shape
        and np.array_equal(candidate.argmax(axis=1), expected.argmax(axis=1))
        and np.allclose(candidate, expected, rtol=0, atol=TOLERANCE)
    )


def _import(classifier: Any) -> Any:
    if type(classifier).__name__ != "HistGradientBoostingClassifier":
        return None
    import treelite.sklearn

    return treelite.sklearn.import_model(classifier)
