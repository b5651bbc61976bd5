"""What happens to an authenticated request before its route runs: the key's role is
checked against the route's class, the request is counted against the key's rate limit,
and the key becomes the actor of anything the request writes to the audit log. Public
pages are counted per client IP."""

from __future__ import annotations

from fastapi import Request

from api_gateway import audit
from api_gateway.auth import Principal
from api_gateway.errors import ApiError
from api_gateway.ratelimit import RateLimiter
from api_gateway.roles import WHAT_IT_DOES, RouteClass, allows, classify


def route_class(request: Request) -> RouteClass:
    route = request.scope.get("route")
    return classify(request.method, getattr(route, "path", request.url.path))


async def admit(request: Request, who: Principal) -> None:
    """Role, then rate limit: a forbidden request is refused without spending the budget."""
    kind = route_class(request)
    if not allows(who.role, kind):
        raise ApiError(
            403,
            "insufficient_permissions",
            f"This API key's role '{who.role}' may not {WHAT_IT_DOES[kind]};"
            " use a key with role 'full'.",
            kind="permission_error",
        )
    limiter: RateLimiter = request.app.state.limiter
    await limiter.check(f"key:{who.key_id}:{kind}", kind, request.method)
    audit.act_as(audit.Actor(who.key_id, who.environment, request.state.correlation_id))


async def limit_public(request: Request) -> None:
    """A dependency for public pages (hosted checkout, payment links): per client IP."""
    limiter: RateLimiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    await limiter.check(f"ip:{client}:public", RouteClass.PUBLIC, request.method)
