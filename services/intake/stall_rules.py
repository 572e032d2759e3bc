"""The watchdog's decisions, pure: is an accepted report stalled, what is missing, and is
another re-drive due. The loop and its SQL are in watchdog.py.

A report is stalled when, a bound after it became dispatchable, its timeline lacks the
router's decision (`routed` or `unrouted`: missing ["routing"]) or some dispatch of the
`routed` entry has heard nothing from the notifier (no delivered, acknowledged, failed,
escalated or field status: missing those agencies). Not watched: contacts that are not
emergencies, reports linked into another incident, reports held for an operator's
verdict, unrouted ones (the operators have them) and dispatches an operator's verdict
cancelled. A failed delivery is not stalled either: the notifier gave up and said so.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.intake.status import Entry

ROUTING = "routing"
# Entries saying the notifier has the dispatch (delivered, gave up, escalated, or the
# agency answered): it is no longer lost.
HEARD_OF = frozenset({"delivered", "acknowledged", "failed", "escalated", "field_status"})
# Entries after which the router is asked again to dispatch: the bound restarts there.
RESTARTS_CLOCK = frozenset({"verified", "unlinked"})
# A re-drive waits bound × 2^(attempt-1) after the last one, at most this many bounds.
MAX_BACKOFF_BOUNDS = 16


@dataclass(frozen=True)
class Watched:
    """What the rules read of a report row."""

    kind: str
    linked: bool
    awaiting_verdict: bool
    received_at: datetime


@dataclass(frozen=True)
class Attempts:
    count: int
    last_at: datetime


def dispatchable_since(report: Watched, entries: list[Entry]) -> datetime:
    """When the report was last handed to the router for dispatch: received, or later
    released by a verdict or an unlink."""
    restarts = [e.at for e in entries if e.event in RESTARTS_CLOCK]
    return max([report.received_at, *restarts])


def missing(entries: list[Entry]) -> list[str]:
    """What has not happened yet: ["routing"], the agencies (primary first) whose
    dispatch nobody heard of, or [] when nothing is missing."""
    if any(e.event == "verified" and e.detail.get("verdict") not in (None, "genuine") for e in entries):
        return []  # dispatches cancelled by the verdict (status.py does the same)
    dispatches: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.event == "routed":
            for item in entry.detail.get("dispatches", []):
                dispatches.setdefault(str(item["dispatch_id"]), (item["agency"], item["role"]))
    if not dispatches:
        # Unrouted: no agency to reach, the on-duty operators have it. (A dead-lettered
        # report is unrouted first and routed once re-driven: then its dispatches count.)
        return [] if any(e.event == "unrouted" for e in entries) else [ROUTING]
    heard = {str(e.dispatch_id) for e in entries if e.dispatch_id is not None and e.event in HEARD_OF}
    lost = [(role != "primary", agency) for d_id, (agency, role) in dispatches.items() if d_id not in heard]
    return [agency for _, agency in sorted(lost)]


def stalled(report: Watched, entries: list[Entry], now: datetime, bound: timedelta) -> list[str]:
    """What is missing of a report that should have been dispatched by now; [] when it
    is not stalled (or not watched at all)."""
    if report.kind != "emergency" or report.linked or report.awaiting_verdict:
        return []
    if now - dispatchable_since(report, entries) < bound:
        return []
    return missing(entries)


def next_redrive_at(attempts: Attempts | None, since: datetime, bound: timedelta) -> datetime:
    """When the watchdog may re-drive again: a bound after the report became
    dispatchable the first time, then with doubling backoff from the last attempt."""
    first = since + bound
    if attempts is None:
        return first
    return max(first, attempts.last_at + bound * min(2 ** (attempts.count - 1), MAX_BACKOFF_BOUNDS))


def kind_of(missing_now: list[str]) -> str:
    """The metric label: routing or delivery (never a report id or anything personal)."""
    return ROUTING if missing_now == [ROUTING] else "delivery"
