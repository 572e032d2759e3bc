"""services/notifier/policy.py: sorting an attempt's HTTP status, and backoff."""

import random

import pytest

from services.notifier.policy import RetryPolicy, Verdict, classify_status


@pytest.mark.parametrize("code", [200, 201, 202, 203, 204, 206, 299])
def test_2xx_is_delivered(code):
    assert classify_status(code) == Verdict.DELIVERED


@pytest.mark.parametrize("code", [408, 429, 500, 501, 502, 503, 504, 507, 599])
def test_408_429_and_5xx_are_retryable(code):
    assert classify_status(code) == Verdict.RETRYABLE


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 406, 409, 410, 411, 413, 415, 422, 451, 499])
def test_other_4xx_are_permanent(code):
    assert classify_status(code) == Verdict.PERMANENT


@pytest.mark.parametrize("code", [100, 199, 300, 301, 302, 304, 307])
def test_non_2xx_is_never_delivered(code):
    assert classify_status(code) != Verdict.DELIVERED


def ceiling(policy: RetryPolicy, n: int) -> float:
    return min(policy.cap_seconds, policy.base_seconds * 2 ** (n - 1))


@pytest.mark.parametrize("policy", [RetryPolicy(), RetryPolicy(base_seconds=0.5, cap_seconds=30.0)])
def test_delay_stays_within_half_ceiling_and_ceiling(policy):
    rng = random.Random(1234)
    for n in range(1, 20):
        c = ceiling(policy, n)
        for _ in range(50):
            d = policy.delay(n, rng)
            assert c / 2 <= d <= c, (n, d, c)


def test_delay_ceiling_doubles_then_caps():
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=120.0)
    rng = random.Random(7)
    # n=1: [0.5, 1]; n=4: [4, 8]; n=8: 2^7=128 > cap, so [60, 120]; n=30: still capped.
    assert 0.5 <= policy.delay(1, rng) <= 1
    assert 4 <= policy.delay(4, rng) <= 8
    assert 60 <= policy.delay(8, rng) <= 120
    assert 60 <= policy.delay(30, rng) <= 120


def test_delay_is_jittered_not_constant():
    policy = RetryPolicy()
    rng = random.Random(42)
    delays = [policy.delay(5, rng) for _ in range(200)]  # c = 16: range [8, 16]
    assert min(delays) < 10 and max(delays) > 14


def test_delay_is_reproducible_with_the_same_seed():
    policy = RetryPolicy()
    first = [policy.delay(n, random.Random(99)) for n in range(1, 10)]
    again = [policy.delay(n, random.Random(99)) for n in range(1, 10)]
    assert first == again


def test_delay_is_never_zero():
    policy = RetryPolicy()
    rng = random.Random(3)
    assert min(policy.delay(1, rng) for _ in range(500)) >= 0.5


def test_gives_up_at_max_attempts():
    policy = RetryPolicy(max_attempts=12)
    assert not policy.gives_up(0)
    assert not policy.gives_up(11)
    assert policy.gives_up(12)
    assert policy.gives_up(13)


def test_gives_up_after_one_attempt_when_max_is_one():
    assert RetryPolicy(max_attempts=1).gives_up(1)
    assert not RetryPolicy(max_attempts=1).gives_up(0)
