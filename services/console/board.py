"""The dispatch board: open incidents, each agency's state, when each step happened and
whether the agency is late (unacknowledged past its acknowledgement deadline).

Pure: built from intake's reports (with their timelines) and the notifier's deadlines.
The page applies live steps to these rows and recomputes lateness every second
(static/js/board.js mirrors `is_late`)."""

from datetime import datetime, timedelta
from typing import Any

STEPS = (
    "requested",
    "delivered",
    "failed",
    "acknowledged",
    "on_the_way",
    "on_scene",
    "done",
    "resent",
    "escalated",
    "cancelled",
)
# Until one of these, the agency has not acknowledged (field status acknowledges too).
ACKNOWLEDGED = {"acknowledged", "on_the_way", "on_scene", "done"}
CLOSED = {"done", "cancelled"}


def _parse(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def step_times(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    """dispatch_id -> {step: first time it happened}, from the report's timeline."""
    steps: dict[str, dict[str, str]] = {}
    for entry in report.get("timeline", []):
        event, at, detail = entry["event"], entry["at"], entry.get("detail") or {}
        if event == "routed":
            for item in detail.get("dispatches", []):
                steps.setdefault(str(item["dispatch_id"]), {}).setdefault("requested", at)
            continue
        dispatch_id = detail.get("dispatch_id")
        if dispatch_id is None:
            continue
        step = detail.get("status") if event == "field_status" else event
        if event == "escalated":
            step = "resent" if detail.get("step") == "resent" else "escalated"
        if step in STEPS:
            steps.setdefault(str(dispatch_id), {}).setdefault(step, at)
    return steps


def ack_due_at(steps: dict[str, str], deadline_seconds: int | None) -> datetime | None:
    requested = steps.get("requested")
    if requested is None or deadline_seconds is None:
        return None
    return _parse(requested) + timedelta(seconds=deadline_seconds)


def is_late(state: str, due: datetime | None, now: datetime) -> bool:
    return due is not None and state not in ACKNOWLEDGED and state not in CLOSED and now >= due


def board_row(report: dict[str, Any], deadlines: dict[str, int], now: datetime) -> dict[str, Any]:
    steps = step_times(report)
    agencies = []
    for dispatch in report.get("dispatches", []):
        own = steps.get(str(dispatch["dispatch_id"]), {})
        due = ack_due_at(own, deadlines.get(dispatch["agency"]))
        agencies.append(
            {
                "dispatch_id": str(dispatch["dispatch_id"]),
                "agency": dispatch["agency"],
                "role": dispatch["role"],
                "state": dispatch["state"],
                "escalated": dispatch.get("escalated", False),
                "steps": own,
                "ack_due_at": due.isoformat() if due else None,
                "late": is_late(dispatch["state"], due, now),
            }
        )
    location = report.get("location") or {}
    verification = report.get("verification") or {}
    return {
        "report_id": str(report["id"]),
        "status": report["status"],
        "category": report.get("category"),
        "subtype": report.get("subtype"),
        "kecamatan": location.get("kecamatan"),
        "desa": location.get("desa"),
        "channel": report.get("channel"),
        "received_at": report["received_at"],
        "unverified": verification.get("state") == "pending",
        "linked_reports": len(report.get("linked_reports", [])),
        "agencies": agencies,
        "late": any(a["late"] for a in agencies),
    }


def board(reports: list[dict[str, Any]], deadlines: dict[str, int], now: datetime) -> list[dict[str, Any]]:
    """Newest first, as the pages go: the late ones are counted in the totals and listed
    by the `late` filter, whatever page they are on."""
    rows = [board_row(r, deadlines, now) for r in reports]
    rows.sort(key=lambda r: _parse(r["received_at"]), reverse=True)
    return rows
