"""The edge middleware in front of a small app: refusals before any route runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from api_gateway import errors
from api_gateway.edge import EdgeGuard, refuse_bad_path_parameters
from api_gateway.input_rules import Limits

LIMIT = 8192
reached: list[str] = []


def _app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(refuse_bad_path_parameters)])
    errors.install(app, errors.DOC_BASE_URL)
    app.add_middleware(EdgeGuard, limits=Limits(max_body_bytes=LIMIT), doc_base_url="https://d")

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        reached.append("echo")
        return body

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str, q: str | None = None) -> dict[str, str]:
        reached.append(thing_id)
        return {"id": thing_id}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    reached.clear()
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def _error(response: httpx.Response) -> dict[str, Any]:
    return dict(response.json()["error"])


async def test_a_body_within_the_limit_reaches_the_route_intact(client) -> None:
    body = {"description": "é" * 500, "n": 3000}
    response = await client.post("/echo", json=body)
    assert response.status_code == 200 and response.json() == body
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_declared_oversized_body_is_413_unread(client) -> None:
    response = await client.post("/echo", content=b"{" + b" " * LIMIT + b"}")
    assert response.status_code == 413
    error = _error(response)
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    assert error["doc_url"] == "https://d#request_too_large"
    assert reached == []


async def test_a_chunked_body_is_counted_while_it_arrives(client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(LIMIT // 100 + 1):
            yield b"x" * 100
        yield b'"}'

    response = await client.post("/echo", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413 and _error(response)["code"] == "request_too_large"
    assert reached == []


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/things/%00", "thing_id"),
        ("/things/a%01b", "thing_id"),
        ("/things/ok?q=%00", "q"),
        ("/things/ok?q=%ff", "q"),
    ],
)
async def test_nul_in_a_path_or_query_parameter_is_400_with_its_name(
    client, url: str, param: str
) -> None:
    response = await client.get(url)
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_characters" and _error(response)["param"] == param
    assert reached == []


async def test_nul_in_an_unknown_path_is_a_plain_404(client) -> None:
    response = await client.get("/nowhere/%00")
    assert response.status_code == 404 and _error(response)["code"] == "resource_not_found"


@pytest.mark.parametrize(
    ("content", "code", "param"),
    [
        (b'{"a": {"b": "\\u0000"}}', "invalid_characters", "a.b"),
        (b'{"name": "\xc3\x28"}', "invalid_characters", "name"),
        (b'{"n": ' + b"1" * 5000 + b"}", "number_out_of_range", "n"),
        (b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nesting_too_deep", None),
        (b"{not json", "invalid_json", None),
    ],
)
async def test_bodies_no_service_can_hold_are_400_with_a_documented_code(
    client, content: bytes, code: str, param: str | None
) -> None:
    response = await client.post(
        "/echo", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["code"] == code and error["code"] != "http_error"
    if param is not None:
        assert error["param"] == param
    assert reached == []
