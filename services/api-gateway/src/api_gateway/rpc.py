"""Calls to the orchestrator and how their outcome becomes an HTTP answer."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from api_gateway.errors import ApiError, status_for
from fluxpay_common.messages import Message, PaymentView, QueryReply, Reply
from fluxpay_common.rpc import RpcClient, RpcTimeout, RpcUnavailable


class Orchestrator:
    """Request/reply to one service; a timeout is a clear 503, never a hang or a 500."""

    reply_type: type[BaseModel] = Reply

    def __init__(self, client: RpcClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def call(self, command: Message) -> Any:
        try:
            reply = await self._client.call(command, self.reply_type, self._timeout)
        except (RpcTimeout, RpcUnavailable):
            raise ApiError(
                503,
                "service_unavailable",
                "FluxPay could not complete the request in time. Retry it; with the same"
                " Idempotency-Key a retry never creates a second payment.",
                headers={"Retry-After": "1"},
            ) from None
        return reply


class QueryService(Orchestrator):
    """The ledger or the webhook dispatcher, answering merchant queries."""

    reply_type = QueryReply

    async def data(self, command: Message) -> Any:
        reply: QueryReply = await self.call(command)
        raise_for_error(reply)
        return reply.data


def raise_for_error(reply: Reply | QueryReply) -> None:
    if reply.error is not None:
        e = reply.error
        raise ApiError(status_for(e.code, e.status), e.code, e.message, e.param, kind=e.type)


def payment_body(view: PaymentView, replay: bool = False) -> dict[str, Any]:
    body = view.model_dump(mode="json")
    body["idempotent_replay"] = replay
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )
