"""The connector's embedded HTTP server: PSP callbacks and a health probe."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from fluxpay_common.logging import get_logger
from provider_connectors.connectors.base import (
    ConnectorError,
    FlowNotSupported,
    InvalidSignature,
    ProviderUnavailable,
)
from provider_connectors.service_layer.callbacks import CallbackOutcome, handle_callback
from provider_connectors.service_layer.engine import Engine

log = get_logger(__name__)


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title=f"fluxpay connector {engine.provider}", docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "provider": engine.provider}

    @app.post("/callbacks/{provider}")
    @app.put("/callbacks/{provider}")
    async def callback(provider: str, request: Request) -> Response:
        if provider != engine.provider:
            return JSONResponse({"error": "unknown_provider"}, status_code=404)
        body = await request.body()
        try:
            outcome = await handle_callback(
                engine, request.headers, body, dict(request.query_params)
            )
        except InvalidSignature as exc:
            # The body is not logged: it is unverified and may carry customer data.
            log.warning(
                "callback_signature_invalid",
                reason=str(exc),
                remote=request.client.host if request.client else None,
                body_bytes=len(body),
            )
            return JSONResponse({"error": "invalid_signature"}, status_code=401)
        except FlowNotSupported:
            return JSONResponse({"error": "callbacks_not_supported"}, status_code=404)
        except (ProviderUnavailable, ConnectorError) as exc:
            # The re-check could not settle it (PSP down, or it does not know the object
            # yet): nothing was recorded; a PSP that retries will try again, and the poller
            # asks later in any case.
            log.warning("callback_recheck_failed", error=str(exc))
            return JSONResponse({"error": "try_again_later"}, status_code=503)
        except ValueError as exc:
            # Verified but unusable (malformed JSON, a NUL in an id, an object for a
            # string): refused with no effect, so the PSP gets a clear answer, not a 500.
            log.warning("callback_unparseable", reason=str(exc)[:200], body_bytes=len(body))
            return JSONResponse(
                {"error": "malformed_callback", "reason": str(exc)[:200]}, status_code=400
            )
        if outcome is CallbackOutcome.UNKNOWN:
            # Not recorded: a PSP that retries gets another chance once the attempt is known.
            return JSONResponse({"status": outcome.value}, status_code=404)
        return JSONResponse({"status": outcome.value})

    return app
