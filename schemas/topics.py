"""Kafka topic names fixed by the contract."""

from schemas.catalog import AGENCIES

REPORTS = "e112.reports"
DISPATCH_STATUS = "e112.dispatch-status"
SHIFTS = "e112.shifts"
DEADLETTER = "e112.deadletter"
DISPATCH_PREFIX = "e112.dispatch."
DISPATCH_TEMPLATE = DISPATCH_PREFIX + "{agency}"  # one topic per agency
# Matches e112.dispatch.<agency> but not e112.dispatch-status.
DISPATCH_PATTERN = r"^e112\.dispatch\.[a-z0-9_]+$"


def dispatch_topic(agency: str) -> str:
    return f"{DISPATCH_PREFIX}{agency}"


def all_topics() -> list[str]:
    return [REPORTS, DISPATCH_STATUS, SHIFTS, DEADLETTER, *(dispatch_topic(a) for a in AGENCIES)]
