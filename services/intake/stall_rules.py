"""The watchdog's decisions, pure: is an accepted report stalled, what is missing, and is
another re-drive due. The loop and its SQL are in watchdog.py.

A report is stalled when, a bound after it became dispatchable, its timeline lacks the
router's decision (`routed` or `unrouted`: missing ["routing"]) or some dispatch of the
`routed` entry has heard nothing from the notifier (no delivered, held, acknowledged,
failed, escalated or field status: missing those agencies). A held dispatch is the
notifier's, retrying, and an operator's, phoning: re-driving it would only add copies.

Another caller's report (linked to an incident) is stalled when, a bound after both it
arrived and its incident was routed, some agency of the incident's dispatches has no
update outcome for it (`update_delivered` or `update_failed` on its timeline: the
notifier delivered its `dispatch.caller_added`, or gave up and said so): missing those
agencies. Until its incident is routed it waits with it (the incident is watched on its
own). If the router routed it on its own instead (its incident never decided), its own
dispatches are watched like any report's.

Not watched: contacts that are not emergencies, reports held for an operator's verdict,
unrouted ones (the operators have them) and dispatches an operator's verdict cancelled.
A failed delivery is not stalled either: the notifier gave up and said so.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.intake.status import Entry

ROUTING = "routing"
# Entries saying the notifier has the dispatch (delivered, held while it retries, gave
# up, escalated, or the agency answered): it is no longer lost.
HEARD_OF = frozenset({"delivered", "held", "acknowledged", "failed", "escalated", "field_status"})
# Entries on another caller's report saying the notifier has its update for an agency.
UPDATE_HEARD_OF = frozenset({"update_delivered", "update_failed"})
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


def _cancelled(entries: list[Entry]) -> bool:
    """A verdict other than genuine cancelled the dispatches (status.py does the same)."""
    return any(e.event == "verified" and e.detail.get("verdict") not in (None, "genuine") for e in entries)


def _dispatches(entries: list[Entry]) -> dict[str, tuple[str, str]]:
    """The routed entry's dispatches: dispatch id -> (agency, role)."""
    dispatches: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.event == "routed":
            for item in entry.detail.get("dispatches", []):
                dispatches.setdefault(str(item["dispatch_id"]), (item["agency"], item["role"]))
    return dispatches


def _routed_at(entries: list[Entry]) -> datetime | None:
    return min((e.at for e in entries if e.event == "routed"), default=None)


def missing(entries: list[Entry]) -> list[str]:
    """What has not happened yet: ["routing"], the agencies (primary first) whose
    dispatch nobody heard of, or [] when nothing is missing."""
    if _cancelled(entries):
        return []
    dispatches = _dispatches(entries)
    if not dispatches:
        # Unrouted: no agency to reach, the on-duty operators have it. (A dead-lettered
        # report is unrouted first and routed once re-driven: then its dispatches count.)
        return [] if any(e.event == "unrouted" for e in entries) else [ROUTING]
    heard = {str(e.dispatch_id) for e in entries if e.dispatch_id is not None and e.event in HEARD_OF}
    lost = [(role != "primary", agency) for d_id, (agency, role) in dispatches.items() if d_id not in heard]
    return [agency for _, agency in sorted(lost)]


def routed_on_its_own(entries: list[Entry]) -> bool:
    return any(e.event in ("routed", "unrouted") for e in entries)


def missing_updates(entries: list[Entry], incident: list[Entry]) -> list[str]:
    """Another caller's report: the incident's agencies (primary first) with no update
    outcome for it; [] while the incident is not routed or its dispatches are cancelled."""
    if _cancelled(incident):
        return []
    heard = {e.agency for e in entries if e.event in UPDATE_HEARD_OF}
    lost = {(role != "primary", agency) for agency, role in _dispatches(incident).values() if agency not in heard}
    return [agency for _, agency in sorted(lost)]


def linked_since(report: Watched, entries: list[Entry], incident: list[Entry]) -> datetime | None:
    """When another caller's updates were due to start: it arrived and its incident was
    routed (None: the incident is not routed yet)."""
    routed_at = _routed_at(incident)
    return None if routed_at is None else max(dispatchable_since(report, entries), routed_at)


def stalled(
    report: Watched, entries: list[Entry], now: datetime, bound: timedelta, incident: list[Entry] | None = None
) -> list[str]:
    """What is missing of a report that should have been dispatched by now (or, for
    another caller, announced to its incident's agencies); [] when it is not stalled
    (or not watched at all). `incident`: the timeline of the report it is linked to."""
    if report.kind != "emergency" or report.awaiting_verdict:
        return []
    if report.linked and not routed_on_its_own(entries):
        since = linked_since(report, entries, incident or [])
        if since is None or now - since < bound:
            return []
        return missing_updates(entries, incident or [])
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
