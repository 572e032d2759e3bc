"""Applies the assignment rules (assignment.py) to the database: gives out open tasks,
takes them back from whoever may no longer hold them, keeps the holders' status in
step, and opens or closes the "nobody free" episode.

`reconcile` runs inside the transaction of whatever changed the picture (a new or
closed task, a check-in or check-out, a status change) and, from a loop, when only time
changed it (a shift ending: handover). An advisory lock serialises it across requests,
the consumer and replicas, so two tasks never race for one operator's last slot."""

import asyncio
import json
import logging
import math
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import asyncpg

from schemas import topics
from schemas.catalog import TASK_REASONS
from schemas.envelope import encode
from schemas.events import ReportAssigned, ReportTaskClosed, ShiftCoverageAlert, ShiftCoverageRestored
from services.common.outbox import enqueue
from services.shifts import store
from services.shifts.assignment import Move, Operator, Task, may_hold, plan, urgency_of
from services.shifts.metrics import ShiftMetrics
from services.shifts.roster import shift_at

log = logging.getLogger(__name__)
QUEUE_KEY = "queue"


def report_record(event, report_id: UUID, now: datetime):
    """Report-level events go on e112.reports under the report id, in order with the rest of its life."""
    return encode(event, topic=topics.REPORTS, key=str(report_id), source=store.SOURCE, time=now)


