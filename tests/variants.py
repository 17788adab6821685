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
# The tabular profile's own files (the LLM profile renders others, some under the same names).
TABULAR_TESTS = [
    "attacks",
    "data",
    "demo",
    "drift",
    "feedback_and_triggers",
    "hardening",
    "kubeflow",
    "lifecycle",
    "loop",
    "registry",
    "retrain_lock",
    "serving",
    "setup",
    "training",
]
TABULAR = frozenset(
    {
        "README.md",
        "params.yaml",
        "deploy/monitoring",
        "deploy/compose",
        "src/{package}/cli.py",
        "src/{package}/params.py",
        "src/{package}/data",
        "src/{package}/training",
        "src/{package}/serving",
        "src/{package}/monitoring",
        "src/{package}/demo.py",
        "tests/conftest.py",
        *(f"tests/test_{name}.py" for name in TABULAR_TESTS),
    }
)
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
GITHUB = frozenset({".github", ".github/workflows/drift.yml"})
DEFAULT_FILES = TABULAR | K8S | DVC | GITHUB
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
LLM = frozenset(
    {
        "README.md",
        "params.yaml",
        "configs",
        "deploy/monitoring",
        "src/{package}/cli.py",
        "src/{package}/params.py",
        "src/{package}/chat_template.jinja",
        "src/{package}/data",
        "src/{package}/training",
        "src/{package}/serving",
        "src/{package}/monitoring",
        "tests/conftest.py",
        "tests/llm_fixtures.py",
        "tests/test_text_drift.py",
        "tests/test_conversations.py",
        "tests/test_quality.py",
        "tests/test_server.py",
        "tests/test_pipeline.py",
        "tests/test_finetune.py",
        "tests/test_tiny.py",
        "tests/test_evaluate.py",
        "tests/test_builtin_chat.py",
        "tests/test_kubeflow.py",
        "tests/test_retrain_webhook.py",
    }
)
KEDA = frozenset({"deploy/k8s/base/scaledobject.yaml"})
# Champion and challenger adapters in the LLM server (canary/shadow) and the promote command.
LLM_ROLLOUT = frozenset(
    {"src/{package}/promotion.py", "src/{package}/serving/arms.py", "tests/test_arms.py"}
)
# vLLM on Kubernetes: its Deployment, image and alerts (the autoscaler file is the row's).
VLLM = frozenset(
    {
        "deploy/k8s",
        "deploy/monitoring",
        "deploy/docker/vllm.Dockerfile",
        "deploy/docker/vllm.Dockerfile.dockerignore",
    }
)
CPU_HPA = {"deploy/k8s/base/hpa.yaml"}

