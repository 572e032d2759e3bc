"""Turns the other services' events into entries of each report's timeline.

Consumes `e112.reports` (routed, unrouted, assigned, task closed) and `e112.dispatch-status` (delivered,
failed, held, acknowledged, field status, escalated, and the outcomes of updates to a dispatch). An
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
    DispatchHeld,
    DispatchUpdateDelivered,
    DispatchUpdateFailed,
    ReportAssigned,
    ReportRouted,
    ReportTaskClosed,
    ReportUnrouted,
)
from services.common.handlers import HandlerTable
from services.intake.store import add_timeline_entry, clear_assignee, set_assignee

log = logging.getLogger(__name__)

TOPICS = [topics.REPORTS, topics.DISPATCH_STATUS]


async def on_routed(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: ReportRouted = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.routed_at, event="routed",
        detail={"rule_version": data.rule_version, "dispatches": [d.model_dump(mode="json") for d in data.dispatches]},
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_unrouted(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: ReportUnrouted = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.at, event="unrouted", detail={"reason": data.reason}
    )
    _warn_unless(known, envelope)


async def on_delivered(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: DispatchDelivered = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.delivered_at, event="delivered", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"channel": data.channel, "attempts": data.attempts},
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_failed(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: DispatchFailed = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.failed_at, event="failed", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"reason": data.reason, "attempts": data.attempts},
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_held(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: DispatchHeld = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.held_at, event="held", agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"reason": data.reason, "attempts": data.attempts, "next_attempt_at": data.next_attempt_at},
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_update_outcome(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: DispatchUpdateDelivered | DispatchUpdateFailed = envelope.data
    delivered = isinstance(data, DispatchUpdateDelivered)
    detail = {"update_type": data.update_type, "update_id": str(data.update_id), "attempts": data.attempts}
    detail |= {"channel": data.channel} if delivered else {"reason": data.reason}
    known = await add_timeline_entry(
        conn, report_id=data.new_report_id or data.report_id, at=data.delivered_at if delivered else data.failed_at,
        event="update_delivered" if delivered else "update_failed", agency=data.agency,
        dispatch_id=data.dispatch_id, detail=detail,
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_acknowledged(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: DispatchAcknowledged = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.acknowledged_at, event="acknowledged", agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"via": data.via} | ({"operator_id": str(data.operator_id)} if data.operator_id else {}),
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_field_status(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: DispatchFieldStatus = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.at, event="field_status", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"status": data.status, "note": data.note},
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_escalated(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: DispatchEscalated = envelope.data
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.escalated_at, event="escalated", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"step": data.step, "reason": data.reason},
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_assigned(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: ReportAssigned = envelope.data
    await set_assignee(conn, data.report_id, data.operator_id)
    previous = data.previous_operator_id and str(data.previous_operator_id)
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.assigned_at, event="assigned",
        detail={"operator_id": str(data.operator_id), "task_id": str(data.task_id), "reason": data.reason,
                "why": data.why, "previous_operator_id": previous},
    )  # fmt: skip
    _warn_unless(known, envelope)


async def on_task_closed(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: ReportTaskClosed = envelope.data
    await clear_assignee(conn, data.report_id, data.operator_id)
    known = await add_timeline_entry(
        conn, report_id=data.report_id, at=data.closed_at, event="task_closed",
        detail={"task_id": str(data.task_id), "reason": data.reason, "outcome": data.outcome,
                "operator_id": data.operator_id and str(data.operator_id), "note": data.note},
    )  # fmt: skip
    _warn_unless(known, envelope)


def _warn_unless(known: bool, envelope: Envelope) -> None:
    if not known:
        log.warning(
            "event for a report intake does not hold; ignored",
            extra={"fields": {"ce_id": envelope.id, "ce_type": envelope.type}},
        )


# report.received and report.stalled are written by intake itself: at POST time, and by
# the watchdog (watchdog.py).
TABLE = HandlerTable(
    {
        ReportRouted: on_routed,
        ReportUnrouted: on_unrouted,
        DispatchDelivered: on_delivered,
        DispatchFailed: on_failed,
        DispatchHeld: on_held,
        DispatchUpdateDelivered: on_update_outcome,
        DispatchUpdateFailed: on_update_outcome,
        DispatchAcknowledged: on_acknowledged,
        DispatchFieldStatus: on_field_status,
        DispatchEscalated: on_escalated,
        ReportAssigned: on_assigned,
        ReportTaskClosed: on_task_closed,
    }
)
