"""When an unacknowledged dispatch is re-sent and then escalated: pure rules.

Each dispatch stores `escalation_step` and `escalation_due_at` in PostgreSQL. At the
first deadline (its agency's acknowledgement deadline after the notifier queued it) it
is re-sent; one deadline later, still unacknowledged, it is escalated to the agency's
escalation contacts and the on-duty operators are told (`dispatch.escalated`). After
that no timer is left. An acknowledgement clears the timer in the same transaction
that records it; a timer is taken only with `acknowledged_at IS NULL` and its expected
step in the same UPDATE, so a stale or duplicate timer does nothing (the same idea as
grafana/oncall's escalation lock token).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

STEPS = ("resent", "escalated")


@dataclass(frozen=True)
class Firing:
    step: str  # what happens now: "resent" or "escalated"
    next_due_at: datetime | None  # the next timer, or None when this was the last step


def firing(step_done: int, now: datetime, deadline_seconds: int) -> Firing | None:
    """What a due timer does, given how many steps were already taken."""
    if step_done >= len(STEPS):
        return None
    last = step_done == len(STEPS) - 1
    return Firing(STEPS[step_done], None if last else now + timedelta(seconds=deadline_seconds))


def first_due(queued_at: datetime, deadline_seconds: int) -> datetime:
    return queued_at + timedelta(seconds=deadline_seconds)
