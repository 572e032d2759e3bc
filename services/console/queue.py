"""The operator's queue: what is assigned to them (shifts' tasks) and what waits for a
verdict (intake's pending reports), one list, what needs them first. Pure."""

from datetime import UTC, datetime
from typing import Any

from schemas.catalog import TASK_URGENCY
from services.console.board import _parse

REASON_ORDER = TASK_URGENCY


def queue_items(
    tasks: list[dict[str, Any]], pending: list[dict[str, Any]], summaries: dict[str, dict[str, Any]], me: str
) -> list[dict[str, Any]]:
    """`tasks`: shifts' open tasks assigned to me; `pending`: intake's summaries of reports
    awaiting a verdict; `summaries`: report_id -> intake summary for the tasks' reports.
    Mine first, the most urgent first (schemas.catalog.TASK_URGENCY), then the rest
    oldest first."""
    # One item per task (a report may need me twice: an escalation and a stall), and one
    # per pending report that no task of mine covers.
    items: dict[str, dict[str, Any]] = {}
    for task in tasks:
        report_id = str(task["report_id"])
        summary = summaries.get(report_id) or pending_summary(pending, report_id) or task.get("detail") or {}
        key = f"task:{task['task_id']}" if task.get("task_id") else f"report:{report_id}"
        items[key] = _item(summary, report_id, mine=True, task=task) | {"key": key}
    covered = {item["report_id"] for item in items.values()}
    for summary in pending:
        report_id = str(summary["id"])
        if report_id not in covered:
            assigned = summary.get("assigned_to")
            item = _item(summary, report_id, mine=assigned is not None and str(assigned) == me, task=None)
            items[f"report:{report_id}"] = item | {"key": f"report:{report_id}"}
    return sorted(items.values(), key=lambda i: (not i["mine"], REASON_ORDER.get(i["reason"], 9), _when(i)))


def _when(item: dict[str, Any]) -> datetime:
    at = item["received_at"] or (item["task"] or {}).get("created_at")
    return _parse(at) if at else datetime.max.replace(tzinfo=UTC)


def pending_summary(pending: list[dict[str, Any]], report_id: str) -> dict[str, Any] | None:
    return next((s for s in pending if str(s["id"]) == report_id), None)


def _item(summary: dict[str, Any], report_id: str, *, mine: bool, task: dict[str, Any] | None) -> dict[str, Any]:
    pending_verdict = summary.get("verification") not in (None, "not_required") and summary.get("verdict") is None
    return {
        "report_id": report_id,
        "mine": mine,
        "task": task,
        "reason": task["reason"] if task else "verify",
        "category": summary.get("category"),
        "subtype": summary.get("subtype"),
        "kecamatan": summary.get("kecamatan"),
        "desa": summary.get("desa"),
        "channel": summary.get("channel"),
        "status": summary.get("status"),
        "kind": summary.get("kind"),
        "received_at": summary.get("received_at"),
        "verification": summary.get("verification"),
        "needs_verdict": pending_verdict,
        "assigned_to": str(summary["assigned_to"]) if summary.get("assigned_to") else None,
    }
