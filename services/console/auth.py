"""Operators' sign-in: PINs, lockout and session tokens (the pure parts; SQL is in store.py).

PINs are hashed with argon2id (argon2-cffi's PasswordHasher: the parameters travel in
the hash, `check_needs_rehash` upgrades old hashes, verification is constant-time). A
PIN has little entropy, so the hash mostly guards the PIN an operator may reuse
elsewhere; what stops guessing is the lockout after a few wrong PINs in a row.
Session tokens are random 256-bit strings: a fast SHA-256 is enough for them (there is
nothing to brute-force), as for intake's API keys."""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Digits only, so it is typed fast on any keypad; six at least.
PIN_PATTERN = re.compile(r"^[0-9]{6,12}$")
_hasher = PasswordHasher()


class WeakPin(ValueError):
    pass


def check_pin_shape(pin: str) -> None:
    if not PIN_PATTERN.match(pin):
        raise WeakPin("a PIN is 6 to 12 digits")
    if len(set(pin)) == 1 or pin in "01234567890123" or pin in "98765432109876":
        raise WeakPin("a PIN must not be one digit repeated or a run like 123456")


def hash_pin(pin: str) -> str:
    return _hasher.hash(pin)


def pin_matches(pin_hash: str, pin: str) -> bool:
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(pin_hash: str) -> bool:
    return _hasher.check_needs_rehash(pin_hash)


@dataclass(frozen=True)
class Lockout:
    max_failures: int
    lock_for: timedelta

    def locked(self, locked_until: datetime | None, now: datetime) -> bool:
        return locked_until is not None and now < locked_until

    def after_failure(self, failures: int, now: datetime) -> tuple[int, datetime | None]:
        """The failure count and lock after one more wrong PIN: the count starts over
        once a lock is set, so the next lock needs as many wrong PINs again."""
        failures += 1
        if failures >= self.max_failures:
            return 0, now + self.lock_for
        return failures, None


@dataclass(frozen=True)
class Throttle:
    """Wrong PINs from one source address for one operator: `max_failures` in a row lock
    that address out for `lock_for`, each further lock twice as long, up to `max_lock`."""

    max_failures: int
    lock_for: timedelta
    max_lock: timedelta

    def after_failure(self, failures: int, locks: int, now: datetime) -> tuple[int, int, datetime | None]:
        """(failures, locks, locked_until) after one more wrong PIN."""
        failures += 1
        if failures < self.max_failures:
            return failures, locks, None
        return 0, locks + 1, now + min(self.lock_for * 2**locks, self.max_lock)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
