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
    # API keys, webhook endpoint and secret, event replays and test events, payment links,
    # payment types, payers and dues.
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


def fails_open(route_class: RouteClass, method: str) -> bool:
    """Whether a request may go through unmetered when the rate limiter cannot be consulted
    (its database is down). What moves money waits: creating or confirming a payment, a
    refund or cancel, a payer's choice on the checkout page (it starts a push). Reads and
    key or webhook management pass: revoking a leaked key must never wait for a limiter."""
    match route_class:
        case RouteClass.READ | RouteClass.MANAGEMENT:
            return True
        case RouteClass.CREATE | RouteClass.REFUND:
            return False
        case RouteClass.PUBLIC:
            return method.upper() in READ_METHODS
        case _:
            assert_never(route_class)


WHAT_IT_DOES = {
    RouteClass.READ: "read",
    RouteClass.CREATE: "create payments",
    RouteClass.REFUND: "refund or cancel payments",
    RouteClass.MANAGEMENT: "manage API keys, webhooks, events, payment links or dues",
    RouteClass.PUBLIC: "use public pages",
}
