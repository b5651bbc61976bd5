"""The Grafana dashboard and the Prometheus alert rules load, and name only metrics the
code exports (a renamed metric would otherwise leave a blank panel or a silent alert)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from fluxpay_common.metrics import EXPORTED_NAMES

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bfluxpay_[a-z0-9_]+")


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "deploy/grafana/fluxpay-oncall.json").read_text())
    return loaded


def _balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_alert_rules_cover_the_on_call_cases_with_exported_metrics() -> None:
    rules = _rules()
    by_name = {rule["alert"]: rule for rule in rules}
    assert {"FluxPayOutboxStuck", "FluxPayDeadLetters", "FluxPayPspErrorRate"} <= set(by_name)
    assert "FluxPayWebhookLag" in by_name
    for rule in rules:
        expr = rule["expr"]
        names = set(METRIC.findall(expr))
        assert names, f"{rule['alert']} names no FluxPay metric"
        assert names <= EXPORTED_NAMES, f"{rule['alert']}: {names - EXPORTED_NAMES} not exported"
        assert _balanced(expr), rule["alert"]
        assert rule["annotations"]["summary"] and rule["labels"]["severity"]


def test_dashboard_panels_query_exported_metrics() -> None:
    dashboard = _dashboard()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 10
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used <= EXPORTED_NAMES, used - EXPORTED_NAMES
    assert all(_balanced(expr) for expr in exprs)
    # Every kind of metric the code exports has a panel (bucket/count/sum count as one).
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in EXPORTED_NAMES}
    shown = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert families <= shown, families - shown


def test_every_deployment_is_scraped_on_the_port_of_its_probes() -> None:
    deployments = [
        doc
        for path in sorted((ROOT / "deploy/k8s/base").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "Deployment"
    ]
    assert len(deployments) >= 5
    for deployment in deployments:
        pod = deployment["spec"]["template"]
        annotations = pod["metadata"].get("annotations", {})
        container = pod["spec"]["containers"][0]
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        probe_port = container["readinessProbe"]["httpGet"]["port"]
        port = ports.get(probe_port, probe_port)
        name = deployment["metadata"]["name"]
        assert annotations.get("prometheus.io/scrape") == "true", name
        assert annotations.get("prometheus.io/path") == "/metrics", name
        assert annotations.get("prometheus.io/port") == str(port), name
