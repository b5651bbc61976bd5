from fluxpay_common import signing

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"collect.payment.completed"}'


def test_v1_matches_a_hand_computed_vector() -> None:
    # printf '1700000000.{"id":"evt_1","type":"collect.payment.completed"}' \
    #   | openssl dgst -sha256 -hmac whsec_test
    expected = "59173e3e03aa0286ab7c17bf70d44a949fcc353483717ce42a83b846165ba08d"
    assert signing.compute_v1(SECRET, 1700000000, BODY) == expected


def test_header_has_timestamp_then_one_v1_per_secret() -> None:
    header = signing.signature_header(["a", "b"], 1700000000, BODY)
    parts = header.split(",")
    assert parts[0] == "t=1700000000"
    assert [p[:3] for p in parts[1:]] == ["v1=", "v1="]


def test_verify_accepts_any_listed_secret_and_refuses_others() -> None:
    header = signing.signature_header(["old", "new"], 1700000000, BODY)
    assert signing.verify("new", header, BODY, now=1700000010)
    assert signing.verify("old", header, BODY, now=1700000010)
    assert not signing.verify("other", header, BODY, now=1700000010)


def test_verify_refuses_a_tampered_body_and_a_stale_timestamp() -> None:
    header = signing.signature_header([SECRET], 1700000000, BODY)
    assert not signing.verify(SECRET, header, BODY + b" ", now=1700000000)
    assert not signing.verify(SECRET, header, BODY, now=1700000000 + 301)
    assert not signing.verify(SECRET, "garbage", BODY, now=1700000000)
