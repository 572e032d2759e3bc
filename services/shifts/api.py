"""Shifts API: operators, check-in and check-out, status, who is on duty and free now."""

import uuid
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints, model_validator

from schemas.events import OperatorCheckedIn, OperatorCheckedOut, OperatorStatusChanged
from services.common.outbox import enqueue
from services.common.web import PROBLEM_RESPONSES, Connection, Problem
from services.shifts import store
from services.shifts.coverage import shift_for_check_in
from services.shifts.dependencies import Assignments, CheckInEarly, Clock, Coverage, Metrics
from services.shifts.metrics import refresh_gauges
from services.shifts.presence import InvalidTransition, Status, check_transition
from services.shifts.roster import ShiftOccurrence, shift_at

NOT_FOUND = {404: {**PROBLEM_RESPONSES[422], "description": "No such operator"}}
CONFLICT = {409: {**PROBLEM_RESPONSES[422], "description": "Not allowed in the operator's present state"}}


class OperatorCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class OperatorPublic(BaseModel):
    id: UUID
    name: str
    active: bool
    on_duty: bool
    checked_in_at: datetime | None
    status: Status
    status_since: datetime | None
    report_id: UUID | None = Field(description="the report being handled, with status handling_report")
    shift: str | None = Field(description="the shift checked in for")
    shift_starts_at: datetime | None
    shift_ends_at: datetime | None


class StatusChange(BaseModel):
    status: Status
    report_id: UUID | None = Field(None, description="with handling_report: the report taken")

    @model_validator(mode="after")
    def _report_only_when_handling(self) -> "StatusChange":
        if self.report_id is not None and self.status is not Status.HANDLING_REPORT:
            raise ValueError("report_id goes with status handling_report only")
        return self


class ShiftPublic(BaseModel):
    code: str
    starts_at: datetime
    ends_at: datetime
    operators_needed: int

    @classmethod
    def of(cls, shift: ShiftOccurrence) -> "ShiftPublic":
        return cls(
            code=shift.code,
            starts_at=shift.starts_at,
            ends_at=shift.ends_at,
            operators_needed=shift.template.operators_needed,
        )


class RosteredPublic(BaseModel):
    operator_id: UUID
    name: str
    checked_in: bool


class CoverageAlertPublic(BaseModel):
    since: datetime
    reason: str = Field(description="nobody or short")


class OnDutyPublic(BaseModel):
    now: datetime
    shift: ShiftPublic
    operators: list[OperatorPublic] = Field(description="everyone checked in, leaving ones included")
    free: list[OperatorPublic] = Field(description="checked in for this shift and available")
    leaving: list[OperatorPublic] = Field(description="still checked in although their shift has ended")
    rostered: list[RosteredPublic] = Field(description="the roster's operators for this shift")
    missing: list[RosteredPublic] = Field(description="rostered for this shift and not checked in for it")
    checked_in_for_shift: int
    understaffed: bool = Field(description="fewer checked in for this shift than it needs")
    coverage_alert: CoverageAlertPublic | None = Field(description="the open shortage alert, if any")


def operator_public(row) -> OperatorPublic:
    return OperatorPublic(**dict(row))


async def existing_operator(conn, operator_id: UUID):
    row = await store.operator(conn, operator_id)
    if row is None:
        raise Problem(404, "Not found", f"No operator {operator_id}.")
    return row


# The console reads operators and works a shift for the one signed in to it; adding
# operators is the admin's. app.py puts each behind its key.
for_console = APIRouter(prefix="/v1", tags=["operators"], responses=PROBLEM_RESPONSES)
for_admin = APIRouter(prefix="/v1", tags=["operators"], responses=PROBLEM_RESPONSES)


@for_admin.post("/operators", status_code=201, summary="Add an operator")
async def create_operator(body: OperatorCreate, conn: Connection) -> OperatorPublic:
    operator_id = uuid.uuid4()
    await store.add_operator(conn, operator_id, body.name)
    return operator_public(await store.operator(conn, operator_id))


@for_console.get("/operators", summary="Every operator, status and the shift checked in for")
async def list_operators(conn: Connection) -> list[OperatorPublic]:
    return [operator_public(r) for r in await store.operators(conn)]


@for_console.get("/operators/{operator_id}", summary="One operator", responses=NOT_FOUND)
async def get_operator(operator_id: UUID, conn: Connection) -> OperatorPublic:
    return operator_public(await existing_operator(conn, operator_id))


