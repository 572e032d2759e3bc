"""Turns the other services' events into entries of each report's timeline.

Consumes `e112.reports` (routed, unrouted, assigned, task closed) and `e112.dispatch-status` (delivered,
failed, held, acknowledged, field status, escalated, and the outcomes of updates to a dispatch). An
update's outcome goes on the timeline of the report it is about: another caller's own
report (`caller_added`), or the dispatch's report (a cancellation notice). Runs inside the consumer's
transaction, next to the inbox row, so each event adds its entry exactly once."""

import logging
from collections.abc import Awaitable, Callable

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
from services.common.handlers import EventFunction, HandlerTable
from services.intake.store import add_timeline_entry, clear_assignee, set_assignee

log = logging.getLogger(__name__)

TOPICS = [topics.REPORTS, topics.DISPATCH_STATUS]


async def on_routed(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: ReportRouted = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.routed_at, event="routed",
        detail={"rule_version": data.rule_version, "dispatches": [d.model_dump(mode="json") for d in data.dispatches]},
    )  # fmt: skip


async def on_unrouted(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: ReportUnrouted = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.at, event="unrouted", detail={"reason": data.reason}
    )


async def on_delivered(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: DispatchDelivered = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.delivered_at, event="delivered", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"channel": data.channel, "attempts": data.attempts},
    )  # fmt: skip


async def on_failed(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: DispatchFailed = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.failed_at, event="failed", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"reason": data.reason, "attempts": data.attempts},
    )  # fmt: skip


async def on_held(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: DispatchHeld = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.held_at, event="held", agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"reason": data.reason, "attempts": data.attempts, "next_attempt_at": data.next_attempt_at},
    )  # fmt: skip


async def on_update_outcome(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: DispatchUpdateDelivered | DispatchUpdateFailed = envelope.data
    delivered = isinstance(data, DispatchUpdateDelivered)
    detail = {"update_type": data.update_type, "update_id": str(data.update_id), "attempts": data.attempts}
    detail |= {"channel": data.channel} if delivered else {"reason": data.reason}
    return await add_timeline_entry(
        conn, report_id=data.new_report_id or data.report_id, at=data.delivered_at if delivered else data.failed_at,
        event="update_delivered" if delivered else "update_failed", agency=data.agency,
        dispatch_id=data.dispatch_id, detail=detail,
    )  # fmt: skip


async def on_acknowledged(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: DispatchAcknowledged = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.acknowledged_at, event="acknowledged", agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"via": data.via} | ({"operator_id": str(data.operator_id)} if data.operator_id else {}),
    )  # fmt: skip


async def on_field_status(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: DispatchFieldStatus = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.at, event="field_status", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"status": data.status, "note": data.note},
    )  # fmt: skip


async def on_escalated(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: DispatchEscalated = envelope.data
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.escalated_at, event="escalated", agency=data.agency,
        dispatch_id=data.dispatch_id, detail={"step": data.step, "reason": data.reason},
    )  # fmt: skip


async def on_assigned(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: ReportAssigned = envelope.data
    await set_assignee(conn, data.report_id, data.operator_id)
    previous = data.previous_operator_id and str(data.previous_operator_id)
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.assigned_at, event="assigned",
        detail={"operator_id": str(data.operator_id), "task_id": str(data.task_id), "reason": data.reason,
                "why": data.why, "previous_operator_id": previous},
    )  # fmt: skip


async def on_task_closed(conn: asyncpg.Connection, envelope: Envelope) -> bool:
    data: ReportTaskClosed = envelope.data
    await clear_assignee(conn, data.report_id, data.operator_id)
    return await add_timeline_entry(
        conn, report_id=data.report_id, at=data.closed_at, event="task_closed",
        detail={"task_id": str(data.task_id), "reason": data.reason, "outcome": data.outcome,
                "operator_id": data.operator_id and str(data.operator_id), "note": data.note},
    )  # fmt: skip


def _entry(write: Callable[[asyncpg.Connection, Envelope], Awaitable[bool]]) -> EventFunction:
    """The table's function: the entry written, or a warning for a report intake does not
    hold (another environment's event, a report deleted by hand)."""

    async def record(conn: asyncpg.Connection, envelope: Envelope) -> None:
        if not await write(conn, envelope):
            log.warning(
                "event for a report intake does not hold; ignored",
                extra={"fields": {"ce_id": envelope.id, "ce_type": envelope.type}},
            )

    return record


# report.received and report.stalled are written by intake itself: at POST time, and by
# the watchdog (watchdog.py).
TABLE = HandlerTable(
    {
        ReportRouted: _entry(on_routed),
        ReportUnrouted: _entry(on_unrouted),
        DispatchDelivered: _entry(on_delivered),
        DispatchFailed: _entry(on_failed),
        DispatchHeld: _entry(on_held),
        DispatchUpdateDelivered: _entry(on_update_outcome),
        DispatchUpdateFailed: _entry(on_update_outcome),
        DispatchAcknowledged: _entry(on_acknowledged),
        DispatchFieldStatus: _entry(on_field_status),
        DispatchEscalated: _entry(on_escalated),
        ReportAssigned: _entry(on_assigned),
        ReportTaskClosed: _entry(on_task_closed),
    }
)
