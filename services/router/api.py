"""Router's admin API: read and change the routing table, and ask why a report went
where it went."""

import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints

from services.common.web import PROBLEM_RESPONSES, Problem
from services.router import store
from services.router.routing import RoutingTable


class RoutingTablePublic(BaseModel):
    version: int
    table: RoutingTable


class RoutingTableChange(BaseModel):
    table: RoutingTable
    changed_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        description="Who makes the change (operator or supervisor name)"
    )
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class DecisionPublic(BaseModel):
    report_id: UUID
    outcome: str
    category: str | None
    rule_version: int | None
    rule_changed_by: str | None
    rule_reason: str | None
    dispatches: list[dict]
    decided_at: datetime


def build_router(auth) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["routing"], dependencies=[Depends(auth)], responses=PROBLEM_RESPONSES)

    @router.get("/routing-table", summary="The live routing table and its version")
    async def get_table(request: Request) -> RoutingTablePublic:
        async with request.app.state.pool.acquire() as conn:
            version, table = await store.current_table(conn)
        return RoutingTablePublic(version=version, table=table)

    @router.put("/routing-table", summary="Replace the routing table (a new version; applies to the next report)")
    async def put_table(change: RoutingTableChange, request: Request) -> RoutingTablePublic:
        async with request.app.state.pool.acquire() as conn:
            version = await store.save_table(conn, change.table, change.changed_by, change.reason)
        return RoutingTablePublic(version=version, table=change.table)

    @router.get(
        "/decisions/{report_id}",
        summary="Why a report went where it went",
        responses={404: {**PROBLEM_RESPONSES[422], "description": "Not decided (yet)"}},
    )
    async def get_decision(report_id: UUID, request: Request) -> DecisionPublic:
        async with request.app.state.pool.acquire() as conn:
            row = await store.fetch_decision(conn, report_id)
        if row is None:
            raise Problem(404, "Not found", f"No routing decision for report {report_id} (yet).")
        return DecisionPublic(**{**dict(row), "dispatches": json.loads(row["dispatches"])})

    return router
