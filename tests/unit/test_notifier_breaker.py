"""services/notifier/breaker.py: the per-agency webhook circuit breaker, driven by
clock readings passed in."""

from services.notifier.breaker import Breakers, CircuitBreaker, State


def tripped(now: float = 100.0, **kwargs) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10, cooldown_cap_seconds=40, **kwargs)
    for _ in range(3):
        assert breaker.allow(now)
        breaker.record_failure(now)
    return breaker


def test_closed_lets_everything_through_until_the_threshold():
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10)
    assert not breaker.record_failure(0)
    assert not breaker.record_failure(0)
    assert breaker.state is State.CLOSED and breaker.allow(0)
    assert breaker.record_failure(0)  # the third in a row opens it
    assert breaker.state is State.OPEN


def test_a_success_resets_the_streak():
    breaker = CircuitBreaker(failure_threshold=3)
    breaker.record_failure(0)
    breaker.record_failure(0)
    breaker.record_success()
    breaker.record_failure(0)
    breaker.record_failure(0)
    assert breaker.state is State.CLOSED


def test_open_refuses_and_postpones_to_the_end_of_the_cooldown():
    breaker = tripped(now=100.0)
    assert not breaker.allow(100.0)
    assert not breaker.allow(109.9)
    assert breaker.postpone_until(105.0) == 110.0


def test_after_the_cooldown_exactly_one_trial_goes():
    breaker = tripped(now=100.0)
    assert breaker.allow(110.0)
    assert breaker.state is State.HALF_OPEN
    assert not breaker.allow(110.0) and not breaker.allow(111.0)
    assert breaker.postpone_until(111.0) > 111.0


def test_a_successful_trial_closes_it():
    breaker = tripped(now=100.0)
    breaker.allow(110.0)
    assert breaker.record_success() is True
    assert breaker.state is State.CLOSED and breaker.allow(110.0) and breaker.allow(110.0)
    assert breaker.record_success() is False  # already closed: nothing to bring forward


def test_a_failed_trial_reopens_it_for_twice_as_long_up_to_the_cap():
    breaker = tripped(now=100.0)
    waits = []
    now = 100.0
    for _ in range(4):
        now = breaker.retry_at
        assert breaker.allow(now)
        assert breaker.record_failure(now)
        waits.append(breaker.retry_at - now)
    assert waits == [20, 40, 40, 40]


def test_a_client_error_ends_a_trial_without_counting_as_unhealthy():
    breaker = tripped(now=100.0)
    breaker.allow(110.0)
    breaker.record_other()
    assert breaker.state is State.CLOSED and breaker.failures == 0


def test_late_failures_from_before_it_opened_do_not_extend_it():
    breaker = tripped(now=100.0)
    assert not breaker.record_failure(105.0)
    assert breaker.retry_at == 110.0


def test_each_agency_has_its_own_breaker():
    breakers = Breakers(failure_threshold=1, cooldown_seconds=5)
    breakers["damkar"].record_failure(0)
    assert breakers["damkar"].state is State.OPEN
    assert breakers["pln"].state is State.CLOSED and breakers["pln"].allow(0)
    assert breakers["damkar"] is breakers["damkar"]


def test_one_dispatch_failing_again_and_again_does_not_open_it_for_the_others():
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10)
    for _ in range(20):  # one dispatch's retries: one failing dispatch
        assert not breaker.record_failure(0, dispatch="bad")
    assert breaker.state is State.CLOSED and breaker.allow(0)
    assert not breaker.record_failure(0, dispatch="second")
    assert breaker.record_failure(0, dispatch="third")  # three different dispatches in a row: the endpoint


def test_a_success_ends_the_streak_of_failing_dispatches():
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=10)
    breaker.record_failure(0, dispatch="a")
    breaker.record_success()
    assert not breaker.record_failure(0, dispatch="b") and breaker.state is State.CLOSED
    assert breaker.record_failure(0, dispatch="a")  # a, once more, after the success counts again
