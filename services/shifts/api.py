"""Shifts API: operators, check-in and check-out, who is on duty now."""

import uuid
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, StringConstraints

from schemas import topics
from schemas.envelope import encode
from schemas.events import OperatorCheckedIn, OperatorCheckedOut
from services.common.outbox import enqueue
from services.common.web import PROBLEM_RESPONSES, Problem
from services.shifts.roster import ShiftTemplate, shift_at

SOURCE = "e112/shifts"
NOT_FOUND = {404: {**PROBLEM_RESPONSES[422], "description": "No such operator"}}
CONFLICT = {409: {**PROBLEM_RESPONSES[422], "description": "Already checked in / not checked in"}}


class ShiftMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.on_duty = Gauge("e112_operators_on_duty", "Operators checked in now", registry=registry)
        self.needed = Gauge("e112_operators_needed", "Operators the current shift needs", registry=registry)
        self.presence_changes = Counter(
            "e112_operator_presence_changes_total", "Check-ins and check-outs", ["change"], registry=registry
        )


class OperatorCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class OperatorPublic(BaseModel):
    id: UUID
    name: str
    active: bool
    on_duty: bool
    checked_in_at: datetime | None


class ShiftPublic(BaseModel):
    code: str
    starts_at: datetime
    ends_at: datetime
    operators_needed: int


class OnDutyPublic(BaseModel):
    now: datetime
    shift: ShiftPublic
    operators: list[OperatorPublic]
    understaffed: bool


async def load_templates(conn: asyncpg.Connection) -> list[ShiftTemplate]:
    rows = await conn.fetch("SELECT code, starts, ends, operators_needed FROM shift_templates ORDER BY starts")
    return [ShiftTemplate(r["code"], r["starts"], r["ends"], r["operators_needed"]) for r in rows]


OPERATOR_SELECT = """
    SELECT o.id, o.name, o.active, p.checked_in_at, p.checked_in_at IS NOT NULL AS on_duty
    FROM operators o LEFT JOIN presence p ON p.operator_id = o.id AND p.checked_out_at IS NULL
"""


async def refresh_gauges(conn: asyncpg.Connection, metrics: ShiftMetrics, now: datetime) -> None:
    metrics.on_duty.set(await conn.fetchval("SELECT count(*) FROM presence WHERE checked_out_at IS NULL"))
    metrics.needed.set(shift_at(now, await load_templates(conn)).template.operators_needed)


def build_router(auth, metrics: ShiftMetrics, clock=lambda: datetime.now(UTC)) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["shifts"], dependencies=[Depends(auth)], responses=PROBLEM_RESPONSES)

    async def _operator(conn, operator_id: UUID) -> OperatorPublic:
        row = await conn.fetchrow(OPERATOR_SELECT + " WHERE o.id = $1", operator_id)
        if row is None:
            raise Problem(404, "Not found", f"No operator {operator_id}.")
        return OperatorPublic(**dict(row))

    @router.post("/operators", status_code=201, summary="Add an operator")
    async def create_operator(body: OperatorCreate, request: Request) -> OperatorPublic:
        async with request.app.state.pool.acquire() as conn:
            operator_id = uuid.uuid4()
            await conn.execute("INSERT INTO operators (id, name) VALUES ($1, $2)", operator_id, body.name)
            return await _operator(conn, operator_id)

    @router.get("/operators", summary="Every operator and whether on duty")
    async def list_operators(request: Request) -> list[OperatorPublic]:
        async with request.app.state.pool.acquire() as conn:
            rows = await conn.fetch(OPERATOR_SELECT + " ORDER BY o.name")
        return [OperatorPublic(**dict(r)) for r in rows]

    @router.post("/operators/{operator_id}/check-in", summary="Start work", responses={**NOT_FOUND, **CONFLICT})
    async def check_in(operator_id: UUID, request: Request) -> OperatorPublic:
        now = clock()
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await _operator(conn, operator_id)
            shift = shift_at(now, await load_templates(conn))
            opened = await conn.fetchval(
                """
                INSERT INTO presence (operator_id, shift, checked_in_at) VALUES ($1, $2, $3)
                ON CONFLICT (operator_id) WHERE checked_out_at IS NULL DO NOTHING RETURNING true
                """,
                operator_id, shift.code, now,
            )  # fmt: skip
            if not opened:
                raise Problem(409, "Already checked in", "This operator is already on duty.")
            await enqueue(
                conn,
                [
                    encode(
                        OperatorCheckedIn(operator_id=operator_id, shift=shift.code, at=now),
                        topic=topics.SHIFTS,
                        key=str(operator_id),
                        source=SOURCE,
                        time=now,
                    )
                ],
            )
            await refresh_gauges(conn, metrics, now)
            metrics.presence_changes.labels("check_in").inc()
            return await _operator(conn, operator_id)

    @router.post("/operators/{operator_id}/check-out", summary="Stop work", responses={**NOT_FOUND, **CONFLICT})
    async def check_out(operator_id: UUID, request: Request) -> OperatorPublic:
        now = clock()
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await _operator(conn, operator_id)
            shift = await conn.fetchval(
                "UPDATE presence SET checked_out_at = $2 WHERE operator_id = $1 AND checked_out_at IS NULL "
                "RETURNING shift",
                operator_id, now,
            )  # fmt: skip
            if shift is None:
                raise Problem(409, "Not checked in", "This operator is not on duty.")
            await enqueue(
                conn,
                [
                    encode(
                        OperatorCheckedOut(operator_id=operator_id, shift=shift, at=now),
                        topic=topics.SHIFTS,
                        key=str(operator_id),
                        source=SOURCE,
                        time=now,
                    )
                ],
            )
            await refresh_gauges(conn, metrics, now)
            metrics.presence_changes.labels("check_out").inc()
            return await _operator(conn, operator_id)

    @router.get("/on-duty", summary="The shift now and the operators checked in")
    async def on_duty(request: Request) -> OnDutyPublic:
        now = clock()
        async with request.app.state.pool.acquire() as conn:
            shift = shift_at(now, await load_templates(conn))
            rows = await conn.fetch(OPERATOR_SELECT + " WHERE p.checked_in_at IS NOT NULL ORDER BY p.checked_in_at")
        operators = [OperatorPublic(**dict(r)) for r in rows]
        return OnDutyPublic(
            now=now,
            shift=ShiftPublic(code=shift.code, starts_at=shift.starts_at, ends_at=shift.ends_at,
                              operators_needed=shift.template.operators_needed),
            operators=operators,
            understaffed=len(operators) < shift.template.operators_needed,
        )  # fmt: skip

    return router