SUPPORTED: dict[str, Variant] = {
    "defaults": Variant({}, DEFAULT_FILES),
    "xgboost-wandb-no-dvc-gitlab": Variant(
        {"model_family": "xgboost", "tracker": "wandb", "use_dvc": False, "ci_provider": "gitlab"},
        TABULAR | K8S | WANDB | {".gitlab-ci.yml"},
    ),
    "lightgbm-no-ci": Variant(
        {
            "model_family": "lightgbm",
            "ci_provider": "none",
            "python_version": "3.12",
            "license": "Apache-2.0",
        },
        DEFAULT_FILES - GITHUB,
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
    "llm-tiny-local": Variant(
        {
            "use_case": "llm",
            "base_model": "tiny",
            "serving": "local",
        },
        LLM | {"dvc.yaml", ".dvcignore", ".github"},
    ),
    "llm-tiny-local-wandb": Variant(
        {"use_case": "llm", "base_model": "tiny", "serving": "local", "tracker": "wandb"},
        LLM | WANDB | {"dvc.yaml", ".dvcignore", ".github"},
    ),
    "llm-vllm-keda": Variant(
        {"use_case": "llm", "ci_provider": "gitlab", "use_dvc": False},
        LLM | VLLM | KEDA | {".gitlab-ci.yml"},
    ),
    "llm-vllm-gpu-hpa-qlora-ollama": Variant(
        {
            "use_case": "llm",
            "finetune_method": "qlora",
            "llm_autoscaler": "gpu_hpa",
            "ollama": True,
            "lora_r": 12,
            "lora_target_modules": "all-linear",
        },
        LLM
        | VLLM
        | {"deploy/k8s/base/hpa-gpu.yaml", "deploy/ollama", "dvc.yaml", ".dvcignore", ".github"},
    ),
    "llm-vllm-canary-keda": Variant(
        {"use_case": "llm", "rollout": "canary", "ci_provider": "none"},
        LLM | VLLM | KEDA | LLM_ROLLOUT | {"dvc.yaml", ".dvcignore"},
    ),
    "llm-vllm-renamed": Variant(
        {
            "use_case": "llm",
            "project_name": "Acme Helpdesk",
            "k8s_namespace": "helpdesk",
            "image_registry": "registry.example.org/ml-team",
            "base_model": "mistralai/Mistral-7B-Instruct-v0.3",
            "finetune_method": "dpo",
            "lora_r": 100,
            "ollama": True,
        },
        LLM
        | VLLM
        | {
            "deploy/k8s/base/scaledobject.yaml",
            "deploy/ollama",
            "dvc.yaml",
            ".dvcignore",
            ".github",
        },
    ),
    "llm-tiny-local-wandb-canary-shadow": Variant(
        {
            "use_case": "llm",
            "base_model": "tiny",
            "serving": "local",
            "tracker": "wandb",
            "rollout": "canary_shadow",
        },
        LLM | WANDB | LLM_ROLLOUT | {"dvc.yaml", ".dvcignore", ".github"},
    ),
    "llm-local-shadow-no-dvc": Variant(
        {"use_case": "llm", "serving": "local", "rollout": "shadow", "use_dvc": False},
        LLM | LLM_ROLLOUT | {".github"},
    ),
    "llm-dpo-local-no-ci": Variant(
        {
            "use_case": "llm",
            "base_model": "tiny",
            "finetune_method": "dpo",
            "serving": "local",
            "ci_provider": "none",
            "python_version": "3.12",
        },
        LLM | {"dvc.yaml", ".dvcignore"},
    ),
}

# Installed into one shared environment, their own tests and pipeline run. The first and the LLM
# row run their whole suites; the other tabular rows skip their end-to-end tests (marked e2e),
# which exercise the same lifecycle code, to keep the tier's time in check. The LLM row is
# llm-tiny-local with W&B on (its offline runs beside MLflow) and champion and challenger
# adapters (canary and shadow): one LLM suite covers all three.
SMOKE = [
    "defaults",
    "xgboost-wandb-no-dvc-gitlab",
    "fastapi-canary-no-k8s",
    "bentoml",
    "triton-xgboost",
    "llm-tiny-local-wandb-canary-shadow",
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
    "llm-with-model-family": (
        {"use_case": "llm", "model_family": "xgboost"},
        "model_family is a tabular answer",
    ),
    "llm-with-bentoml": (
        {"use_case": "llm", "serving": "bentoml"},
        "'bentoml' is for tabular models",
    ),
    "llm-with-triton": ({"use_case": "llm", "serving": "triton"}, "'triton' is for tabular models"),
    "tabular-with-vllm": ({"serving": "vllm"}, "serving 'vllm' serves LLM adapters"),
    "tabular-with-base-model": ({"base_model": "tiny"}, "base_model is an llm answer"),
    "tabular-with-method": ({"finetune_method": "dpo"}, "finetune_method is an llm answer"),
    "tabular-with-ollama": ({"ollama": True}, "ollama is an llm answer"),
    "llm-vllm-shadow": (
        {"use_case": "llm", "rollout": "shadow"},
        "rollout 'shadow' with serving 'vllm' is not built",
    ),
    "llm-vllm-canary-shadow": (
        {"use_case": "llm", "rollout": "canary_shadow"},
        "a mesh mirror would send the champion's name to the same pods",
    ),
    "llm-local-rollout-on-kubernetes": (
        {"use_case": "llm", "serving": "local", "rollout": "shadow", "use_kubernetes": True},
        "serving 'local' is the development server",
    ),
    "llm-local-on-kubernetes": (
        {"use_case": "llm", "serving": "local", "use_kubernetes": True},
        "serving 'local' is the development server",
    ),
    "llm-lora-rank-zero": ({"use_case": "llm", "lora_r": 0}, "lora_r must be between 1 and 512"),
    "llm-bad-target-modules": (
        {"use_case": "llm", "lora_target_modules": "q proj"},
        "must be module names separated by commas",
    ),
    "llm-unknown-method": ({"use_case": "llm", "finetune_method": "ppo"}, "Invalid choice"),
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

# The tabular profile's rows: its manifests and alert rules are checked by the artifact tiers; the
# LLM profile's by tests/test_llm_artifacts.py. tests/test_kubeflow.py compiles every row's.
TABULAR_ROWS = {
    name: answers for name, answers in SUPPORTED.items() if answers.get("use_case") != "llm"
}
