"""Turns the other services' events into entries of each report's timeline.

Consumes `e112.reports` (routed, unrouted, assigned, task closed) and `e112.dispatch-status` (delivered,
failed, held, acknowledged, field status, escalated, and the outcomes of updates to a dispatch). An
update's outcome goes on the timeline of the report it is about: another caller's own
report (`caller_added`), or the dispatch's report (a cancellation notice). Runs inside the consumer's
transaction, next to the inbox row, so each event adds its entry exactly once.

An incident whose every dispatched agency reported `done` closes on its own (resolved)
in the same transaction as the entry that made it done."""

import logging
from collections.abc import Callable, Sequence

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
    Event,
    ReportAssigned,
    ReportRouted,
    ReportTaskClosed,
    ReportUnrouted,
)
from services.common.handlers import HandlerTable
from services.intake import store
from services.intake.store import NewEntry, add_timeline_entries, clear_assignee, set_assignee

log = logging.getLogger(__name__)

TOPICS = [topics.REPORTS, topics.DISPATCH_STATUS]


def entry_for_routed(envelope: Envelope) -> NewEntry:
    data: ReportRouted = envelope.data
    return NewEntry(
        report_id=data.report_id,
        at=data.routed_at,
        event="routed",
        detail={"rule_version": data.rule_version, "dispatches": [d.model_dump(mode="json") for d in data.dispatches]},
    )


def entry_for_unrouted(envelope: Envelope) -> NewEntry:
    data: ReportUnrouted = envelope.data
    return NewEntry(report_id=data.report_id, at=data.at, event="unrouted", detail={"reason": data.reason})


def entry_for_delivered(envelope: Envelope) -> NewEntry:
    data: DispatchDelivered = envelope.data
    return NewEntry(
        report_id=data.report_id,
        at=data.delivered_at,
        event="delivered",
        agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"channel": data.channel, "attempts": data.attempts},
    )


def entry_for_failed(envelope: Envelope) -> NewEntry:
    data: DispatchFailed = envelope.data
    return NewEntry(
        report_id=data.report_id,
        at=data.failed_at,
        event="failed",
        agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"reason": data.reason, "attempts": data.attempts},
    )


def entry_for_held(envelope: Envelope) -> NewEntry:
    data: DispatchHeld = envelope.data
    return NewEntry(
        report_id=data.report_id,
        at=data.held_at,
        event="held",
        agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"reason": data.reason, "attempts": data.attempts, "next_attempt_at": data.next_attempt_at},
    )


def entry_for_update_outcome(envelope: Envelope) -> NewEntry:
    data: DispatchUpdateDelivered | DispatchUpdateFailed = envelope.data
    delivered = isinstance(data, DispatchUpdateDelivered)
    detail = {"update_type": data.update_type, "update_id": str(data.update_id), "attempts": data.attempts}
    detail |= {"channel": data.channel} if delivered else {"reason": data.reason}
    return NewEntry(
        report_id=data.new_report_id or data.report_id,
        at=data.delivered_at if delivered else data.failed_at,
        event="update_delivered" if delivered else "update_failed",
        agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail=detail,
    )


def entry_for_acknowledged(envelope: Envelope) -> NewEntry:
    data: DispatchAcknowledged = envelope.data
    return NewEntry(
        report_id=data.report_id,
        at=data.acknowledged_at,
        event="acknowledged",
        agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"via": data.via} | ({"operator_id": str(data.operator_id)} if data.operator_id else {}),
    )


def entry_for_field_status(envelope: Envelope) -> NewEntry:
    data: DispatchFieldStatus = envelope.data
    return NewEntry(
        report_id=data.report_id,
        at=data.at,
        event="field_status",
        agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"status": data.status, "note": data.note},
    )


def entry_for_escalated(envelope: Envelope) -> NewEntry:
    data: DispatchEscalated = envelope.data
    return NewEntry(
        report_id=data.report_id,
        at=data.escalated_at,
        event="escalated",
        agency=data.agency,
        dispatch_id=data.dispatch_id,
        detail={"step": data.step, "reason": data.reason},
    )


async def on_assigned(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: ReportAssigned = envelope.data
    await set_assignee(conn, data.report_id, data.operator_id)
    previous = data.previous_operator_id and str(data.previous_operator_id)
    await _write(
        conn,
        [envelope],
        [
            NewEntry(
                report_id=data.report_id,
                at=data.assigned_at,
                event="assigned",
                detail={
                    "operator_id": str(data.operator_id),
                    "task_id": str(data.task_id),
                    "reason": data.reason,
                    "why": data.why,
                    "previous_operator_id": previous,
                },
            )
        ],
    )


async def on_task_closed(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data: ReportTaskClosed = envelope.data
    await clear_assignee(conn, data.report_id, data.operator_id)
    await _write(
        conn,
        [envelope],
        [
            NewEntry(
                report_id=data.report_id,
                at=data.closed_at,
                event="task_closed",
                detail={
                    "task_id": str(data.task_id),
                    "reason": data.reason,
                    "outcome": data.outcome,
                    "operator_id": data.operator_id and str(data.operator_id),
                    "note": data.note,
                },
            )
        ],
    )


ENTRY_FOR: dict[type[Event], Callable[[Envelope], NewEntry]] = {
    ReportRouted: entry_for_routed,
    ReportUnrouted: entry_for_unrouted,
    DispatchDelivered: entry_for_delivered,
    DispatchFailed: entry_for_failed,
    DispatchHeld: entry_for_held,
    DispatchUpdateDelivered: entry_for_update_outcome,
    DispatchUpdateFailed: entry_for_update_outcome,
    DispatchAcknowledged: entry_for_acknowledged,
    DispatchFieldStatus: entry_for_field_status,
    DispatchEscalated: entry_for_escalated,
}


async def add_entries(conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
    """The batch function of the table: the entries of consecutive events, written together."""
    await _write(conn, envelopes, [ENTRY_FOR[type(e.data)](e) for e in envelopes])


async def _write(conn: asyncpg.Connection, envelopes: Sequence[Envelope], entries: list[NewEntry]) -> None:
    """The entries written, and a warning for each event about a report intake does not
    hold (another environment's event, a report deleted by hand)."""
    unknown = await add_timeline_entries(conn, entries)
    for envelope, entry in zip(envelopes, entries, strict=True):
        if entry.report_id in unknown:
            log.warning(
                "event for a report intake does not hold; ignored",
                extra={"fields": {"ce_id": envelope.id, "ce_type": envelope.type}},
            )
    done = {e.report_id: e.at for e in entries if e.event == "field_status" and e.detail["status"] == "done"}
    if done:
        for row in await store.finished_incidents(conn, list(done)):
            await store.close_incident(
                conn, row["id"], outcome="resolved", note=None, operator_id=None, at=done[row["id"]]
            )
            log.info("incident closed: every agency done", extra={"fields": {"report_id": str(row["id"])}})


# report.received and report.stalled are written by intake itself: at POST time, and by
# the watchdog (watchdog.py).
TABLE = HandlerTable(
    {ReportAssigned: on_assigned, ReportTaskClosed: on_task_closed},
    batched=dict.fromkeys(ENTRY_FOR, add_entries),
)
