"""Routing: the most specific rule wins; an OTP operator only reaches an OTP provider."""

from __future__ import annotations

from payment_orchestrator.config import Settings
from payment_orchestrator.domain.routing import route

ROUTES = Settings().routes


def test_live_mtn_in_benin_goes_to_mtn_momo() -> None:
    assert route(ROUTES, "live", "BJ", "mtn", "XOF", "direct") == "mtn_momo"


def test_live_coris_is_never_routed_to_a_provider_without_an_otp_flow() -> None:
    # Novasend carries BJ:* but has no OTP confirmation: awaiting_otp would never end.
    assert route(ROUTES, "live", "BJ", "moov", "XOF", "direct") == "novasend"
    assert route(ROUTES, "live", "BJ", "coris", "XOF", "direct", needs_otp=True) is None


def test_test_mode_sends_otp_operators_to_the_sandbox_which_checks_codes() -> None:
    assert route(ROUTES, "test", "BJ", "coris", "XOF", "direct", needs_otp=True) == "sandbox"


def test_an_otp_capable_route_further_down_the_table_is_used() -> None:
    routes = {"BJ:coris": "novasend", "*:*": "sandbox"}
    assert route(routes, "live", "BJ", "coris", needs_otp=True) == "sandbox"
