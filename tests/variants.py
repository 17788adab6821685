"""Which answer sets the template supports and which it refuses: data, not test functions.

Coverage grows by adding a row. `SUPPORTED` must render lint-clean; `SMOKE` (a subset) is
installed and runs its own test suite and pipeline; `UNSUPPORTED` must be refused with a
message containing the given text.
"""

from __future__ import annotations

SUPPORTED: dict[str, dict[str, object]] = {
    "defaults": {},
    "xgboost-wandb-no-dvc-gitlab": {
        "model_family": "xgboost",
        "tracker": "wandb",
        "use_dvc": False,
        "ci_provider": "gitlab",
    },
    "lightgbm-no-ci": {
        "model_family": "lightgbm",
        "ci_provider": "none",
        "python_version": "3.12",
        "license": "Apache-2.0",
    },
    "canary-shadow-bentoml-k8s": {"rollout": "canary_shadow", "serving": "bentoml"},
    "fastapi-canary-no-k8s": {"rollout": "canary", "use_kubernetes": False},
    "fastapi-shadow-staging": {
        "rollout": "shadow",
        "k8s_namespace": "fraud",
        "image_registry": "registry.example.com/ml",
    },
    "triton-canary-xgboost": {"serving": "triton", "rollout": "canary", "model_family": "xgboost"},
    "bentoml": {"serving": "bentoml"},
    "triton-xgboost": {"serving": "triton", "model_family": "xgboost"},
    "triton-hist-gradient-boosting-no-k8s": {"serving": "triton", "use_kubernetes": False},
    "wandb": {"tracker": "wandb", "use_kubernetes": False},
    "custom-names": {
        "project_name": "Churn Model",
        "package_name": "churn",
        "description": "Predict which customers leave.",
        "python_version": "3.10",
    },
}

# Installed into one shared environment, their own tests and pipeline run. The first runs its
# whole suite; the others skip their end-to-end tests (marked e2e), which exercise the same
# lifecycle code, to keep the tier's time in check.
SMOKE = [
    "defaults",
    "xgboost-wandb-no-dvc-gitlab",
    "fastapi-canary-no-k8s",
    "bentoml",
    "triton-xgboost",
]

UNSUPPORTED: dict[str, tuple[dict[str, object], str]] = {
    "empty-name": ({"project_name": "   "}, "project_name must not be empty"),
    "bad-package": ({"package_name": "1-bad name"}, "is not a lowercase Python identifier"),
    "keyword-package": ({"package_name": "class"}, "would shadow"),
    "bad-slug": ({"project_slug": "Fraud Detection"}, "must start with a letter"),
    "old-python": ({"python_version": "3.8"}, "'3.8' is not in ['3.10', '3.11', '3.12', '3.13']"),
    "python-2": ({"python_version": "2.7"}, "Invalid choice for 'python_version'"),
    "llm-not-yet": ({"use_case": "llm"}, "use_case 'llm' is not available yet"),
    "unknown-family": ({"model_family": "catboost"}, "Invalid choice for 'model_family'"),
    "unknown-tracker": ({"tracker": "neptune"}, "Invalid choice for 'tracker'"),
    "bad-email": ({"author_email": "nobody"}, "is not an e-mail address"),
    "mesh-rollout-without-k8s": (
        {"rollout": "canary", "serving": "bentoml", "use_kubernetes": False},
        "rollout 'canary' with serving 'bentoml' needs Kubernetes",
    ),
    "bad-namespace": ({"k8s_namespace": "Fraud_NS"}, "is not a valid Kubernetes namespace"),
    "registry-with-scheme": (
        {"image_registry": "https://ghcr.io/x"},
        "must look like registry.example.com/team",
    ),
}
