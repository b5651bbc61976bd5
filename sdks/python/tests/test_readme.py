"""The README's webhook handlers work as written: the FastAPI one is run against signed,
tampered and stale requests; the Flask one (Flask is not installed here) is parsed."""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from fluxpay.webhooks import generate_test_header

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECRET = "whsec_readme"


def block(first_line: str) -> str:
    for code in re.findall(r"```python\n(.*?)```", README, re.S):
        if code.startswith(first_line):
            return str(code)
    raise AssertionError(f"no python block starting with {first_line!r} in the README")


def event_body() -> bytes:
    payment = {"id": "p1", "reference": "order-1001", "status": "completed", "amount": 3000,
               "currency": "XOF", "country": "BJ", "mode": "direct", "environment": "test",
               "created_at": "2026-11-30T10:00:00+00:00"}  # fmt: skip
    event = {
        "id": "evt-1",
        "object": "event",
        "type": "collect.payment.completed",
        "created": int(time.time()),
        "environment": "test",
        "data": {"object": payment},
    }
    return json.dumps(event).encode()


def test_the_fastapi_handler_accepts_signed_events_only(monkeypatch: pytest.MonkeyPatch) -> None:
    testclient = pytest.importorskip("fastapi.testclient")
    monkeypatch.setenv("FLUXPAY_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {"__name__": "webhook_fastapi"}
    exec(compile(block("# webhook_fastapi.py"), "README.md", "exec"), namespace)
    client = testclient.TestClient(namespace["app"])
    body = event_body()

    def post(content: bytes, header: str) -> Any:
        return client.post("/webhooks", content=content, headers={"X-FluxPay-Signature": header})

    signed = post(body, generate_test_header(body, SECRET))
    assert signed.status_code == 200 and signed.json() == {"received": "evt-1"}
    assert (
        post(body.replace(b"3000", b"30000"), generate_test_header(body, SECRET)).status_code == 400
    )
    stale = generate_test_header(body, SECRET, timestamp=int(time.time()) - 600)
    assert post(body, stale).status_code == 400


def test_the_flask_handler_is_valid_python() -> None:
    tree = ast.parse(block("# webhook_flask.py"))
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert names == {"fluxpay_webhook"}
