"""Operators' tasks: the queue, who holds what, and closing a task."""

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.catalog import TaskReason
from services.common.web import PROBLEM_RESPONSES, Connection, Problem
from services.shifts import store
from services.shifts.assignment import urgency_of
from services.shifts.dependencies import Assignments, Clock

TaskState = Literal["queued", "assigned", "closed"]


class TaskPublic(BaseModel):
    id: UUID
    report_id: UUID
    reason: TaskReason = Field(description="verify, unrouted, escalated, stalled or phone_agency")
    detail: dict[str, Any] = Field(description="category, channel, kecamatan, agency, ... (never the caller)")
    state: TaskState
    operator_id: UUID | None
    created_at: datetime
    assigned_at: datetime | None
    handover_note: str | None
    closed_at: datetime | None
    closed_by: UUID | None
    outcome: str | None
    note: str | None


class TaskClose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator_id: UUID = Field(description="Who closes it (usually its holder; a supervisor may close any)")
    outcome: Literal["done", "reached", "not_reached"] = Field(
        "done", description="done; for a phone_agency task, whether the agency was reached by phone"
    )
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None


def task_public(row) -> TaskPublic:
    fields = dict(row)
    fields.pop("seq", None)
    fields["detail"] = json.loads(fields["detail"])
    return TaskPublic(**fields)


def _problem(description: str) -> dict:
    return {**PROBLEM_RESPONSES[422], "description": description}


# Every task route is an operator's work: app.py lets the console's key in.
router = APIRouter(prefix="/v1", tags=["tasks"], responses=PROBLEM_RESPONSES)


@router.get("/tasks", summary="Tasks, newest first, by state, operator or report")
async def list_tasks(
    conn: Connection,
    state: TaskState | None = None,
    operator_id: UUID | None = None,
    report_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TaskPublic]:
    rows = await store.tasks(conn, state=state, operator_id=operator_id, report_id=report_id, limit=limit)
    return [task_public(r) for r in rows]


@router.get(
    "/queue", summary="Tasks waiting for a free operator, most urgent first, then oldest (the order they go out)"
)
async def queue(conn: Connection) -> list[TaskPublic]:
    rows = await store.queued_tasks(conn)
    return [task_public(r) for r in sorted(rows, key=lambda r: urgency_of(r["reason"]))]


@router.post(
    "/tasks/{task_id}/close",
    summary="Close a task: an unrouted report dispatched by phone, a stalled or escalated one dealt with",
    description="A verify task closes with the verdict (intake: POST /v1/reports/{id}/verification), not here.",
    responses={404: _problem("No such task or operator"), 409: _problem("Closed already, or a verify task")},
)
async def close(task_id: UUID, body: TaskClose, conn: Connection, clock: Clock, assigner: Assignments) -> TaskPublic:
    now = clock()
    async with conn.transaction():
        task = await store.task(conn, task_id, for_update=True)
        if task is None:
            raise Problem(404, "Not found", f"No task {task_id}.")
        if not await store.operator_exists(conn, body.operator_id):
            raise Problem(404, "Not found", f"No operator {body.operator_id}.")
        if task["state"] == "closed":
            raise Problem(409, "Closed already", f"Closed at {task['closed_at'].isoformat()} ({task['outcome']}).")
        if task["reason"] == "verify":
            where = f"POST /v1/reports/{task['report_id']}/verification"
            raise Problem(409, "Verify tasks close with the verdict", f"Give the verdict at intake: {where}.")
        if (body.outcome == "done") == (task["reason"] == "phone_agency"):
            wanted = "reached or not_reached" if task["reason"] == "phone_agency" else "done"
            raise Problem(
                422,
                "Invalid request",
                f"outcome: a {task['reason']} task closes as {wanted}.",
                errors=[{"field": "outcome", "message": f"must be {wanted}"}],
            )
        await assigner.close(conn, task, outcome=body.outcome, by=body.operator_id, note=body.note, now=now)
        await assigner.reconcile(conn, now)
        return task_public(await store.task(conn, task_id))
