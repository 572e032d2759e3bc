"""The token bucket behind intake's per-app rate limit."""

import pytest

from services.intake.ratelimit import TokenBucket, retry_after_header


def test_a_burst_of_ten_seconds_worth_then_the_steady_rate():
    bucket = TokenBucket.per_minute(60, now=0.0)  # one a second, a burst of ten
    assert [bucket.take(0.0) for _ in range(10)] == [0.0] * 10
    assert bucket.take(0.0) == pytest.approx(1.0)  # the eleventh waits a second
    assert bucket.take(1.0) == 0.0  # one token came back
    assert bucket.take(1.0) > 0


def test_small_limits_still_allow_a_burst_of_five():
    bucket = TokenBucket.per_minute(6, now=0.0)
    assert [bucket.take(0.0) == 0.0 for _ in range(6)] == [True] * 5 + [False]


def test_tokens_refill_only_up_to_the_capacity():
    bucket = TokenBucket.per_minute(60, now=0.0)
    for _ in range(10):
        bucket.take(0.0)
    waited_an_hour = [bucket.take(3600.0) for _ in range(11)]
    assert waited_an_hour[:10] == [0.0] * 10 and waited_an_hour[10] > 0


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait, header):
    assert retry_after_header(wait) == header
