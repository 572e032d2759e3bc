"""Webhook signatures as an agency checks them with the documented reference verifier
(services/notifier/webhook_verify.py): genuine requests pass; forged, altered and
replayed ones are caught. Also the e-mail link tokens and the agency keys."""

import json
import uuid

import pytest

from services.notifier import signing
from services.notifier.webhook_verify import InvalidSignature, verify_webhook

SECRET = signing.new_webhook_secret()
BODY = json.dumps({"dispatch_id": str(uuid.uuid4()), "agency": "damkar", "category": "kebakaran"}).encode()
T = 1_760_000_000


def signed(body: bytes = BODY, t: int = T, secrets=(SECRET,)) -> str:
    return signing.signature_header(list(secrets), t, body)


def test_a_genuine_request_verifies_and_returns_its_timestamp():
    assert verify_webhook(SECRET, signed(), BODY, now=T + 1) == T


def test_the_header_has_the_documented_form():
    header = signed()
    t, v1 = header.split(",")
    assert t == f"t={T}"
    assert v1.startswith("v1=") and len(v1) == 3 + 64
    # HMAC-SHA256 over "<t>.<body>", as the README says, computed independently.
    import hashlib
    import hmac

    assert v1[3:] == hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "forgery",
    [
        lambda: signed(secrets=(signing.new_webhook_secret(),)),  # made without the agency's secret
        lambda: signed(body=BODY.replace(b"kebakaran", b"penyakit")),  # a signature of another body
        lambda: signed().replace(f"t={T}", f"t={T + 5}"),  # the timestamp moved, the signature kept
        lambda: f"t={T}",  # no signature at all
        lambda: "",  # no header
        lambda: f"t={T},v1=" + "0" * 64,
    ],
)
def test_forgeries_are_rejected(forgery):
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, forgery(), BODY, now=T)


def test_an_altered_body_is_rejected():
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, signed(), BODY + b" ", now=T)


def test_a_replay_after_the_tolerance_window_is_rejected():
    header = signed()
    assert verify_webhook(SECRET, header, BODY, now=T + 300) == T
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_webhook(SECRET, header, BODY, now=T + 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_webhook(SECRET, header, BODY, now=T + 3600, tolerance=600)


def test_a_replay_inside_the_window_is_caught_by_the_idempotency_key():
    """What the README tells agencies to do: verify, then drop an Idempotency-Key seen
    before. A captured request re-sent a second later passes the signature check but
    not the key check."""
    seen: set[str] = set()

    def receive(header: str, body: bytes, key: str, now: float) -> str:
        verify_webhook(SECRET, header, body, now=now)
        if key in seen:
            return "duplicate"
        seen.add(key)
        return "accepted"

    key = json.loads(BODY)["dispatch_id"]
    assert receive(signed(), BODY, key, T) == "accepted"
    assert receive(signed(), BODY, key, T + 1) == "duplicate"


def test_a_clock_ahead_of_the_agency_is_also_outside_the_window():
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, signed(t=T + 1000), BODY, now=T)


def test_during_rotation_either_secret_verifies():
    new = signing.new_webhook_secret()
    header = signed(secrets=(new, SECRET))
    assert verify_webhook(new, header, BODY, now=T) == T
    assert verify_webhook(SECRET, header, BODY, now=T) == T
    with pytest.raises(InvalidSignature):
        verify_webhook(signing.new_webhook_secret(), header, BODY, now=T)


def test_the_reference_verifier_stands_alone():
    """Agencies copy webhook_verify.py: it must need nothing from this project."""
    import services.notifier.webhook_verify as module

    source = open(module.__file__).read()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import hashlib", "import hmac", "import time"]


def test_secrets_and_keys_are_random_and_prefixed():
    assert len({signing.new_webhook_secret() for _ in range(50)}) == 50
    key = signing.new_api_key()
    assert key.startswith("e112ak_") and len(key) > 40
    assert signing.hash_api_key(key) == signing.hash_api_key(key) != signing.hash_api_key(key + "x")
    assert key not in signing.hash_api_key(key)


LINK_SECRET = "s" * 40


def test_an_ack_token_names_its_dispatch_until_it_expires():
    dispatch_id = uuid.uuid4()
    token = signing.ack_token(LINK_SECRET, dispatch_id, T + 60)
    assert signing.read_ack_token(LINK_SECRET, token, T) == dispatch_id
    assert signing.read_ack_token(LINK_SECRET, token, T + 60) == dispatch_id
    with pytest.raises(signing.InvalidToken, match="expired"):
        signing.read_ack_token(LINK_SECRET, token, T + 61)


