"""/api/v1/collect/...: the seed's paths, exactly."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from api_gateway import audit
from api_gateway.access import admit
from api_gateway.auth import Principal, authenticate, presented_key
from api_gateway.errors import ApiError, error_body
from api_gateway.idempotency import IdempotencyStore, parse_key, request_digest
from api_gateway.observability import count_replay
from api_gateway.rpc import Orchestrator, json_response, payment_body, raise_for_error
from api_gateway.schemas import (
    CollectPaymentCancel,
    CollectPaymentConfirm,
    CollectPaymentCreate,
    CollectRefundCreate,
)
from api_gateway.validation import checked_create
from fluxpay_common import catalog
from fluxpay_common.messages import (
    CancelPayment,
    ConfirmPayment,
    CreatePayment,
    GetPayment,
    RefundPayment,
    Reply,
)


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Like Stripe: a query parameter the endpoint does not define is an error, not ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _query_names(dependant)
    for name in request.query_params:
        if name not in allowed:
            raise ApiError(
                400, "parameter_unknown", f"Unknown query parameter '{name}'.", name[:100]
            )
        if len(request.query_params.getlist(name)) > 1:
            # Every parameter is a single value: which of two would we obey?
            raise ApiError(400, "parameter_invalid", f"'{name}' is given more than once.", name)


router = APIRouter(prefix="/api/v1", dependencies=[Depends(reject_unknown_query)])
OPENAPI_DOCUMENT = (
    resources.files("api_gateway") / "openapi" / "collect-2026-06.json"
).read_bytes()


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None,
    x_fluxx_environment: Annotated[
        Literal["test", "live"] | None, Header(alias="X-Fluxx-Environment")
    ] = None,
) -> Principal:
    """The key decides the environment; X-Fluxx-Environment is then ignored (the seed)."""
    key = presented_key(authorization, x_api_key)
    who = await authenticate(request.app.state.pool, key)
    await admit(request, who)
    return who


Who = Annotated[Principal, Depends(principal)]


def scope(request: Request, who: Principal) -> dict[str, Any]:
    """The fields every merchant-scoped message carries: who asks, in which environment."""
    return {
        "correlation_id": request.state.correlation_id,
        "merchant_id": who.merchant_id,
        "environment": who.environment,
    }


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def _orchestrator(request: Request) -> Orchestrator:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator


async def _idempotent(
    request: Request,
    who: Principal,
    key: str,
    body: Any,
    run: Any,
) -> Response:
    """Run `run()` once per key; replay its stored answer for the same key and body.

    One rule for creates and refunds: a replayed success answers 200 with the first
    answer's body, `idempotent_replay: true` and `Idempotent-Replayed: true`; a replayed
    refusal answers as the first time."""
    store: IdempotencyStore = request.app.state.idempotency
    digest = request_digest(request.method, request.url.path, body)
    replay = await store.claim(who, key, digest)
    if replay is not None:
        count_replay(request)
        return replayed(replay.status, orjson.loads(replay.body))
    try:
        status, answer = await run()
    except ApiError as exc:
        if exc.status >= 500:
            # Outcome unknown: free the key so a retry reaches the (idempotent) orchestrator.
            await store.release(who, key)
        else:
            payload = orjson.dumps(error_body(exc.code, exc.message, exc.param, exc.kind))
            await store.complete(who, key, exc.status, payload)
        raise
    except BaseException:
        await store.release(who, key)
        raise
    stored = orjson.dumps(answer)
    await store.complete(who, key, status, stored)
    return Response(stored, status_code=status, media_type="application/json")


def replayed(status: int, stored: Any) -> Response:
    if not 200 <= status < 300:
        return json_response(stored, status, {"Idempotent-Replayed": "true"})
    if isinstance(stored, dict):
        stored["idempotent_replay"] = True
    return json_response(stored, 200, {"Idempotent-Replayed": "true"})


@router.get("/collect/openapi.json", include_in_schema=False)
async def openapi_document() -> Response:
    return Response(OPENAPI_DOCUMENT, media_type="application/json")


@router.get("/collect/payments/operators/")
async def operators(
    who: Who,
    country: Annotated[Literal["BJ", "TG", "CI", "RW"] | None, Query()] = None,
) -> Response:
    countries = [c for c in catalog.COUNTRIES.values() if country in (None, c.code)]
    return json_response(
        {
            "object": "list",
            "data": [
                {
                    "country": c.code,
                    "name": c.name,
                    "currency": c.currency,
                    "dialing_code": f"+{c.dialing_code}",
                    "operators": [op.as_dict() for op in catalog.operators_of(c.code)],
                }
                for c in countries
            ],
        }
    )


@router.post("/collect/payments", status_code=201)
async def create_payment(
    request: Request, body: CollectPaymentCreate, who: Who, idempotency_key: IdempotencyKey = None
) -> Response:
    key = parse_key(idempotency_key)
    body = checked_create(body, who.environment)
    raw = await request.json()

    async def run() -> tuple[int, Any]:
        command = CreatePayment(
            **scope(request, who),
            idempotency_key=key,
            reference=body.reference,
            amount=body.amount,
            currency=body.currency,
            country=body.country,
            mode=body.mode,
            operator=body.operator,
            customer=body.customer.model_dump(exclude_none=True) if body.customer else None,
            description=body.description,
            callback_url=body.callback_url,
            expires_in_seconds=body.expires_in_seconds,
            external_merchant_id=body.external_merchant_id,
            metadata=body.metadata or {},
        )
        reply = await _orchestrator(request).call(command)
        raise_for_error(reply)
        assert reply.payment is not None
        # A card payment continues on the provider's page, which sends the card holder
        # back to the payment's own page (`/checkout/{id}`): open it as for hosted ones.
        if reply.created and (body.mode == "hosted" or body.operator == "card"):
            await _open_checkout(request, who, reply)
        if not reply.created:
            return 200, payment_body(reply.payment, replay=True)
        return 201, payment_body(reply.payment)

    return await _idempotent(request, who, key, raw, run)


async def _open_checkout(request: Request, who: Principal, reply: Reply) -> None:
    assert reply.payment is not None
    await request.app.state.pool.execute(
        "INSERT INTO checkout_session (payment_id, merchant_id, environment)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        reply.payment.id,
        who.merchant_id,
        who.environment,
    )


@router.get("/collect/payments/{reference_or_id}")
async def get_payment(
    request: Request,
    reference_or_id: str,
    who: Who,
    sync: Annotated[bool, Query()] = False,
) -> Response:
    reply = await _orchestrator(request).call(
        GetPayment(
            **scope(request, who),
            reference_or_id=reference_or_id,
            sync=sync,
        )
    )
    raise_for_error(reply)
    assert reply.payment is not None
    return json_response(payment_body(reply.payment))


@router.post("/collect/payments/{reference_or_id}/confirm")
async def confirm_payment(
    request: Request, reference_or_id: str, body: CollectPaymentConfirm, who: Who
) -> Response:
    reply = await _orchestrator(request).call(
        ConfirmPayment(
            **scope(request, who),
            reference_or_id=reference_or_id,
            otp=body.otp,
        )
    )
    raise_for_error(reply)
    assert reply.payment is not None
    return json_response(payment_body(reply.payment))


@router.post("/collect/payments/{reference_or_id}/cancel")
async def cancel_payment(
    request: Request,
    reference_or_id: str,
    who: Who,
    body: CollectPaymentCancel | None = None,
) -> Response:
    reply = await _orchestrator(request).call(
        CancelPayment(
            **scope(request, who),
            reference_or_id=reference_or_id,
            reason=body.reason if body else None,
        )
    )
    raise_for_error(reply)
    assert reply.payment is not None
    await audit.payment_cancelled(request.app.state.pool, who.merchant_id, reply.payment)
    return json_response(payment_body(reply.payment))


@router.post("/collect/payments/{reference_or_id}/refunds", status_code=201)
async def refund_payment(
    request: Request,
    reference_or_id: str,
    who: Who,
    body: CollectRefundCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    body = body or CollectRefundCreate()
    # Required as on creates: a retried refund without a key would refund twice.
    key = parse_key(idempotency_key)

    async def run() -> tuple[int, Any]:
        reply = await _orchestrator(request).call(
            RefundPayment(
                **scope(request, who),
                reference_or_id=reference_or_id,
                idempotency_key=key,
                amount=body.amount,
                reason=body.reason,
                metadata=body.metadata or {},
            )
        )
        raise_for_error(reply)
        assert reply.refund is not None
        if reply.created:
            await audit.refund_created(request.app.state.pool, who.merchant_id, reply.refund)
        refund = reply.refund.model_dump(mode="json")
        # The orchestrator knew this key already (our record had expired): a replay too.
        refund["idempotent_replay"] = not reply.created
        return (201 if reply.created else 200), refund

    return await _idempotent(request, who, key, await _json_or_empty(request), run)


async def _json_or_empty(request: Request) -> Any:
    raw = await request.body()
    return orjson.loads(raw) if raw else {}