@for_console.post(
    "/operators/{operator_id}/check-in",
    summary="Start work (status available); up to 30 minutes early counts for the next shift",
    responses={**NOT_FOUND, **CONFLICT},
)
async def check_in(
    operator_id: UUID,
    conn: Connection,
    clock: Clock,
    metrics: Metrics,
    monitor: Coverage,
    assigner: Assignments,
    check_in_early: CheckInEarly,
) -> OperatorPublic:
    now = clock()
    async with conn.transaction():
        await existing_operator(conn, operator_id)
        shift = shift_for_check_in(now, await store.load_templates(conn), check_in_early)
        if not await store.open_presence(conn, operator_id, now, shift):
            raise Problem(409, "Already checked in", "This operator is already on duty.")
        event = OperatorCheckedIn(operator_id=operator_id, shift=shift.code, at=now)
        await enqueue(conn, [store.record(event, key=operator_id, now=now)])
        outcome = await monitor.evaluate(conn, now)
        await assigner.reconcile(conn, now)  # the queue drains to them
    metrics.presence_changes.labels("check_in").inc()
    await monitor.settle(conn, outcome, now)
    return operator_public(await store.operator(conn, operator_id))


@for_console.post(
    "/operators/{operator_id}/check-out", summary="Stop work (offline)", responses={**NOT_FOUND, **CONFLICT}
)
async def check_out(
    operator_id: UUID, conn: Connection, clock: Clock, metrics: Metrics, monitor: Coverage, assigner: Assignments
) -> OperatorPublic:
    now = clock()
    async with conn.transaction():
        await existing_operator(conn, operator_id)
        closed = await store.close_presence(conn, operator_id, now)
        if closed is None:
            raise Problem(409, "Not checked in", "This operator is not on duty.")
        event = OperatorCheckedOut(operator_id=operator_id, shift=closed["shift"], at=now)
        await enqueue(conn, [store.record(event, key=operator_id, now=now)])
        outcome = await monitor.evaluate(conn, now)
        await assigner.reconcile(conn, now)  # their tasks go to others
    metrics.presence_changes.labels("check_out").inc()
    await monitor.settle(conn, outcome, now)
    return operator_public(await store.operator(conn, operator_id))


@for_console.put(
    "/operators/{operator_id}/status",
    summary="Set the status of an operator at work: available, handling_report or break",
    description="From available to break or handling_report and back; a report is finished before a break "
    "and a break ended before a report. Offline is check-out. Setting the present status again changes nothing.",
    responses={**NOT_FOUND, **CONFLICT},
)
async def set_status(
    operator_id: UUID, body: StatusChange, conn: Connection, clock: Clock, metrics: Metrics, assigner: Assignments
) -> OperatorPublic:
    now = clock()
    async with conn.transaction():
        await existing_operator(conn, operator_id)
        presence = await store.lock_presence(conn, operator_id)
        current = Status(presence["status"]) if presence else Status.OFFLINE
        current_report = presence["report_id"] if presence else None
        by_assignment = presence is not None and presence["status_by"] == "assignment"
        try:
            changed = check_transition(current, body.status, current_report, body.report_id, by_assignment)
        except InvalidTransition as exc:
            raise Problem(409, "Status change not allowed", str(exc), current_status=current.value) from None
        if changed:
            await store.set_status(conn, presence["id"], body.status.value, body.report_id, now)
            event = OperatorStatusChanged(
                operator_id=operator_id,
                shift=presence["shift"],
                status=body.status.value,
                previous=current.value,
                report_id=body.report_id,
                at=now,
            )
            await enqueue(conn, [store.record(event, key=operator_id, now=now)])
            await assigner.reconcile(conn, now)  # a break hands tasks on
    if changed:
        metrics.status_changes.labels(body.status.value).inc()
        await refresh_gauges(conn, metrics, now)
    return operator_public(await store.operator(conn, operator_id))


@for_console.get("/on-duty", summary="The shift now: who is checked in, who is free, who is missing, who is leaving")
async def on_duty(conn: Connection, clock: Clock) -> OnDutyPublic:
    now = clock()
    shift = shift_at(now, await store.load_templates(conn))
    operators = [operator_public(r) for r in await store.checked_in(conn)]
    day = shift.starts_at.date()
    rostered_entries = await store.roster_entries(conn, day, day, starts_at=shift.starts_at)
    episode = await store.open_episode(conn)
    for_shift = [o for o in operators if o.shift_starts_at == shift.starts_at]
    here = {o.id for o in for_shift}
    rostered = [
        RosteredPublic(operator_id=e.operator_id, name=e.operator_name, checked_in=e.operator_id in here)
        for e in rostered_entries
    ]
    current_alert = episode is not None and episode["shift_starts_at"] == shift.starts_at
    return OnDutyPublic(
        now=now,
        shift=ShiftPublic.of(shift),
        operators=operators,
        free=[o for o in for_shift if o.status is Status.AVAILABLE],
        leaving=[o for o in operators if o.shift_ends_at is not None and o.shift_ends_at <= now],
        rostered=rostered,
        missing=[r for r in rostered if not r.checked_in],
        checked_in_for_shift=len(for_shift),
        understaffed=len(for_shift) < shift.template.operators_needed,
        coverage_alert=CoverageAlertPublic(since=episode["started_at"], reason=episode["reason"])
        if current_alert
        else None,
    )
