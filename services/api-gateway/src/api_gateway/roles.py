"""Who may do what: an API key's role against the class of the route it calls. Pure.

Every route belongs to one class; the class decides both the rights a key needs and the
rate-limit bucket it counts against. A write the table does not name is `management`,
the class only a `full` key may use: a new route is closed until someone opens it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import assert_never


class Role(StrEnum):
    FULL = "full"
    # Creates and confirms payments, reads everything; no refund, cancel or configuration.
    PAYMENTS_WRITE = "payments_write"
    READ_ONLY = "read_only"


class RouteClass(StrEnum):
    READ = "read"
    CREATE = "create"
    # Refunds and cancels: money goes back, or a payment the customer is approving stops.
    REFUND = "refund"
    # API keys, webhook endpoint and secret, event replays and test events.
    MANAGEMENT = "management"
    # Public pages (hosted checkout): no key, limited per client IP.
    PUBLIC = "public"


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAYMENT = "/api/v1/collect/payments/{reference_or_id}"
WRITE_CLASSES: dict[tuple[str, str], RouteClass] = {
    ("POST", "/api/v1/collect/payments"): RouteClass.CREATE,
    ("POST", f"{PAYMENT}/confirm"): RouteClass.CREATE,
    ("POST", f"{PAYMENT}/cancel"): RouteClass.REFUND,
    ("POST", f"{PAYMENT}/refunds"): RouteClass.REFUND,
}


def classify(method: str, route_path: str) -> RouteClass:
    """The class of an authenticated route, from its method and path template."""
    if method.upper() in READ_METHODS:
        return RouteClass.READ
    return WRITE_CLASSES.get((method.upper(), route_path), RouteClass.MANAGEMENT)


def allows(role: Role, route_class: RouteClass) -> bool:
    match role:
        case Role.FULL:
            return True
        case Role.PAYMENTS_WRITE:
            return route_class in (RouteClass.READ, RouteClass.CREATE)
        case Role.READ_ONLY:
            return route_class is RouteClass.READ
        case _:
            assert_never(role)


def fails_open(method: str) -> bool:
    """Whether a request may go through when the rate limiter cannot be consulted (its
    database is down): reads yes; every write, since most start, stop or return money, no."""
    return method.upper() in READ_METHODS


WHAT_IT_DOES = {
    RouteClass.READ: "read",
    RouteClass.CREATE: "create payments",
    RouteClass.REFUND: "refund or cancel payments",
    RouteClass.MANAGEMENT: "manage API keys, webhooks and events",
    RouteClass.PUBLIC: "use public pages",
}
