"""The console's sign-in rules: PIN shape, argon2 hashes, lockout, session tokens."""

from datetime import UTC, datetime, timedelta

import pytest

from services.console import auth

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("pin", ["12345", "abcdef", "1234567890123", "", "12 3456"])
def test_a_pin_is_six_to_twelve_digits(pin):
    with pytest.raises(auth.WeakPin):
        auth.check_pin_shape(pin)


@pytest.mark.parametrize("pin", ["000000", "111111111", "123456", "234567890", "987654", "3210987"])
def test_repeated_digits_and_runs_are_refused(pin):
    with pytest.raises(auth.WeakPin):
        auth.check_pin_shape(pin)


@pytest.mark.parametrize("pin", ["135790", "482913", "5038271164"])
def test_ordinary_pins_are_accepted(pin):
    auth.check_pin_shape(pin)


def test_a_pin_is_stored_as_an_argon2id_hash_that_only_the_pin_matches():
    stored = auth.hash_pin("482913")
    assert stored.startswith("$argon2id$") and "482913" not in stored
    assert auth.pin_matches(stored, "482913")
    assert not auth.pin_matches(stored, "482914")
    assert not auth.pin_matches("not a hash", "482913")
    assert auth.hash_pin("482913") != stored  # salted
    assert not auth.needs_rehash(stored)


def test_the_lock_comes_with_the_last_allowed_failure_and_lasts_its_time():
    lockout = auth.Lockout(max_failures=3, lock_for=timedelta(minutes=5))
    failures, locked_until = lockout.after_failure(0, NOW)
    assert (failures, locked_until) == (1, None)
    failures, locked_until = lockout.after_failure(failures, NOW)
    assert (failures, locked_until) == (2, None)
    failures, locked_until = lockout.after_failure(failures, NOW)
    assert failures == 0 and locked_until == NOW + timedelta(minutes=5)
    assert lockout.locked(locked_until, NOW + timedelta(minutes=4, seconds=59))
    assert not lockout.locked(locked_until, NOW + timedelta(minutes=5))
    assert not lockout.locked(None, NOW)


def test_session_tokens_are_random_and_stored_only_as_their_hash():
    first, second = auth.new_token(), auth.new_token()
    assert first != second and len(first) >= 43
    assert auth.token_hash(first) == auth.token_hash(first) != auth.token_hash(second)
    assert first.encode() not in auth.token_hash(first)


def test_an_address_is_locked_after_its_wrong_pins_each_lock_twice_as_long_up_to_the_maximum():
    throttle = auth.Throttle(max_failures=3, lock_for=timedelta(minutes=5), max_lock=timedelta(minutes=30))
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert throttle.after_failure(0, 0, now) == (1, 0, None)
    assert throttle.after_failure(1, 0, now) == (2, 0, None)
    assert throttle.after_failure(2, 0, now) == (0, 1, now + timedelta(minutes=5))
    assert throttle.after_failure(2, 1, now) == (0, 2, now + timedelta(minutes=10))
    assert throttle.after_failure(2, 2, now) == (0, 3, now + timedelta(minutes=20))
    assert throttle.after_failure(2, 3, now) == (0, 4, now + timedelta(minutes=30))  # the maximum
