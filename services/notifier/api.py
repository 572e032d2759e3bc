"""Notifier's API: each agency's webhook, and each dispatch's delivery record."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import AnyHttpUrl, BaseModel, Field, StringConstraints

from schemas.catalog import AGENCIES, AGENCY_NAMES, Agency
from services.common.web import PROBLEM_RESPONSES, Problem

NOT_FOUND = {404: {**PROBLEM_RESPONSES[422], "description": "Not found"}}


class WebhookChange(BaseModel):
    url: AnyHttpUrl = Field(description="Where the agency takes dispatches (HTTPS in production)")
    updated_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class AgencyPublic(BaseModel):
    agency: Agency
    name: str
    topic: str
    webhook_url: str | None
    updated_by: str | None
    updated_at: datetime | None


class AttemptPublic(BaseModel):
    attempt: int
    channel: str
    target: str | None
    started_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None
    error: str | None


class DispatchPublic(BaseModel):
    dispatch_id: UUID
    report_id: UUID
    agency: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    finished_at: datetime | None
    history: list[AttemptPublic]


def build_router(auth) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[Depends(auth)], responses=PROBLEM_RESPONSES)

    async def _agency(conn, agency: str) -> AgencyPublic:
        row = await conn.fetchrow("SELECT url, updated_by, updated_at FROM agency_webhooks WHERE agency = $1", agency)
        return AgencyPublic(
            agency=agency,
            name=AGENCY_NAMES[agency],
            topic=f"e112.dispatch.{agency}",
            webhook_url=row and row["url"],
            updated_by=row and row["updated_by"],
            updated_at=row and row["updated_at"],
        )

    @router.get("/agencies", tags=["agencies"], summary="Every agency and its webhook")
    async def list_agencies(request: Request) -> list[AgencyPublic]:
        async with request.app.state.pool.acquire() as conn:
            return [await _agency(conn, a) for a in AGENCIES]

    @router.put("/agencies/{agency}/webhook", tags=["agencies"], summary="Set an agency's webhook")
    async def put_webhook(agency: Agency, change: WebhookChange, request: Request) -> AgencyPublic:
        async with request.app.state.pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO agency_webhooks (agency, url, updated_by) VALUES ($1, $2, $3)
                ON CONFLICT (agency) DO UPDATE SET url = excluded.url, updated_by = excluded.updated_by,
                                                   updated_at = now()
                """,
                agency, str(change.url), change.updated_by,
            )  # fmt: skip
            return await _agency(conn, agency)

    @router.delete(
        "/agencies/{agency}/webhook", tags=["agencies"], summary="Remove an agency's webhook", status_code=204
    )
    async def delete_webhook(agency: Agency, request: Request) -> None:
        async with request.app.state.pool.acquire() as conn:
            await conn.execute("DELETE FROM agency_webhooks WHERE agency = $1", agency)

    @router.get(
        "/dispatches/{dispatch_id}",
        tags=["dispatches"],
        summary="A dispatch and every delivery attempt",
        responses=NOT_FOUND,
    )
    async def get_dispatch(dispatch_id: UUID, request: Request) -> DispatchPublic:
        async with request.app.state.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM dispatches WHERE dispatch_id = $1", dispatch_id)
            if row is None:
                raise Problem(404, "Not found", f"No dispatch {dispatch_id}.")
            attempts = await conn.fetch(
                "SELECT * FROM delivery_attempts WHERE dispatch_id = $1 ORDER BY attempt, id", dispatch_id
            )
        return DispatchPublic(
            **{k: row[k] for k in ("dispatch_id", "report_id", "agency", "state", "attempts", "last_error",
                                   "finished_at")},
            next_attempt_at=row["next_attempt_at"] if row["state"] == "pending" else None,
            history=[AttemptPublic(**{k: a[k] for k in AttemptPublic.model_fields}) for a in attempts],
        )  # fmt: skip

    return router
