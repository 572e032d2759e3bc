"""Reference verifier for the notifier's webhook signatures, for agency integrators.

Standard library only, nothing from this project: copy it into the agency's receiver
(or port its ~40 lines). Use it on the raw request body, before parsing the JSON:

    key = request.headers["Idempotency-Key"]
    verify_webhook(secret, request.headers["E112-Signature"], raw_body, idempotency_key=key)  # raises
    if seen_before(key): answer 200 and stop

The scheme: `E112-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>],v2=<hex>[,v2=<hex>]`,
with the secret shown when the webhook was set or the secret rotated (the whole
`whsec_...` string is the key):

- `v2` = HMAC-SHA256(secret, "<t>.<Idempotency-Key>.<raw body>"): it covers the key
  the agency dedupes on too. Given `idempotency_key`, a request is genuine when one
  `v2` matches.
- `v1` = HMAC-SHA256(secret, "<t>.<raw body>"), for receivers built before v2: without
  `idempotency_key`, a request is genuine when one `v1` matches.

It is fresh when `t` is within `tolerance` seconds of now.

- A forgery (no secret, another body, another `t`, another Idempotency-Key under v2)
  matches nothing.
- A replay older than the tolerance window fails the freshness check; a replay inside
  the window carries an `Idempotency-Key` already seen (under v2 it cannot carry
  another), so an agency that keeps the keys it saw for longer than the window drops it.
- Junk in the header is an InvalidSignature, never another exception.
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
    idempotency_key: str | None = None,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Return the signed timestamp if `header` is a valid, fresh signature of `body`
    (and, given one, of `idempotency_key`: the v2 signature); raise InvalidSignature
    otherwise."""
    version = "v1" if idempotency_key is None else "v2"
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        # Strictly ASCII: str.isdigit() also says yes to "²", which int() refuses, and a
        # non-ASCII candidate makes compare_digest raise; junk is a bad signature, never
        # an exception of another kind (a receiver's 500).
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == version and len(value) == 64 and all(c in HEX for c in value):
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature(f"malformed E112-Signature header (no t or no {version})")
    signed = f"{timestamp}.".encode()
    if idempotency_key is not None:
        signed += idempotency_key.encode("utf-8", "surrogatepass") + b"."
    expected = hmac.new(secret.encode(), signed + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature("signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance window (a replay, or a wrong clock)")
    return timestamp
