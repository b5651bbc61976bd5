"""Calls to the orchestrator and how their outcome becomes an HTTP answer."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from api_gateway.errors import ApiError
from fluxpay_common.messages import Message, PaymentView, Reply
from fluxpay_common.rpc import RpcClient, RpcTimeout, RpcUnavailable


class Orchestrator:
    def __init__(self, client: RpcClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def call(self, command: Message) -> Reply:
        try:
            reply: Reply = await self._client.call(command, Reply, self._timeout)
        except (RpcTimeout, RpcUnavailable):
            raise ApiError(
                503,
                "service_unavailable",
                "FluxPay could not complete the request in time. Retry it; with the same"
                " Idempotency-Key a retry never creates a second payment.",
                headers={"Retry-After": "1"},
            ) from None
        return reply


def raise_for_error(reply: Reply) -> None:
    if reply.error is not None:
        e = reply.error
        raise ApiError(e.status, e.code, e.message, e.param, kind=e.type)


def payment_body(view: PaymentView, replay: bool = False) -> dict[str, Any]:
    body = view.model_dump(mode="json")
    body["idempotent_replay"] = replay
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )
