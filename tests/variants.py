"""Which answer sets the template supports and which it refuses: data, not test functions.

Coverage grows by adding a row. `SUPPORTED` must render lint-clean, each with exactly the optional
paths its row lists; `SMOKE` (a subset) is installed and runs its own test suite and pipeline;
`UNSUPPORTED` must be refused with a message containing the given text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Variant(dict):
    """A row: the answers (the dict itself, what copier gets) and `files`, the optional paths
    its render must hold and no other. An optional path is a template file or folder whose name
    carries `{% if %}`, as rendered, with the package folder written `src/{package}`.
    """

    def __init__(self, answers: Mapping[str, object], files: Iterable[str]) -> None:
        super().__init__(answers)
        self.files = frozenset(files)


# Sets that rows start from: a row states its files as one of these plus or minus named paths.
K8S = frozenset(
    {
        "deploy/k8s",
        "deploy/k8s/base/server/deployment.yaml",
        "deploy/k8s/base/hpa.yaml",
        "deploy/monitoring/kustomization.yaml",
        "tests/test_deploy.py",
    }
)
DVC = frozenset({"dvc.yaml", ".dvcignore", "tests/test_dvc.py"})
DEFAULT_FILES = K8S | DVC | {".github"}
BENTOML = frozenset(
    {
        "bentofile.yaml",
        "src/{package}/serving/bento.py",
        "src/{package}/serving/bento_service.py",
        "tests/test_bento.py",
    }
)
# Triton on Kubernetes also swaps deploy/k8s/base/hpa.yaml for hpa-gpu.yaml.
TRITON = frozenset(
    {
        "deploy/docker/triton.Dockerfile",
        "deploy/triton",
        "src/{package}/serving/triton.py",
        "tests/test_triton.py",
    }
)
WANDB = frozenset({"src/{package}/wandb_tracking.py", "tests/test_wandb.py"})
PROMOTION = frozenset({"src/{package}/promotion.py", "tests/test_promotion.py"})
IN_PROCESS_ROLLOUT = frozenset({"src/{package}/serving/rollout.py", "tests/test_rollout.py"})
ISTIO = frozenset(
    {
        "deploy/k8s/base/challenger",
        "deploy/k8s/base/destinationrule.yaml",
        "deploy/k8s/base/virtualservice.yaml",
    }
)
CANARY_WEIGHTS = frozenset(
    {
        "deploy/k8s/overlays/staging/canary-weights.yaml",
        "deploy/k8s/overlays/production/canary-weights.yaml",
    }
)
GPU_HPA = {"deploy/k8s/base/hpa-gpu.yaml"}
CPU_HPA = {"deploy/k8s/base/hpa.yaml"}

SUPPORTED: dict[str, Variant] = {
    "defaults": Variant({}, DEFAULT_FILES),
    "xgboost-wandb-no-dvc-gitlab": Variant(
        {"model_family": "xgboost", "tracker": "wandb", "use_dvc": False, "ci_provider": "gitlab"},
        K8S | WANDB | {".gitlab-ci.yml"},
    ),
    "lightgbm-no-ci": Variant(
        {
            "model_family": "lightgbm",
            "ci_provider": "none",
            "python_version": "3.12",
            "license": "Apache-2.0",
        },
        DEFAULT_FILES - {".github"},
    ),
    "canary-shadow-bentoml-k8s": Variant(
        {"rollout": "canary_shadow", "serving": "bentoml"},
        DEFAULT_FILES | BENTOML | PROMOTION | ISTIO | CANARY_WEIGHTS,
    ),
    "fastapi-canary-no-k8s": Variant(
        {"rollout": "canary", "use_kubernetes": False},
        DEFAULT_FILES - K8S | PROMOTION | IN_PROCESS_ROLLOUT,
    ),
    "fastapi-shadow-staging": Variant(
        {
            "rollout": "shadow",
            "k8s_namespace": "fraud",
            "image_registry": "registry.example.com/ml",
        },
        DEFAULT_FILES | PROMOTION | IN_PROCESS_ROLLOUT | ISTIO,
    ),
    "triton-canary-xgboost": Variant(
        {"serving": "triton", "rollout": "canary", "model_family": "xgboost"},
        DEFAULT_FILES - CPU_HPA | GPU_HPA | TRITON | PROMOTION | ISTIO | CANARY_WEIGHTS,
    ),
    "bentoml": Variant({"serving": "bentoml"}, DEFAULT_FILES | BENTOML),
    "triton-xgboost": Variant(
        {"serving": "triton", "model_family": "xgboost"},
        DEFAULT_FILES - CPU_HPA | GPU_HPA | TRITON,
    ),
    "triton-hist-gradient-boosting-no-k8s": Variant(
        {"serving": "triton", "use_kubernetes": False}, DEFAULT_FILES - K8S | TRITON
    ),
    "wandb": Variant({"tracker": "wandb", "use_kubernetes": False}, DEFAULT_FILES - K8S | WANDB),
    "custom-names": Variant(
        {
            "project_name": "Churn Model",
            "package_name": "churn",
            "description": "Predict which customers leave.",
            "python_version": "3.10",
        },
        DEFAULT_FILES,
    ),
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
    "keyword-package": ({"package_name": "class"}, "'class' is a Python keyword"),
    "finally-package": ({"package_name": "finally"}, "'finally' is a Python keyword"),
    "break-package": ({"package_name": "break"}, "'break' is a Python keyword"),
    "continue-package": ({"package_name": "continue"}, "'continue' is a Python keyword"),
    "nonlocal-package": ({"package_name": "nonlocal"}, "'nonlocal' is a Python keyword"),
    "none-package": ({"package_name": "None"}, "'None' is a Python keyword"),
    "match-package": ({"package_name": "match"}, "'match' is a Python keyword or soft keyword"),
    "shadowing-package": ({"package_name": "mlflow"}, "would shadow a package the project uses"),
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
