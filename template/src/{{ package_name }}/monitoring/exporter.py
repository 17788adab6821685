"""Batch-job metrics for Prometheus: pushed to a Pushgateway, or written for node-exporter.

A job that runs and exits cannot be scraped, so its gauges go either to the Pushgateway at
`monitoring.pushgateway_url` (grouped by job: each push replaces that job's previous values) or
to `<job>.prom` in `settings.metrics_dir`, for node-exporter's textfile collector. One
file per job, because each write replaces the whole file: two jobs sharing one would erase each
other's gauges.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from ..config import Settings
from ..errors import ProjectError

# A gauge's value, or (label name, {label value: value}) for a gauge with one label.
Gauges = Mapping[str, float | tuple[str, Mapping[str, float]]]
PUSH_TIMEOUT_S = 10


def export(
    gauges: Gauges,
    *,
    job: str,
    settings: Settings,
    descriptions: Mapping[str, str] | None = None,
) -> str:
    """Publish `gauges` for `job` to the Pushgateway or the textfile; returns where they went."""
    registry = registry_of(gauges, descriptions or {})
    url = settings.monitoring.pushgateway_url
    if url:
        try:
            push_to_gateway(url, job=job, registry=registry, timeout=PUSH_TIMEOUT_S)
        except OSError as exc:  # URLError and HTTPError included
            raise ProjectError(f"Could not push the {job} metrics to {url}: {exc}") from exc
        return url
    path = textfile(settings, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # a temporary file, then a rename: never half read
    return str(path)


def textfile(settings: Settings, job: str) -> Path:
    """Where `job`'s gauges go without a Pushgateway (node-exporter reads every *.prom there)."""
    return settings.metrics_dir / f"{job}.prom"


def registry_of(gauges: Gauges, descriptions: Mapping[str, str]) -> CollectorRegistry:
    """A fresh registry holding only `gauges`, so nothing of the process leaks into them."""
    registry = CollectorRegistry()
    for name, value in gauges.items():
        doc = descriptions.get(name, name)
        if isinstance(value, tuple):
            label, values = value
            gauge = Gauge(name, doc, [label], registry=registry)
            for key, number in values.items():
                gauge.labels(key).set(number)
        else:
            Gauge(name, doc, registry=registry).set(value)
    return registry
