import pytest

from fluxpay_common.crypto import SecretBox, digests_match, hash_api_key
from fluxpay_common.money import to_major, to_minor
from fluxpay_common.settings import DEV_SECRETS_KEY, ServiceSettings


def test_amounts_convert_between_major_and_minor_units() -> None:
    assert to_minor(3000) == 300000
    assert to_major(300000) == 3000


def test_fractional_or_non_integer_amounts_are_refused() -> None:
    with pytest.raises(ValueError):
        to_major(150)
    with pytest.raises(TypeError):
        to_minor(10.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_minor(True)


def test_secret_box_round_trips_and_refuses_another_key() -> None:
    box = SecretBox(DEV_SECRETS_KEY)
    token = box.seal("whsec_abc")
    assert "whsec_abc" not in token
    assert box.open(token) == "whsec_abc"
    other = SecretBox("b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA=")
    with pytest.raises(ValueError):
        other.open(token)


def test_api_key_hash_is_stable_and_compared_in_constant_time() -> None:
    digest = hash_api_key("6f1c0c0e-0000-4000-8000-000000000001")
    assert digests_match(digest, hash_api_key("6f1c0c0e-0000-4000-8000-000000000001"))
    assert not digests_match(digest, hash_api_key("6f1c0c0e-0000-4000-8000-000000000002"))


def test_settings_refuse_the_development_key_in_production(monkeypatch) -> None:
    monkeypatch.setenv("FLUXPAY_DEPLOYMENT", "production")
    with pytest.raises(ValueError, match="SECRETS_KEY"):
        ServiceSettings()
