"""/api/v1/openapi.json: the whole gateway described (no key needed, like the seed's)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api_gateway import openapi_doc

router = APIRouter()


@router.get("/api/v1/openapi.json", include_in_schema=False)
async def gateway_document(request: Request) -> Response:
    cached = getattr(request.app.state, "openapi_document", None)
    if cached is None:
        cached = orjson.dumps(openapi_doc.build(request.app))
        request.app.state.openapi_document = cached
    return Response(cached, media_type="application/json")
