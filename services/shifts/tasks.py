"""Which events make a task for an operator, and which close one (the shifts service's
consumer handler on `e112.reports` and `e112.dispatch-status`).

Opened: a report to verify (`report.received` with verification), an unrouted report, a
stalled one (the intake watchdog), an escalated dispatch, and an agency to phone (its
dispatch `dispatch.held` or `dispatch.failed`). Closed: a verify task by the verdict
(`report.verified`), an escalation by the agency's acknowledgement, a phone task by the
dispatch delivered or acknowledged after all; the others by the operator (tasks_api.py).
An incident's closing (`report.closed`) closes every open task of its report and of its
callers' reports, whatever the reason, as `incident_closed`: nobody verifies, phones or
chases an incident that is over. Its reopening (`report.reopened`) opens none again:
what needs a person then comes as before (the watchdog's stall, an escalation, an agency
not reached). Runs in the consumer's transaction with the inbox row; what waits is
handed out once the transaction's events are done (`settle`), before its commit."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from schemas import topics
from schemas.envelope import Envelope
from schemas.events import (
    DispatchAcknowledged,
    DispatchDelivered,
    DispatchEscalated,
    DispatchFailed,
    DispatchHeld,
    ReportClosed,
    ReportReceived,
    ReportStalled,
    ReportUnrouted,
    ReportVerified,
)
from services.common.handlers import HandlerTable
from services.shifts import store
from services.shifts.assigner import Assigner

TOPICS = [topics.REPORTS, topics.DISPATCH_STATUS]
INCIDENT_CLOSED = "incident_closed"


@dataclass(frozen=True)
class Changed:
    """What a function returns when it changed what there is to hand out: the task it
    opened, if any (its wait starts now)."""

    opened: UUID | None = None


def opened(task_id: UUID | None) -> Changed | None:
    """A task opened; None when the report had one open for this reason already."""
    return Changed(task_id) if task_id is not None else None


def handler_table(assigner: Assigner, clock: Callable[[], datetime]) -> HandlerTable:
    return TaskEvents(assigner, clock).table()


class TaskEvents:
    """Each function opens or closes tasks and says so (`Changed`); once the transaction's
    events are done the assigner hands out what waits, once for all of them.

    Why once: a hand-out takes the assignment lock and reads every operator and open
    task; one per event made shifts the surge's slowest consumer (bench --profile)."""

    def __init__(self, assigner: Assigner, clock: Callable[[], datetime]):
        self.assigner = assigner
        self.clock = clock

    def table(self) -> HandlerTable:
        return HandlerTable(
            {
                ReportReceived: self.on_received,
                ReportUnrouted: self.on_unrouted,
                ReportStalled: self.on_stalled,
                DispatchEscalated: self.on_escalated,
                ReportVerified: self.on_verified,
                DispatchHeld: self.on_not_reaching,
                DispatchFailed: self.on_not_reaching,
                DispatchAcknowledged: self.on_reached,
                ReportClosed: self.on_closed,
            },
            batched={DispatchDelivered: self.on_delivered},
            settle=self.settle,
        )

    async def settle(self, conn: asyncpg.Connection, changes: list[Changed]) -> None:
        if changes:
            fresh = frozenset(c.opened for c in changes if c.opened is not None)
            await self.assigner.reconcile(conn, self.clock(), fresh=fresh)

    async def on_received(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        data: ReportReceived = envelope.data
        if data.kind != "emergency" or data.verification == "not_required":
            return None
        now = self.clock()
        detail = {
            "category": data.category,
            "channel": data.channel,
            "verification": data.verification,
            "kecamatan": data.location.kecamatan if data.location else None,
        }
        return opened(await store.open_task(conn, data.report_id, "verify", detail, now))

    async def on_unrouted(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        data: ReportUnrouted = envelope.data
        now = self.clock()
        detail = {"category": data.category, "why": data.reason}
        return opened(await store.open_task(conn, data.report_id, "unrouted", detail, now))

    async def on_stalled(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        data: ReportStalled = envelope.data
        now = self.clock()
        detail = {"missing": data.missing, "attempt": data.attempt}
        return opened(await store.open_task(conn, data.report_id, "stalled", detail, now))

    async def on_escalated(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        data: DispatchEscalated = envelope.data
        if data.step != "escalated":
            return None
        now = self.clock()
        detail = {"agency": data.agency, "dispatch_id": data.dispatch_id, "why": data.reason}
        return opened(await store.open_task(conn, data.report_id, "escalated", detail, now))

    async def on_not_reaching(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        """Held (not deliverable in time) or failed (given up, or no channel at all): a
        person phones the agency now."""
        data: DispatchHeld | DispatchFailed = envelope.data
        now = self.clock()
        detail = {
            "agency": data.agency,
            "dispatch_id": data.dispatch_id,
            "why": data.reason,
            "attempts": data.attempts,
            "failed": isinstance(data, DispatchFailed),
        }
        return opened(await store.open_task(conn, data.report_id, "phone_agency", detail, now, agency=data.agency))

    async def on_reached(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        """Delivered after all, or the agency acknowledged: no call needed any more, and an
        acknowledgement also ends an escalation's task."""
        data: DispatchDelivered | DispatchAcknowledged = envelope.data
        now = self.clock()
        closed = False
        # Acknowledged by phone: the operator who made the call closes the phone task
        # (reached, with a note) right after; closing it here as superseded raced that
        # close and lost the operator's outcome and note.
        if not (isinstance(data, DispatchAcknowledged) and data.via == "phone"):
            closed = await close_open(
                conn, self.assigner, data.report_id, "phone_agency", "superseded", None, now, agency=data.agency
            )
        if isinstance(data, DispatchAcknowledged):
            closed |= await close_open(
                conn, self.assigner, data.report_id, "escalated", "superseded", None, now, agency=data.agency
            )
        return Changed() if closed else None

    async def on_delivered(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> Changed | None:
        """A batch's deliveries in a row: nearly all have no phone task to close, so one
        look for all of them finds the few that have (one each was a statement per
        dispatch delivered, bench --profile)."""
        calling = await store.reports_with_open_task(conn, [e.data.report_id for e in envelopes], "phone_agency")
        changed = None
        for envelope in envelopes:
            if envelope.data.report_id in calling:
                changed = await self.on_reached(conn, envelope) or changed
        return changed

    async def on_verified(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        data: ReportVerified = envelope.data
        now = self.clock()
        closed = await close_open(conn, self.assigner, data.report_id, "verify", "verified", data.operator_id, now)
        return Changed() if closed else None

    async def on_closed(self, conn: asyncpg.Connection, envelope: Envelope) -> Changed | None:
        data: ReportClosed = envelope.data
        now = self.clock()
        reports = [data.report_id, *data.linked_reports]
        if await close_all_open(conn, self.assigner, reports, INCIDENT_CLOSED, data.operator_id, now):
            return Changed()
        return None


async def close_open(
    conn: asyncpg.Connection,
    assigner: Assigner,
    report_id: UUID,
    reason: str,
    outcome: str,
    by: UUID | None,
    now: datetime,
    agency: str | None = None,
) -> bool:
    """Close the report's open task for this reason (about this agency, if given);
    whether there was one."""
    closed = False
    for task in await store.open_tasks_for_update(conn, report_id, reason):
        if agency is None or json.loads(task["detail"]).get("agency") == agency:
            await assigner.close(conn, task, outcome=outcome, by=by, note=None, now=now)
            closed = True
    return closed


async def close_all_open(
    conn: asyncpg.Connection,
    assigner: Assigner,
    report_ids: list[UUID],
    outcome: str,
    by: UUID | None,
    now: datetime,
) -> int:
    """Close every open task of these reports, whatever its reason; how many."""
    tasks = await store.all_open_tasks_for_update(conn, report_ids)
    for task in tasks:
        await assigner.close(conn, task, outcome=outcome, by=by, note=None, now=now)
    return len(tasks)
