"""The ledger reads only its own schema: the orchestrator's day comes through its door."""

from __future__ import annotations

import re
from importlib import resources

OTHER_SCHEMAS = re.compile(r"\b(orchestrator|gateway|connectors|webhooks)\.[a-z_]+\b")


def test_no_sql_of_the_ledger_names_another_services_table() -> None:
    package = resources.files("ledger")
    offenders = [
        f"{path.name}: {match.group(0)}"
        for path in _python_files(package)
        for match in OTHER_SCHEMAS.finditer(path.read_text())
        if "FROM" in path.read_text() or "JOIN" in path.read_text()
    ]
    assert offenders == []


def _python_files(folder):  # type: ignore[no-untyped-def]
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _python_files(entry)
        elif entry.name.endswith((".py", ".sql")):
            yield entry
