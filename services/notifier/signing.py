"""Secrets the notifier hands out and the signatures it makes with them.

Hand-written on the standard library's `hmac` rather than a token library: the webhook
scheme is a published contract that agencies re-implement in their own languages, so
it must be exactly the few lines documented in the README (see `webhook_verify.py`
for the receiving side), and the e-mail link token is the same construction.

- Webhook signature: `E112-Signature: t=<unix seconds>,v1=<hex>,v2=<hex>` where v1's
  hex is HMAC-SHA256(secret, "<t>.<raw body>") and v2's HMAC-SHA256(secret,
  "<t>.<Idempotency-Key>.<raw body>"): v2 also covers the key agencies dedupe on, so a
  captured request re-sent under another key fails it; v1 stays for the receivers
  built before v2. While a rotated-out secret is in its grace period a second `v1=`
  and `v2=` made with it follow, so the agency can switch at its pace.
- Agency API keys: 256 random bits shown once; only their SHA-256 is stored. A slow
  password hash (bcrypt, argon2) protects guessable passwords; a random 256-bit key
  cannot be guessed, and a plain hash lets the key be looked up by index.
- Acknowledgement links: `<dispatch id>.<expiry unix>.<hex HMAC of both>` under the
  service's own link secret, so a link acknowledges one dispatch until it expires and
  cannot be altered to acknowledge another.
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from uuid import UUID

SIGNATURE_HEADER = "E112-Signature"
WEBHOOK_SECRET_PREFIX = "whsec_"
API_KEY_PREFIX = "e112ak_"


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_signature_v2(secret: str, timestamp: int, idempotency_key: str, body: bytes) -> str:
    signed = f"{timestamp}.{idempotency_key}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets_: Iterable[str], timestamp: int, body: bytes, idempotency_key: str | None = None) -> str:
    """The `E112-Signature` value: one `v1=` per secret still valid, current first, then
    as many `v2=` over the Idempotency-Key too when there is one."""
    secrets_ = list(secrets_)
    parts = [f"t={timestamp}"] + [f"v1={webhook_signature(s, timestamp, body)}" for s in secrets_]
    if idempotency_key is not None:
        parts += [f"v2={webhook_signature_v2(s, timestamp, idempotency_key, body)}" for s in secrets_]
    return ",".join(parts)


class InvalidToken(ValueError):
    """An acknowledgement link that is malformed, altered or expired."""


def _ack_mac(secret: str, dispatch_id: UUID, expires: int) -> str:
    # "ack." keeps these MACs apart from anything else ever signed with the same secret.
    return hmac.new(secret.encode(), f"ack.{dispatch_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def ack_token(secret: str, dispatch_id: UUID, expires: int) -> str:
    return f"{dispatch_id}.{expires}.{_ack_mac(secret, dispatch_id, expires)}"


def read_ack_token(secret: str, token: str, now: int) -> UUID:
    """The dispatch id the token acknowledges; InvalidToken if it is not one we made,
    or it has expired."""
    try:
        raw_id, raw_expires, mac = token.split(".")
        dispatch_id, expires = UUID(raw_id), int(raw_expires)
    except ValueError:
        raise InvalidToken("malformed link") from None
    if not hmac.compare_digest(mac, _ack_mac(secret, dispatch_id, expires)):
        raise InvalidToken("this link was not issued by the notifier, or was altered")
    if now > expires:
        raise InvalidToken("this link has expired; acknowledge through the API instead")
    return dispatch_id
