"""Contract test of the whole gateway: schemathesis generates requests, valid and invalid,
from the gateway's own document (`/api/v1/openapi.json`: the Collect API, balance, events,
webhook endpoint, API keys, audit log) and checks every answer: never a 5xx but a
documented 503, only documented statuses, errors in the `ApiError` shape, bad input
refused. More examples per operation than the seed's test, to reach odd inputs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api_gateway import openapi_doc
from api_gateway.app import create_app
from api_gateway.config import Settings
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack

DOCUMENT = openapi_doc.build(create_app(Settings())._application)
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The test sends a valid key itself: generated (or deliberately broken) credentials would
# make schemathesis believe a request it "broke" was accepted.
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=200,
    with_security_parameters=False,
)
pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> Iterator[str]:
    receiver = WebhookReceiver().start()
    created = stack.admin("create-merchant", "--name", "Contract", "--webhook-url", receiver.url)
    keys = created["api_keys"]
    assert isinstance(keys, dict)
    yield str(keys["test"])
    receiver.stop()


def test_served_document_is_the_tested_one(stack: Stack) -> None:
    served = httpx.get(f"{stack.base_url}/api/v1/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    paths = set(DOCUMENT["paths"])
    for path in ("/api/v1/balance", "/api/v1/events", "/api/v1/webhook_endpoint",
                 "/api/webhooks/test", "/api/v1/api_keys", "/api/v1/audit_log",
                 "/api/v1/collect/payments/{reference_or_id}/refunds"):  # fmt: skip
        assert path in paths


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_gateway_honours_its_own_document(case, stack: Stack, api_key: str) -> None:
    case.call_and_validate(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
        timeout=20,
    )
