"""`make k8s-validate`: each overlay renders and every object is valid, offline; and the
manifests hold what an operator relies on (probes, limits, restricted pods, budgets, scaling,
callbacks reachable, secrets from Secrets)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PSPS = ("novasend", "mtn_momo", "irembopay", "stripe")


def _validator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_validate", ROOT / "deploy/k8s/validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


k8s = _validator()


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_make_k8s_validate_passes() -> None:
    result = subprocess.run(
        [sys.executable, "deploy/k8s/validate.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "staging:" in result.stdout and "production:" in result.stdout


def test_validation_rejects_an_unknown_field_and_a_bad_custom_resource() -> None:
    objects = k8s.render_overlay("staging")
    deployment = _by_kind(objects, "Deployment")["gateway"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    assert k8s.validate(deployment)
    scaled = _by_kind(objects, "ScaledObject")["ledger"]
    scaled["spec"]["triggers"][0]["queueName"] = "ledger.events"
    assert k8s.validate(scaled)


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_every_deployment_is_probed_bounded_restricted_and_budgeted(overlay: str) -> None:
    objects = k8s.render_overlay(overlay)
    deployments = _by_kind(objects, "Deployment")
    budgets = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for p in _by_kind(objects, "PodDisruptionBudget").values()
    }
    assert len(deployments) == 9
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert name in budgets


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_gateway_scales_on_an_hpa_and_every_worker_on_its_queue_depth(overlay: str) -> None:
    objects = k8s.render_overlay(overlay)
    assert (
        _by_kind(objects, "HorizontalPodAutoscaler")["gateway"]["spec"]["scaleTargetRef"]["name"]
        == "gateway"
    )
    scaled = _by_kind(objects, "ScaledObject")
    workers = set(_by_kind(objects, "Deployment")) - {"gateway"}
    assert set(scaled) == workers
    for name, obj in scaled.items():
        assert obj["spec"]["scaleTargetRef"]["name"] == name
        assert all(t["type"] == "rabbitmq" for t in obj["spec"]["triggers"])
    queues = {t["metadata"]["queueName"] for o in scaled.values() for t in o["spec"]["triggers"]}
    assert {f"connector.{psp}" for psp in (*PSPS, "sandbox")} <= queues
    assert {"orchestrator.commands", "ledger.events", "webhooks.events"} <= queues


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_each_psp_callback_reaches_its_connector_through_service_and_ingress(overlay: str) -> None:
    objects = k8s.render_overlay(overlay)
    services = _by_kind(objects, "Service")
    ingress = _by_kind(objects, "Ingress")["fluxpay-callbacks"]
    paths = {
        p["path"]: p["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    for psp in PSPS:
        name = f"connector-{psp.replace('_', '-')}"
        assert paths[f"/callbacks/{psp}"] == name
        deployment = _by_kind(objects, "Deployment")[name]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"][-2:] == ["--http-port", "8080"]
        assert services[name]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        secret_refs = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
        assert f"fluxpay-psp-{psp.replace('_', '-')}" in secret_refs


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_secrets_come_from_secrets_and_each_service_has_its_own_database_url(overlay: str) -> None:
    objects = k8s.render_overlay(overlay)
    assert "Secret" not in {o["kind"] for o in objects}, "real secrets never live in git"
    documented = {
        (s["metadata"]["name"], key)
        for s in k8s._load(ROOT / "deploy/k8s/secrets.example.yaml")
        for key in s["stringData"]
    }
    operator_made = {"fluxpay-pg-app", "fluxpay-rabbitmq-default-user"}
    for name, deployment in _by_kind(objects, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        for variable in ("DATABASE_URL", "RABBITMQ_URL", "FLUXPAY_SECRETS_KEY"):
            ref = env[variable]["valueFrom"]["secretKeyRef"]
            assert ref["name"] in operator_made or (ref["name"], ref["key"]) in documented, name
        for source in container["envFrom"]:
            if "secretRef" in source:
                assert any(s == source["secretRef"]["name"] for s, _ in documented)


def test_production_brings_a_three_node_broker_and_a_postgres_cluster() -> None:
    objects = k8s.render_overlay("production")
    assert _by_kind(objects, "RabbitmqCluster")["fluxpay-rabbitmq"]["spec"]["replicas"] == 3
    assert _by_kind(objects, "Cluster")["fluxpay-pg"]["spec"]["instances"] == 3
