"""Reference verifier for the notifier's webhook signatures, for agency integrators.

Standard library only, nothing from this project: copy it into the agency's receiver
(or port its ~30 lines). Use it on the raw request body, before parsing the JSON:

    verify_webhook(secret, request.headers["E112-Signature"], raw_body)   # raises on a bad one
    if seen_before(request.headers["Idempotency-Key"]): answer 200 and stop

The scheme: `E112-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`, each hex being
HMAC-SHA256(secret, "<t>.<raw body>") with the secret shown when the webhook was set
or the secret rotated (the whole `whsec_...` string is the key). A request is genuine
when one `v1` matches; it is fresh when `t` is within `tolerance` seconds of now.

- A forgery (no secret, another body, another `t`) matches no `v1`.
- A replay older than the tolerance window fails the freshness check; a replay inside
  the window carries an `Idempotency-Key` (the dispatch id) already seen, so an
  agency that keeps the keys it saw for longer than the window drops it too.
"""

import hashlib
import hmac
import time

DEFAULT_TOLERANCE_SECONDS = 300
HEX = frozenset("0123456789abcdef")


class InvalidSignature(Exception):
    pass


def verify_webhook(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Return the signed timestamp if `header` is a valid, fresh signature of `body`;
    raise InvalidSignature otherwise."""
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        # Strictly ASCII: str.isdigit() also says yes to "²", which int() refuses, and a
        # non-ASCII candidate makes compare_digest raise; junk is a bad signature, never
        # an exception of another kind (a receiver's 500).
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and len(value) == 64 and all(c in HEX for c in value):
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("malformed E112-Signature header")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature("signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance window (a replay, or a wrong clock)")
    return timestamp
