"""Turns the other services' events into entries of each report's timeline.

Consumes `e112.reports` (routed, unrouted, assigned, task closed) and `e112.dispatch-status` (delivered,
failed, acknowledged, field status, escalated, and the outcomes of updates to a dispatch). An
update's outcome goes on the timeline of the report it is about: another caller's own
report (`caller_added`), or the dispatch's report (a cancellation notice). Runs inside the consumer's
transaction, next to the inbox row, so each event adds its entry exactly once."""

import logging

import asyncpg

from schemas import topics
from schemas.envelope import Envelope
from schemas.events import (
    DispatchAcknowledged,
    DispatchDelivered,
    DispatchEscalated,
    DispatchFailed,
    DispatchFieldStatus,
    DispatchUpdateDelivered,
    DispatchUpdateFailed,
    ReportAssigned,
    ReportReceived,
    ReportRouted,
    ReportStalled,
    ReportTaskClosed,
    ReportUnrouted,
)
from services.intake.store import add_timeline_entry

log = logging.getLogger(__name__)

TOPICS = [topics.REPORTS, topics.DISPATCH_STATUS]
# The types record() acts on; the consumer skips the rest unread (keep in step with the match).
HANDLES = frozenset(
    model.ce_type
    for model in (
        ReportRouted, ReportUnrouted, DispatchDelivered, DispatchFailed, DispatchUpdateDelivered, DispatchUpdateFailed,
        DispatchAcknowledged, DispatchFieldStatus, DispatchEscalated, ReportAssigned, ReportTaskClosed,
    )
)  # fmt: skip


async def record(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data = envelope.data
    match data:
        case ReportReceived() | ReportStalled():
            return  # written by intake itself: at POST time, and by the watchdog (watchdog.py)
        case ReportRouted():
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.routed_at, event="routed",
                detail={"rule_version": data.rule_version,
                        "dispatches": [d.model_dump(mode="json") for d in data.dispatches]},
            )  # fmt: skip
        case ReportUnrouted():
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.at, event="unrouted", detail={"reason": data.reason}
            )
        case DispatchDelivered():
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.delivered_at, event="delivered", agency=data.agency,
                dispatch_id=data.dispatch_id, detail={"channel": data.channel, "attempts": data.attempts},
            )  # fmt: skip
        case DispatchFailed():
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.failed_at, event="failed", agency=data.agency,
                dispatch_id=data.dispatch_id, detail={"reason": data.reason, "attempts": data.attempts},
            )  # fmt: skip
        case DispatchUpdateDelivered() | DispatchUpdateFailed():
            delivered = isinstance(data, DispatchUpdateDelivered)
            detail = {"update_type": data.update_type, "update_id": str(data.update_id), "attempts": data.attempts}
            detail |= {"channel": data.channel} if delivered else {"reason": data.reason}
            known = await add_timeline_entry(
                conn, report_id=data.new_report_id or data.report_id,
                at=data.delivered_at if delivered else data.failed_at,
                event="update_delivered" if delivered else "update_failed", agency=data.agency,
                dispatch_id=data.dispatch_id, detail=detail,
            )  # fmt: skip
        case DispatchAcknowledged():
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.acknowledged_at, event="acknowledged", agency=data.agency,
                dispatch_id=data.dispatch_id, detail={"via": data.via},
            )  # fmt: skip
        case DispatchFieldStatus():
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.at, event="field_status", agency=data.agency,
                dispatch_id=data.dispatch_id, detail={"status": data.status, "note": data.note},
            )  # fmt: skip
        case DispatchEscalated():
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.escalated_at, event="escalated", agency=data.agency,
                dispatch_id=data.dispatch_id, detail={"step": data.step, "reason": data.reason},
            )  # fmt: skip
        case ReportAssigned():
            await conn.execute("UPDATE reports SET assigned_to = $2 WHERE id = $1", data.report_id, data.operator_id)
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.assigned_at, event="assigned",
                detail={"operator_id": str(data.operator_id), "task_id": str(data.task_id), "reason": data.reason,
                        "why": data.why, "previous_operator_id": data.previous_operator_id and
                        str(data.previous_operator_id)},
            )  # fmt: skip
        case ReportTaskClosed():
            # Only the operator who has it lets go: a late close of an older task must not
            # clear a newer assignment.
            await conn.execute(
                "UPDATE reports SET assigned_to = NULL WHERE id = $1 AND assigned_to = $2", data.report_id,
                data.operator_id,
            )  # fmt: skip
            known = await add_timeline_entry(
                conn, report_id=data.report_id, at=data.closed_at, event="task_closed",
                detail={"task_id": str(data.task_id), "reason": data.reason, "outcome": data.outcome,
                        "operator_id": data.operator_id and str(data.operator_id), "note": data.note},
            )  # fmt: skip
        case _:
            return
    if not known:
        log.warning(
            "event for a report intake does not hold; ignored",
            extra={"fields": {"ce_id": envelope.id, "ce_type": envelope.type}},
        )
