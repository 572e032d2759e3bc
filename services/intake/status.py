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


# Later events win over earlier ones, but never move a dispatch backwards: a late
# `failed` (a retry that gave up after an earlier success elsewhere) does not undo
# `delivered`.
_DISPATCH_RANK = {"requested": 0, "failed": 1, "delivered": 2}


def summarise(kind: str, entries: list[Entry]) -> tuple[str, list[Dispatch]]:
    dispatches: dict[str, Dispatch] = {}
    unrouted = False
    for entry in entries:
        if entry.event == "routed":
            for item in entry.detail.get("dispatches", []):
                dispatches.setdefault(
                    str(item["dispatch_id"]),
                    Dispatch(item["dispatch_id"], item["agency"], item["role"], "requested", entry.at),
                )
        elif entry.event == "unrouted":
            unrouted = True
        elif entry.event in ("delivered", "failed") and entry.dispatch_id is not None:
            current = dispatches.get(str(entry.dispatch_id))
            if current and _DISPATCH_RANK[entry.event] >= _DISPATCH_RANK[current.state]:
                current.state = entry.event
                current.updated_at = entry.at
    listed = sorted(dispatches.values(), key=lambda d: (d.role != "primary", d.agency))
    if kind != "emergency":
        return "recorded", listed
    if not listed:
        return ("unrouted" if unrouted else "received"), listed
    states = {d.state for d in listed}
    if states == {"delivered"}:
        return "delivered", listed
    if "failed" in states and "requested" not in states:
        return "delivery_failed", listed
    return "routed", listed
