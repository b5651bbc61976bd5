"""The gateway imports no other service's code: its admin CLI asks the ledger and the
connectors over the broker."""

from __future__ import annotations

import subprocess
import sys

SERVICES = ("ledger", "payment_orchestrator", "provider_connectors", "webhook_dispatcher")


def test_the_admin_cli_and_the_app_import_no_other_service() -> None:
    probe = (
        "import sys, api_gateway.entrypoints.admin, api_gateway.entrypoints.main;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SERVICES!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
