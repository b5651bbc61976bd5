import random
import uuid
from datetime import UTC, datetime, timedelta

from fluxpay_common.messages import MerchantEndpointChanged, SealedSecret
from fluxpay_common.ssrf import without_credentials
from webhook_dispatcher.domain.delivery import (
    AttemptOutcome,
    Decision,
    Endpoint,
    SigningSecret,
    Skip,
    Target,
    Wait,
    decide,
    resolve_target,
    secrets_of_change,
    signing_secrets,
)
from webhook_dispatcher.domain.schedule import parse_schedule

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FIVE_DAYS = timedelta(days=5)
SCHEDULE = parse_schedule("0,5,300,1800")
CURRENT = (SigningSecret("s"),)
ENDPOINT = Endpoint(
    url="https://shop.example.com/hooks",
    secrets=(SigningSecret("new"), SigningSecret("old", NOW - HOUR)),
)
TO_ENDPOINT = Target("https://shop.example.com/hooks", is_endpoint=True)
TO_CALLBACK = Target("https://shop.example.com/order/1", is_endpoint=False)


def _decide(
    outcome: AttemptOutcome,
    attempts_made: int = 1,
    target: Target = TO_ENDPOINT,
    failing_since: datetime | None = None,
) -> Decision:
    return decide(
        outcome,
        attempts_made=attempts_made,
        schedule=SCHEDULE,
        now=NOW,
        target=target,
        failing_since=failing_since,
        disable_after=FIVE_DAYS,
        rng=random.Random(3),
    )


def test_payment_callback_url_overrides_the_endpoint() -> None:
    route = resolve_target("https://shop.example.com/order/1", ENDPOINT, timedelta(0), HOUR)
    assert route == TO_CALLBACK


def test_endpoint_url_is_used_without_a_callback_url() -> None:
    assert resolve_target(None, ENDPOINT, timedelta(0), HOUR) == TO_ENDPOINT


def test_delivery_waits_for_an_endpoint_record_that_has_not_arrived() -> None:
    assert resolve_target(None, None, timedelta(minutes=5), HOUR) == Wait()
    assert resolve_target("https://x.example/cb", None, timedelta(0), HOUR) == Wait()


def test_delivery_gives_up_waiting_for_an_endpoint_as_no_endpoint() -> None:
    route = resolve_target(None, None, HOUR, HOUR)
    assert isinstance(route, Skip) and route.status == "no_endpoint"


def test_merchant_without_a_url_is_recorded_as_no_endpoint() -> None:
    route = resolve_target(None, Endpoint(url=None, secrets=CURRENT), timedelta(0), HOUR)
    assert isinstance(route, Skip) and route.status == "no_endpoint"


def test_disabled_endpoint_is_not_called() -> None:
    disabled = Endpoint(url=TO_ENDPOINT.url, secrets=CURRENT, disabled_at=NOW)
    route = resolve_target(None, disabled, timedelta(0), HOUR)
    assert isinstance(route, Skip) and route.status == "endpoint_disabled"


def test_both_secrets_sign_during_the_rotation_overlap_only() -> None:
    rotating = Endpoint(
        url="https://x.example", secrets=(SigningSecret("new"), SigningSecret("old", NOW + HOUR))
    )
    assert signing_secrets(rotating, NOW) == ("new", "old")
    assert signing_secrets(rotating, NOW + 2 * HOUR) == ("new",)
    assert signing_secrets(ENDPOINT, NOW) == ("new",)


def test_every_secret_still_inside_its_own_overlap_signs_after_two_rotations() -> None:
    twice = Endpoint(
        url="https://x.example",
        secrets=(
            SigningSecret("third"),
            SigningSecret("second", NOW + 2 * HOUR),
            SigningSecret("first", NOW + HOUR),
        ),
    )
    assert signing_secrets(twice, NOW) == ("third", "second", "first")
    assert signing_secrets(twice, NOW + 90 * timedelta(minutes=1)) == ("third", "second")


def test_a_change_from_an_older_gateway_shares_one_overlap() -> None:
    legacy = MerchantEndpointChanged(
        merchant_id=uuid.uuid4(),
        webhook_url="https://x.example",
        webhook_secrets_sealed=["new", "old"],
        secret_overlap_until=NOW,
    )
    assert secrets_of_change(legacy) == (SigningSecret("new"), SigningSecret("old", NOW))
    current = legacy.model_copy(update={"secrets": [SealedSecret(sealed="only")]})
    assert secrets_of_change(current) == (SigningSecret("only"),)


def test_2xx_succeeds() -> None:
    assert _decide(AttemptOutcome(204)) == Decision("succeeded")


def test_server_error_is_retried_on_the_schedule_with_jitter() -> None:
    decision = _decide(AttemptOutcome(500), attempts_made=2)
    assert decision.status == "pending" and decision.next_attempt_at is not None
    assert timedelta(seconds=270) <= decision.next_attempt_at - NOW <= timedelta(seconds=330)


def test_redirect_and_timeout_are_failures() -> None:
    redirect = AttemptOutcome(302, error="redirect not followed (HTTP 302)")
    timeout = AttemptOutcome(None, error="timed out after 15 s")
    assert not redirect.succeeded and not timeout.succeeded
    assert _decide(redirect).status == "pending" and _decide(timeout).status == "pending"


def test_failure_of_the_last_attempt_makes_the_delivery_dead() -> None:
    assert _decide(AttemptOutcome(503), attempts_made=4) == Decision("dead")


def test_gone_disables_the_endpoint_and_stops_the_delivery() -> None:
    decision = _decide(AttemptOutcome(410))
    assert decision.status == "dead"
    assert decision.disable_endpoint is not None and "410" in decision.disable_endpoint


def test_gone_from_a_payment_callback_url_keeps_the_endpoint_enabled() -> None:
    assert _decide(AttemptOutcome(410), target=TO_CALLBACK) == Decision("dead")


def test_five_days_of_unbroken_failures_disable_the_endpoint() -> None:
    decision = _decide(AttemptOutcome(500), failing_since=NOW - FIVE_DAYS)
    assert decision.status == "dead" and "5 days" in str(decision.disable_endpoint)


def test_four_days_of_failures_keep_retrying() -> None:
    decision = _decide(AttemptOutcome(500), failing_since=NOW - timedelta(days=4))
    assert decision.status == "pending" and decision.disable_endpoint is None


def test_delivery_log_never_shows_url_credentials() -> None:
    assert without_credentials("https://u:p@shop.example.com/h?x=1") == (
        "https://shop.example.com/h?x=1"
    )
    assert without_credentials("https://shop.example.com/h") == "https://shop.example.com/h"
