"""A report's status and per-agency dispatch states, derived from its timeline.

Derived rather than stored, so there is one source of truth (the timeline) and no
second field to keep in step with it."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Entry:
    at: datetime
    event: str
    agency: str | None
    dispatch_id: Any
    detail: dict


@dataclass
class Dispatch:
    dispatch_id: Any
    agency: str
    role: str
    state: str
    updated_at: datetime
    escalated: bool = False


# A dispatch only moves forward: a late `failed` (a channel that gave up after the
# agency had already acknowledged through another) does not undo what came after it.
DISPATCH_STATES = ("requested", "failed", "delivered", "acknowledged", "on_the_way", "on_scene", "done")
_DISPATCH_RANK = {state: rank for rank, state in enumerate(DISPATCH_STATES)}
_FIELD_STATES = {"on_the_way", "on_scene", "done"}


# Timeline entries that never change a report's status (summarise reads nothing of
# them): another caller joined or left, a task given or closed, an update's outcome, a
# dispatch held or escalated, the watchdog's note. Writing one needs no status refresh.
STATUS_NEUTRAL_EVENTS = frozenset(
    {
        "caller_added",
        "caller_removed",
        "assigned",
        "task_closed",
        "update_delivered",
        "update_failed",
        "held",
        "escalated",
        "stalled",
    }
)


def summarise(
    kind: str, entries: list[Entry], linked: bool = False, awaiting_verdict: bool = False, closed: bool = False
) -> tuple[str, list[Dispatch]]:
    """The report's status and its dispatches' states.

    Statuses: recorded (not an emergency), linked (another caller for an open
    incident), awaiting_verification (held for an operator's verdict before dispatch),
    received, unrouted, routed, delivered, delivery_failed, acknowledged, responding
    (an agency on the way or on scene), done (every agency done), closed (the
    incident is over, or this caller's incident is; the outcome is on the report).
    A verdict other than genuine on a report dispatched unverified cancels its
    dispatches (the router tells the agencies), except those already done."""
    dispatches: dict[str, Dispatch] = {}
    # Events come from several topics and may be stored out of order: the routing
    # entry that creates the dispatches is read first, whatever its place.
    for entry in entries:
        if entry.event == "routed":
            for item in entry.detail.get("dispatches", []):
                dispatches.setdefault(
                    str(item["dispatch_id"]),
                    Dispatch(item["dispatch_id"], item["agency"], item["role"], "requested", entry.at),
                )
    unrouted = any(entry.event == "unrouted" for entry in entries)
    for entry in entries:
        if entry.dispatch_id is not None and (current := dispatches.get(str(entry.dispatch_id))):
            state = entry.detail.get("status") if entry.event == "field_status" else entry.event
            if entry.event == "escalated":
                current.escalated = True
            elif state in _DISPATCH_RANK and _DISPATCH_RANK[state] >= _DISPATCH_RANK[current.state]:
                current.state = state
                current.updated_at = entry.at
    for entry in entries:
        if entry.event == "verified" and entry.detail.get("verdict") not in (None, "genuine"):
            for current in dispatches.values():
                if current.state != "done":
                    current.state, current.updated_at = "cancelled", entry.at
    listed = sorted(dispatches.values(), key=lambda d: (d.role != "primary", d.agency))
    if kind != "emergency":
        return "recorded", listed
    if closed:
        return "closed", listed
    if linked:
        return "linked", listed
    if awaiting_verdict and not listed:
        return "awaiting_verification", listed
    if not listed:
        return ("unrouted" if unrouted else "received"), listed
    return _report_status([d.state for d in listed]), listed


def _report_status(states: list[str]) -> str:
    lowest = min(_DISPATCH_RANK[s] for s in states)
    if all(s == "done" for s in states):
        return "done"
    if any(s in _FIELD_STATES for s in states):
        return "responding"
    if lowest >= _DISPATCH_RANK["acknowledged"]:
        return "acknowledged"
    if lowest >= _DISPATCH_RANK["delivered"]:
        return "delivered"
    if "requested" not in states and "failed" in states:
        return "delivery_failed"
    return "routed"