class Assigner:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        clock: Callable[[], datetime],
        metrics: ShiftMetrics,
        capacity: int,
        interval: float,
    ):
        self.pool = pool
        self.clock = clock
        self.metrics = metrics
        self.capacity = capacity
        self.interval = interval

    async def reconcile(self, conn: asyncpg.Connection, now: datetime, fresh: frozenset[UUID] = frozenset()) -> None:
        """In the caller's transaction. `fresh`: tasks created in it (their wait starts now)."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('e112-shifts-assign'))")
        shift = shift_at(now, await store.load_templates(conn))
        operator_rows = await conn.fetch(
            """
            SELECT o.id, o.last_assigned_at, p.id AS presence_id, p.shift, coalesce(p.status, 'offline') AS status,
                   p.status_by, p.report_id, p.shift_starts_at, p.shift_ends_at
            FROM operators o LEFT JOIN presence p ON p.operator_id = o.id AND p.checked_out_at IS NULL
            """
        )
        operators = [
            Operator(r["id"], r["status"], r["shift_starts_at"], r["shift_ends_at"], r["last_assigned_at"])
            for r in operator_rows
        ]
        # Not FOR UPDATE: the advisory lock above already serialises every reconcile, and a
        # task closed meanwhile (close() holds its row) is left alone by the guarded
        # updates below. Locking every open task wrote each row on every reconcile, and a
        # queue of hundreds (nobody on duty in a surge) made each new task cost that much.
        # With nobody who may hold a task, the waiting ones stay where they are: only the
        # held ones are read (to take them back), the queue is counted. In a surge with
        # nobody free the queue runs to hundreds, and reading it whole for every new
        # task made shifts fall minutes behind (bench/).
        anyone_on_duty = any(may_hold(op, shift.starts_at) for op in operators)
        waiting_unread = 0
        if anyone_on_duty:
            task_rows = await conn.fetch("SELECT * FROM tasks WHERE state <> 'closed' ORDER BY created_at, seq")
        else:
            task_rows = await conn.fetch("SELECT * FROM tasks WHERE state = 'assigned' ORDER BY created_at, seq")
            waiting_unread = await conn.fetchval("SELECT count(*) FROM tasks WHERE state = 'queued'")
        tasks = [
            Task(
                r["id"], r["created_at"], r["operator_id"], queued=r["id"] not in fresh, urgency=urgency_of(r["reason"])
            )
            for r in task_rows
        ]
        result = plan(tasks, operators, shift_starts_at=shift.starts_at, capacity=self.capacity, now=now)
        records = await self._apply(conn, result.moves, {r["id"]: r for r in task_rows}, now)
        records += await self._sync_statuses(conn, operator_rows, shift.starts_at, now)
        records += await self._queue_episode(conn, shift, len(result.queued) + waiting_unread, now)
        await enqueue(conn, records)
        await self._refresh_gauges(conn)

    async def _apply(self, conn: asyncpg.Connection, moves: list[Move], by_task: dict, now: datetime) -> list:
        """Write the plan's moves (a task given out, taken back, handed over); the
        report.assigned events of the tasks given out."""
        records = []
        for move in moves:
            task = by_task[move.task_id]
            if move.operator_id is None:
                if task["operator_id"] is not None:  # a new task waits where it was put: queued, nobody's
                    await conn.execute(
                        "UPDATE tasks SET state = 'queued', operator_id = NULL WHERE id = $1 AND state <> 'closed'",
                        task["id"],
                    )
                continue
            note = await self._handover_note(conn, move.previous_operator_id) if move.why == "handover" else None
            given = await conn.fetchval(
                "UPDATE tasks SET state = 'assigned', operator_id = $2, assigned_at = $3, handover_note = $4 "
                "WHERE id = $1 AND state <> 'closed' RETURNING true",
                task["id"],
                move.operator_id,
                now,
                note,
            )
            if not given:
                continue  # closed since it was read: nothing to give out
            await conn.execute("UPDATE operators SET last_assigned_at = $2 WHERE id = $1", move.operator_id, now)
            waited = max(0.0, (now - task["created_at"]).total_seconds())
            if move.why in ("new", "from_queue"):
                self.metrics.task_wait.labels(task["reason"]).observe(waited)
            self.metrics.assignments.labels(task["reason"], move.why).inc()
            event = ReportAssigned(
                report_id=task["report_id"],
                task_id=task["id"],
                reason=task["reason"],
                operator_id=move.operator_id,
                why=move.why,
                previous_operator_id=move.previous_operator_id,
                handover_note=note,
                waited_seconds=waited,
                assigned_at=now,
            )
            records.append(report_record(event, task["report_id"], now))
        return records

    async def _handover_note(self, conn: asyncpg.Connection, leaving: UUID | None) -> str | None:
        if leaving is None:
            return None
        return await conn.fetchval(
            "SELECT note FROM handover_notes WHERE operator_id = $1 ORDER BY written_at DESC, id DESC LIMIT 1", leaving
        )

    async def _sync_statuses(self, conn, operator_rows, shift_starts_at: datetime, now: datetime) -> list:
        """An operator holding tasks is handling a report; one whose tasks are all gone is
        available again, if assignment (not the operator) set the status."""
        held = {
            r["operator_id"]: r["report_id"]
            for r in await conn.fetch(
                "SELECT DISTINCT ON (operator_id) operator_id, report_id FROM tasks WHERE state = 'assigned' "
                "ORDER BY operator_id, assigned_at, created_at"
            )
        }
        records = []
        for row in operator_rows:
            if not may_hold(Operator(row["id"], row["status"], row["shift_starts_at"], None), shift_starts_at):
                continue
            if row["status"] == "available" and row["id"] in held:
                target, report_id = "handling_report", held[row["id"]]
            elif row["status"] == "handling_report" and row["status_by"] == "assignment" and row["id"] not in held:
                target, report_id = "available", None
            else:
                continue
            await conn.execute(
                "UPDATE presence SET status = $2, report_id = $3, status_since = $4, status_by = 'assignment' "
                "WHERE id = $1",
                row["presence_id"],
                target,
                report_id,
                now,
            )
            records.append(store.status_changed(row["id"], row["shift"], target, row["status"], report_id, now))
            self.metrics.status_changes.labels(target).inc()
        return records

    async def _queue_episode(self, conn, shift, queued: int, now: datetime) -> list:
        episode = await conn.fetchrow("SELECT * FROM queue_episodes WHERE ended_at IS NULL")
        if queued and episode is None:
            await conn.execute("INSERT INTO queue_episodes (started_at) VALUES ($1)", now)
            self.metrics.coverage_alerts.labels(shift.code, "nobody_free").inc()
            log.warning("reports waiting with no operator free", extra={"fields": {"queued": queued}})
            alert = ShiftCoverageAlert(
                shift=shift.code,
                shift_starts_at=shift.starts_at,
                shift_ends_at=shift.ends_at,
                needed=shift.template.operators_needed,
                checked_in=await store.count_checked_in_for(conn, shift.starts_at),
                reason="nobody_free",
                missing_operator_ids=[],
                queued=queued,
                at=now,
            )
            return [store.record(alert, key=QUEUE_KEY, now=now)]
        if not queued and episode is not None:
            await conn.execute("UPDATE queue_episodes SET ended_at = $2 WHERE id = $1", episode["id"], now)
            restored = ShiftCoverageRestored(
                shift=shift.code,
                shift_starts_at=shift.starts_at,
                needed=shift.template.operators_needed,
                checked_in=await store.count_checked_in_for(conn, shift.starts_at),
                how="queue_drained",
                alert_at=episode["started_at"],
                at=now,
            )
            return [store.record(restored, key=QUEUE_KEY, now=now)]
        return []

    async def _refresh_gauges(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT reason, state, count(*) AS n, min(created_at) AS oldest FROM tasks WHERE state <> 'closed' "
            "GROUP BY 1, 2"
        )
        self.metrics.tasks_queued.set(sum(r["n"] for r in rows if r["state"] == "queued"))
        open_by_reason = dict.fromkeys(TASK_REASONS, 0)
        oldest: dict[str, float] = {}
        for r in rows:
            open_by_reason[r["reason"]] += r["n"]
            oldest[r["reason"]] = min(oldest.get(r["reason"], math.inf), r["oldest"].timestamp())
        for reason, n in open_by_reason.items():
            self.metrics.tasks_open.labels(reason).set(n)
            self.metrics.oldest_open.labels(reason).set(oldest.get(reason, 0))

    async def close(
        self, conn: asyncpg.Connection, task, *, outcome: str, by: UUID | None, note: str | None, now: datetime
    ) -> None:
        """Close one open task (read FOR UPDATE) in the caller's transaction; its holder's
        slot is given out again by the reconcile that follows."""
        await conn.execute(
            "UPDATE tasks SET state = 'closed', closed_at = $2, closed_by = $3, outcome = $4, note = $5 WHERE id = $1",
            task["id"],
            now,
            by,
            outcome,
            note,
        )
        event = ReportTaskClosed(
            report_id=task["report_id"],
            task_id=task["id"],
            reason=task["reason"],
            operator_id=by or task["operator_id"],
            outcome=outcome,
            note=note,
            closed_at=now,
        )
        await enqueue(conn, [report_record(event, task["report_id"], now)])
        self.metrics.tasks_closed.labels(task["reason"], outcome).inc()

    async def tick(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            await self.reconcile(conn, now)

    async def run(self) -> None:
        """Every `interval` seconds: what only time changes (a shift ending hands its tasks over)."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("assignment round failed; will try again")
            await asyncio.sleep(self.interval)


def task_detail(row) -> dict:
    return json.loads(row["detail"]) if isinstance(row["detail"], str) else dict(row["detail"])
