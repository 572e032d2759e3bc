"""Delivery policy as pure functions: how an attempt's result is sorted, and when to
try again.

- 2xx: delivered.
- 408, 429 and 5xx, timeouts and connection errors: the agency may recover; retry
  with exponential backoff and full jitter, up to a bound.
- Any other 4xx, and a URL that cannot work: retrying cannot help; give up at once.
- E-mail: an SMTP reply 4xx (and a lost connection or timeout) is transient, 5xx is
  permanent (RFC 5321 4.2.1).

A channel that gives up (its retry bound reached, or a permanent failure) hands the
dispatch to the agency's next channel; only the last channel's giving up fails it.
Only failures that say the endpoint is unwell (retryable ones) count towards the
agency's circuit breaker.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


def classify_status(status_code: int) -> Verdict:
    if 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code in (408, 429) or status_code >= 500:
        return Verdict.RETRYABLE
    return Verdict.PERMANENT


def classify_smtp_code(code: int) -> Verdict:
    if 200 <= code < 400:
        return Verdict.DELIVERED
    if 400 <= code < 500:
        return Verdict.RETRYABLE
    return Verdict.PERMANENT


def trips_breaker(verdict: Verdict) -> bool:
    return verdict is Verdict.RETRYABLE


def next_channel(order: Sequence[str], tried: Sequence[str]) -> str | None:
    """The agency's first channel not yet tried in this round of delivery."""
    return next((c for c in order if c not in tried), None)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    base_seconds: float = 1.0
    cap_seconds: float = 120.0

    def delay(self, attempts_made: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts_made`-th failure: "equal jitter", uniform
        in [c/2, c] with c = min(cap, base * 2^(n-1)), so that many dispatches failing
        together do not retry in lockstep against an agency that is coming back, yet
        never retry at once."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts_made - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def gives_up(self, attempts_made: int) -> bool:
        return attempts_made >= self.max_attempts
