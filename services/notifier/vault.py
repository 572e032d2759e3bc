"""Webhook signing secrets sealed at rest.

The notifier must read a secret back to sign with it (HMAC), so it cannot store a hash
as it does for API keys. It stores each secret encrypted with Fernet from the
`cryptography` library (AES-128-CBC and HMAC-SHA256, a versioned token with its own
integrity check), under keys from WEBHOOK_SECRET_KEYS that never reach the database: a
copy of the database or a backup without the notifier's Secret holds no usable secret.

Rotation (MultiFernet): the first key seals, every key listed opens. Put a new key
first, restart, and the notifier reseals every agency's secrets under it at start
(`reseal`); then drop the old key (deploy/README.md, "Rotate secrets").
"""

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED_PREFIX = "fernet:"
# Development only (refused in production, see settings.py): derived from a fixed text,
# so `make run` keeps reading what it sealed the last time.
DEV_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"e112 development webhook secret key").digest()).decode()


class VaultError(Exception):
    """A sealed secret that none of the configured keys opens (a key dropped too soon)."""


class SecretVault:
    def __init__(self, keys: Sequence[str]):
        if not keys:
            raise ValueError("at least one key")
        fernets = [Fernet(key.encode()) for key in keys]
        self._first, self._fernet = fernets[0], MultiFernet(fernets)

    def seal(self, secret: str | None) -> str | None:
        if secret is None:
            return None
        return SEALED_PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, stored: str | None) -> str | None:
        """The secret in a stored value. A value stored before sealing (plain) is read
        as it is; the next reseal seals it."""
        if stored is None or not stored.startswith(SEALED_PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored[len(SEALED_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise VaultError("a webhook secret sealed under a key no longer in WEBHOOK_SECRET_KEYS") from None

    def reseal(self, stored: str | None) -> str | None:
        """The stored value sealed under the first key: as it is when it already is,
        plain ones sealed, others re-encrypted; None stays None."""
        if stored is None:
            return None
        if not stored.startswith(SEALED_PREFIX):
            return self.seal(stored)
        token = stored[len(SEALED_PREFIX) :].encode()
        try:
            self._first.decrypt(token)
            return stored
        except InvalidToken:
            pass
        try:
            token = self._fernet.rotate(token)
        except InvalidToken:
            raise VaultError("a webhook secret sealed under a key no longer in WEBHOOK_SECRET_KEYS") from None
        return SEALED_PREFIX + token.decode()


def parse_keys(text: str) -> list[str]:
    """WEBHOOK_SECRET_KEYS: comma-separated Fernet keys, the sealing one first. Raises
    ValueError naming what is wrong (never the key)."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ValueError("WEBHOOK_SECRET_KEYS: at least one key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            raise ValueError(
                f"WEBHOOK_SECRET_KEYS: key {position} is not a Fernet key (32 url-safe base64-encoded bytes: "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None
    return keys
