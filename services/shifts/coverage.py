"""Coverage as pure functions: which shift a check-in is for, when a shift is short of
operators, and when a shortage episode starts and ends.

A shift is short when fewer operators are checked in *for it* than it needs. Those of
the previous shift who have not checked out yet do not count: they are leaving (and are
reported as such). For the first `grace` minutes of a shift nobody is short yet, since
people are still arriving; after that a shift with nobody, or too few, raises one alert,
and one "restored" when it is staffed again or the shift ends. The alert is not repeated
while the same shortage lasts.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.shifts.roster import ShiftOccurrence, ShiftTemplate, shift_at

CHECK_IN_EARLY = timedelta(minutes=30)
GRACE = timedelta(minutes=10)


def shift_for_check_in(now: datetime, templates: list[ShiftTemplate], early: timedelta = CHECK_IN_EARLY):
    """The shift a check-in at `now` is for: the shift on duty, or the next one when it
    starts within `early` (the pagi operator who arrives at 06:45 is there for pagi)."""
    return shift_at(now + early, templates)


@dataclass(frozen=True)
class Shortage:
    shift: ShiftOccurrence
    present: int
    needed: int

    @property
    def reason(self) -> str:
        # Two values only: they label a metric.
        return "nobody" if self.present == 0 else "short"


def shortage(now: datetime, shift: ShiftOccurrence, present: int, grace: timedelta = GRACE) -> Shortage | None:
    """The shortage of `shift` at `now` given `present` operators checked in for it."""
    needed = shift.template.operators_needed
    if present >= needed or now < shift.starts_at + grace:
        return None
    return Shortage(shift, present, needed)


@dataclass(frozen=True)
class Step:
    close: str | None  # how the open episode ends: "staffed" or "shift_ended"; None: it goes on
    open: bool  # a new episode (an alert) starts


def next_step(open_episode_shift_start: datetime | None, current: ShiftOccurrence, short: Shortage | None) -> Step:
    """What the coverage check does given the open episode (identified by the start of
    its shift, None if there is none), the shift now and its shortage."""
    close = None
    if open_episode_shift_start is not None:
        if open_episode_shift_start != current.starts_at:
            close = "shift_ended"
        elif short is None:
            close = "staffed"
    still_open = open_episode_shift_start is not None and close is None
    return Step(close=close, open=short is not None and not still_open)