@pytest.mark.parametrize(
    "alter",
    [
        lambda token, other: token.replace(token.split(".")[0], str(other)),  # another dispatch
        lambda token, other: token.replace(f".{T + 60}.", f".{T + 10**6}."),  # a later expiry
        lambda token, other: token[:-1] + ("0" if token[-1] != "0" else "1"),  # a changed MAC
        lambda token, other: signing.ack_token("another secret" * 3, other, T + 60),  # someone else's secret
    ],
)
def test_an_altered_ack_token_is_refused(alter):
    token = signing.ack_token(LINK_SECRET, uuid.uuid4(), T + 60)
    with pytest.raises(signing.InvalidToken, match="altered"):
        signing.read_ack_token(LINK_SECRET, alter(token, uuid.uuid4()), T)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", f"{uuid.uuid4()}.soon.00", "x.y.z.w"])
def test_a_malformed_ack_token_is_refused(token):
    with pytest.raises(signing.InvalidToken, match="malformed"):
        signing.read_ack_token(LINK_SECRET, token, T)


@pytest.mark.parametrize(
    "junk",
    [
        f"t={T},v1=é",
        "t=²,v1=" + "0" * 64,
        f"t={T},v1=" + "é" * 64,
        "t=" + "9" * 400 + ",v1=" + "0" * 64,
        f"t={T},v1={'G' * 64}",
        "\x00",
        "t=,v1=,=,,,",
    ],
)
def test_junk_headers_are_a_bad_signature_never_another_exception(junk):
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, junk, BODY, now=T)
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, junk.replace("v1=", "v2="), BODY, idempotency_key=KEY, now=T)


def test_a_genuine_signature_beside_junk_still_verifies():
    assert verify_webhook(SECRET, signed() + ",v1=é,t2=x", BODY, now=T) == T


# v2: the signature covers the Idempotency-Key too.
KEY = json.loads(BODY)["dispatch_id"]


def test_the_v2_signature_covers_the_idempotency_key_as_the_readme_says():
    import hashlib
    import hmac

    header = signing.signature_header([SECRET], T, BODY, idempotency_key=KEY)
    t, v1, v2 = header.split(",")
    assert (t, v1) == tuple(signed().split(","))  # v1 as before, for the receivers built on it
    signed_text = f"{T}.{KEY}.".encode() + BODY
    assert v2 == "v2=" + hmac.new(SECRET.encode(), signed_text, hashlib.sha256).hexdigest()
    assert verify_webhook(SECRET, header, BODY, idempotency_key=KEY, now=T) == T
    assert verify_webhook(SECRET, header, BODY, now=T) == T  # a v1 receiver reads the same header


def test_a_captured_request_re_sent_under_another_idempotency_key_fails_v2():
    # What v1 cannot see: the body and its signature kept, the key changed so that the
    # agency's dedup lets it through as a new dispatch.
    header = signing.signature_header([SECRET], T, BODY, idempotency_key=KEY)
    assert verify_webhook(SECRET, header, BODY, now=T) == T
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, header, BODY, idempotency_key=str(uuid.uuid4()), now=T)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, header, BODY, idempotency_key="\ud800é", now=T)  # junk key: no exception


def test_a_receiver_asking_for_v2_refuses_a_header_with_v1_only():
    # A v1 signature is over the body alone: it proves nothing about the key.
    with pytest.raises(InvalidSignature, match="no t or no v2"):
        verify_webhook(SECRET, signed(), BODY, idempotency_key=KEY, now=T)


def test_during_rotation_either_secret_verifies_v2():
    new = signing.new_webhook_secret()
    header = signing.signature_header([new, SECRET], T, BODY, idempotency_key=KEY)
    assert [part[:3] for part in header.split(",")] == ["t=1", "v1=", "v1=", "v2=", "v2="]
    assert verify_webhook(new, header, BODY, idempotency_key=KEY, now=T) == T
    assert verify_webhook(SECRET, header, BODY, idempotency_key=KEY, now=T) == T
    with pytest.raises(InvalidSignature):
        verify_webhook(signing.new_webhook_secret(), header, BODY, idempotency_key=KEY, now=T)
