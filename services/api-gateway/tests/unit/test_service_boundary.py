"""The gateway (and its operator CLI) talks to other services through their doors
(request/reply, the broker, /metrics): it never imports their code, so it cannot read
their schemas either."""

from __future__ import annotations

import ast
from pathlib import Path

import api_gateway

OTHER_SERVICES = frozenset(
    {
        "payment_orchestrator",
        "ledger",
        "webhook_dispatcher",
        "provider_connectors",
        "psp_simulators",
    }
)


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_gateway_imports_no_other_service() -> None:
    package = Path(api_gateway.__file__).parent
    offenders = {
        str(path.relative_to(package)): sorted(_imported_roots(path) & OTHER_SERVICES)
        for path in package.rglob("*.py")
        if _imported_roots(path) & OTHER_SERVICES
    }
    assert not offenders, offenders


def test_the_gateway_sql_names_no_other_schema() -> None:
    package = Path(api_gateway.__file__).parent
    schemas = ("orchestrator.", "ledger.", "webhooks.", "connectors.")
    for path in package.rglob("*.py"):
        text = path.read_text()
        for schema in schemas:
            for line in text.splitlines():
                if schema in line and ("FROM " in line or "JOIN " in line):
                    raise AssertionError(f"{path.name} reads {schema}: {line.strip()}")
