"""A token bucket per API client, as a pure object with the clock passed in.

Written here rather than taken from a library because it is a dozen lines and intake
needs the exact wait for `Retry-After`. Buckets live in each intake process: with N
replicas an app may get up to N times its rate. The limit guards against a runaway
app, not a billing quota, so that is the right trade for no shared state on the hot
path.
"""

import math
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate_per_second: float
    capacity: float
    tokens: float
    updated: float

    @classmethod
    def per_minute(cls, limit: int, now: float) -> "TokenBucket":
        # A burst of up to ten seconds' worth (at least 5 requests), refilled evenly.
        capacity = max(5.0, limit / 6)
        return cls(limit / 60.0, capacity, capacity, now)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if allowed, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_second


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
