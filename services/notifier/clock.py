"""The notifier's sense of time, passed in rather than read from the system.

Every deadline the notifier stores (the next delivery attempt, an acknowledgement
deadline, a webhook signature's timestamp) is computed from `Clock.now()` and compared
with it, never with PostgreSQL's `now()`. Tests and drills hand the service an
`OffsetClock` and move it forward, so a five-minute acknowledgement deadline passes
without five minutes of waiting; production uses `SystemClock`.
"""

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetClock:
    """Real time plus an offset that only grows: time still flows (retries with
    sub-second backoff still happen on their own) and `advance` jumps ahead."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
