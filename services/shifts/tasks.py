"""Which events make a task for an operator, and which close one (the shifts service's
consumer handler on `e112.reports` and `e112.dispatch-status`).

Opened: a report to verify (`report.received` with verification), an unrouted report, a
stalled one (the intake watchdog), an escalated dispatch. Closed: a verify task by the
verdict (`report.verified`), an escalation by the agency's acknowledgement; the others
by the operator (tasks_api.py). Runs in the consumer's transaction with the inbox row,
and assigns at once."""

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import asyncpg

from schemas import topics
from schemas.envelope import Envelope
from schemas.events import (
    DispatchAcknowledged,
    DispatchEscalated,
    ReportReceived,
    ReportStalled,
    ReportUnrouted,
    ReportVerified,
)
from services.common.consumer import Handler
from services.shifts.assigner import Assigner

TOPICS = [topics.REPORTS, topics.DISPATCH_STATUS]
# The types the handler acts on; the consumer skips the rest unread (keep in step with the match).
HANDLES = frozenset(
    m.ce_type for m in (ReportReceived, ReportUnrouted, ReportStalled, DispatchEscalated, ReportVerified,
                        DispatchAcknowledged)
)  # fmt: skip


async def open_task(conn: asyncpg.Connection, report_id: UUID, reason: str, detail: dict, now: datetime) -> UUID | None:
    """A new task, or None when the report has an open one for this reason already."""
    return await conn.fetchval(
        """
        INSERT INTO tasks (id, report_id, reason, detail, state, created_at)
        VALUES ($1, $2, $3, $4::jsonb, 'queued', $5)
        ON CONFLICT (report_id, reason) WHERE state <> 'closed' DO NOTHING RETURNING id
        """,
        uuid.uuid4(), report_id, reason, json.dumps(detail, default=str), now,
    )  # fmt: skip


def make_handler(assigner: Assigner, clock: Callable[[], datetime]) -> Handler:
    async def handle(conn: asyncpg.Connection, envelope: Envelope) -> None:
        data, now = envelope.data, clock()
        opened = None
        match data:
            case ReportReceived() if data.kind == "emergency" and data.verification != "not_required":
                detail = {"category": data.category, "channel": data.channel, "verification": data.verification,
                          "kecamatan": data.location.kecamatan if data.location else None}  # fmt: skip
                opened = await open_task(conn, data.report_id, "verify", detail, now)
            case ReportUnrouted():
                opened = await open_task(conn, data.report_id, "unrouted", {"category": data.category,
                                                                             "why": data.reason}, now)  # fmt: skip
            case ReportStalled():
                detail = {"missing": data.missing, "attempt": data.attempt}
                opened = await open_task(conn, data.report_id, "stalled", detail, now)
            case DispatchEscalated() if data.step == "escalated":
                detail = {"agency": data.agency, "dispatch_id": data.dispatch_id, "why": data.reason}
                opened = await open_task(conn, data.report_id, "escalated", detail, now)
            case ReportVerified():
                await close_open(conn, assigner, data.report_id, "verify", "verified", data.operator_id, now)
            case DispatchAcknowledged():
                # The agency answered after all: the escalation task is over.
                await close_open(conn, assigner, data.report_id, "escalated", "superseded", None, now,
                                 agency=data.agency)  # fmt: skip
            case _:
                return
        await assigner.reconcile(conn, now, fresh=frozenset([opened]) if opened else frozenset())

    return handle


async def close_open(
    conn: asyncpg.Connection, assigner: Assigner, report_id: UUID, reason: str, outcome: str, by: UUID | None,
    now: datetime, agency: str | None = None,
) -> None:  # fmt: skip
    task = await conn.fetchrow(
        "SELECT * FROM tasks WHERE report_id = $1 AND reason = $2 AND state <> 'closed' FOR UPDATE", report_id, reason
    )
    if task is None or (agency is not None and json.loads(task["detail"]).get("agency") != agency):
        return
    await assigner.close(conn, task, outcome=outcome, by=by, note=None, now=now)
