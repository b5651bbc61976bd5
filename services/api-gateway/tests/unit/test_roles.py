"""Roles against route classes, and what the audit log keeps of details. Pure."""

from __future__ import annotations

import pytest

from api_gateway.audit import redact
from api_gateway.roles import Role, RouteClass, allows, classify, fails_open

PAYMENT = "/api/v1/collect/payments/{reference_or_id}"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", PAYMENT, RouteClass.READ),
        ("POST", "/api/v1/collect/payments", RouteClass.CREATE),
        ("POST", f"{PAYMENT}/confirm", RouteClass.CREATE),
        ("POST", f"{PAYMENT}/refunds", RouteClass.REFUND),
        ("POST", f"{PAYMENT}/cancel", RouteClass.REFUND),
        ("PUT", "/api/v1/webhook_endpoint", RouteClass.MANAGEMENT),
        ("DELETE", "/api/v1/api_keys/{key_id}", RouteClass.MANAGEMENT),
        # A write nobody classified yet is closed to all but `full` keys.
        ("POST", "/api/v1/something_new", RouteClass.MANAGEMENT),
    ],
)
def test_routes_are_classified(method: str, path: str, expected: RouteClass) -> None:
    assert classify(method, path) is expected


def test_each_role_reaches_only_its_classes() -> None:
    keyed = [c for c in RouteClass if c is not RouteClass.PUBLIC]
    assert all(allows(Role.FULL, c) for c in keyed)
    assert [c for c in keyed if allows(Role.PAYMENTS_WRITE, c)] == [
        RouteClass.READ,
        RouteClass.CREATE,
    ]
    assert [c for c in keyed if allows(Role.READ_ONLY, c)] == [RouteClass.READ]


def test_only_what_moves_no_money_passes_a_limiter_outage() -> None:
    assert fails_open(RouteClass.READ, "GET") and fails_open(RouteClass.PUBLIC, "get")
    assert fails_open(RouteClass.MANAGEMENT, "DELETE")
    assert not fails_open(RouteClass.CREATE, "POST")
    assert not fails_open(RouteClass.REFUND, "POST")
    assert not fails_open(RouteClass.PUBLIC, "POST")


def test_audit_details_keep_no_secret_nor_url_credentials() -> None:
    details = redact(
        {"url": "https://u:p@hooks.example.com:8443/in?token=t#x", "secret": "whsec_1", "n": 1}
    )
    assert details == {"url": "https://hooks.example.com:8443/in", "n": 1}
