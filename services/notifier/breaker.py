"""A circuit breaker per agency webhook, as pure logic over a clock reading.

Closed: attempts go through; retryable failures of `failure_threshold` different
dispatches in a row open it. The breaker judges the endpoint, not one dispatch: a
dispatch the endpoint keeps refusing (its retries, however many) counts once, so one bad
dispatch cannot hold back every other dispatch of the agency; any success ends the
streak.
Open: no attempt goes until `retry_at`; the dispatches that come due meanwhile are
postponed, not failed and not counted against their retry bound. Then half-open: one
trial attempt goes; success closes the breaker, failure opens it again for twice as
long (up to `cooldown_cap_seconds`).

The state lives in each process's memory: a restart forgets it, which costs at most
one more round of failing attempts. No dispatch depends on it, since postponing only
moves a stored `next_attempt_at`.
"""

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown_seconds: float = 15.0
    cooldown_cap_seconds: float = 300.0
    state: State = State.CLOSED
    failures: int = 0  # different dispatches failing in a row
    retry_at: float = 0.0
    cooldown: float = 0.0
    trial_in_flight: bool = False
    failing: set = field(default_factory=set)  # the dispatches of the current streak

    def allow(self, now: float) -> bool:
        """May an attempt go now? In half-open, only the first caller gets the trial."""
        if self.state is State.OPEN and now >= self.retry_at:
            self.state = State.HALF_OPEN
            self.trial_in_flight = False
        if self.state is State.CLOSED:
            return True
        if self.state is State.HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def postpone_until(self, now: float) -> float:
        """When a refused attempt should come due again."""
        if self.state is State.OPEN:
            return self.retry_at
        # Half-open with the trial in flight: look again shortly; a success closes the
        # breaker and brings the postponed dispatches forward anyway.
        return now + min(self.cooldown_seconds, 5.0)

    def record_success(self) -> bool:
        """Returns True if this closed a breaker that was not closed."""
        was_closed = self.state is State.CLOSED
        self.state, self.failures, self.cooldown, self.trial_in_flight = State.CLOSED, 0, 0.0, False
        self.failing.clear()
        return not was_closed

    def record_failure(self, now: float, dispatch: object | None = None) -> bool:
        """A retryable failure (timeout, 5xx, refused connection) of `dispatch` (None: a
        dispatch of its own). Returns True if this opened the breaker."""
        self.trial_in_flight = False
        if self.state is State.HALF_OPEN:
            self.cooldown = min(self.cooldown_cap_seconds, max(self.cooldown, self.cooldown_seconds) * 2)
            self._open(now)
            return True
        if self.state is State.OPEN:
            return False  # an attempt that started before the breaker opened
        if dispatch is not None:
            if dispatch in self.failing:
                return False  # the same dispatch again: it says nothing new about the endpoint
            self.failing.add(dispatch)
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self.cooldown = self.cooldown_seconds
            self._open(now)
            return True
        return False

    def record_other(self) -> None:
        """An answer that says nothing about the endpoint's health (a 4xx): the
        endpoint is up, so a half-open trial ends and the failure streak stops."""
        self.failures = 0
        self.failing.clear()
        self.trial_in_flight = False
        if self.state is State.HALF_OPEN:
            self.state, self.cooldown = State.CLOSED, 0.0

    def _open(self, now: float) -> None:
        self.failing.clear()
        self.state = State.OPEN
        self.retry_at = now + self.cooldown


@dataclass
class Breakers:
    """One breaker per agency, made on first use."""

    failure_threshold: int = 5
    cooldown_seconds: float = 15.0
    cooldown_cap_seconds: float = 300.0
    by_agency: dict[str, CircuitBreaker] = field(default_factory=dict)

    def __getitem__(self, agency: str) -> CircuitBreaker:
        breaker = self.by_agency.get(agency)
        if breaker is None:
            breaker = CircuitBreaker(self.failure_threshold, self.cooldown_seconds, self.cooldown_cap_seconds)
            self.by_agency[agency] = breaker
        return breaker
