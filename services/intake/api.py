"""Intake's REST API: `POST /v1/reports`, `GET /v1/reports/{id}`."""

import uuid
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response
from prometheus_client import CollectorRegistry, Counter

from schemas.reports import Caller, DispatchState, Location, ReportAccepted, ReportCreate, ReportPublic, TimelineEntry
from services.common.web import PROBLEM_RESPONSES, Problem
from services.intake import store
from services.intake.status import summarise


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.received = Counter(
            "e112_reports_received_total", "Contacts accepted, by kind, category and channel",
            ["kind", "category", "channel"], registry=registry,
        )  # fmt: skip
        self.rejected = Counter(
            "e112_reports_rejected_total", "Reports refused, by reason", ["reason"], registry=registry
        )


def build_router(auth, metrics: IntakeMetrics) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reports"], dependencies=[Depends(auth)])

    @router.post(
        "/reports",
        status_code=202,
        response_model=ReportAccepted,
        summary="File a report",
        responses={
            202: {"description": "Accepted: stored, and on its way to the router",
                  "headers": {"Location": {"description": "/v1/reports/{id}", "schema": {"type": "string"}}}},
            **PROBLEM_RESPONSES,
            409: {**PROBLEM_RESPONSES[422], "description": "Idempotency-Key reused with a different body"},
            503: {**PROBLEM_RESPONSES[422], "description": "Storage unavailable; retry after `Retry-After` seconds"},
        },
    )  # fmt: skip
    async def create_report(
        report: ReportCreate,
        request: Request,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                max_length=200, description=("The same key and body again returns the first report, never a second one")
            ),
        ] = None,
    ) -> ReportAccepted:
        missing = report.missing_for_emergency()
        if missing:
            metrics.rejected.labels("incomplete_emergency").inc()
            raise Problem(
                422, "Invalid report", "An emergency needs: " + ", ".join(missing) + ".",
                errors=[{"field": f, "message": "required for an emergency"} for f in missing],
            )  # fmt: skip
        pool = request.app.state.pool
        async with pool.acquire() as conn, conn.transaction():
            stored = await store.store_report(conn, uuid.uuid4(), report, datetime.now(UTC), idempotency_key)
        if not stored.created and stored.request_hash != store.request_hash(report):
            metrics.rejected.labels("idempotency_conflict").inc()
            raise Problem(
                409,
                "Idempotency-Key reused",
                "This Idempotency-Key was used for a different report; use a new key for a new report.",
            )
        if stored.created:
            metrics.received.labels(report.kind, report.category or "none", report.channel).inc()
        response.headers["Location"] = f"/v1/reports/{stored.id}"
        return ReportAccepted(id=stored.id, status="received", kind=stored.kind, received_at=stored.received_at)

    @router.get(
        "/reports/{report_id}",
        response_model=ReportPublic,
        summary="A report, its status and its timeline",
        responses={**PROBLEM_RESPONSES, 404: {**PROBLEM_RESPONSES[422], "description": "No such report"}},
    )
    async def get_report(report_id: UUID, request: Request) -> ReportPublic:
        async with request.app.state.pool.acquire() as conn:
            row = await store.fetch_report(conn, report_id)
            if row is None:
                raise Problem(404, "Not found", f"No report {report_id}.")
            timeline = await store.fetch_timeline(conn, report_id)
        status, dispatches = summarise(row["kind"], timeline)
        return ReportPublic(
            id=row["id"],
            status=status,
            kind=row["kind"],
            category=row["category"],
            subtype=row["subtype"],
            description=row["description"],
            location=Location.model_construct(
                kecamatan=row["kecamatan"], desa=row["desa"], address=row["address"], lat=row["lat"], lon=row["lon"]
            ),
            caller=Caller.model_construct(name=row["caller_name"], phone=row["caller_phone"]),
            channel=row["channel"],
            casualties=row["casualties"],
            received_at=row["received_at"],
            dispatches=[DispatchState(**vars(d)) for d in dispatches],
            timeline=[_timeline_entry(e) for e in timeline],
        )  # fmt: skip

    return router


def _timeline_entry(entry) -> TimelineEntry:
    detail = dict(entry.detail)
    if entry.dispatch_id:
        detail["dispatch_id"] = str(entry.dispatch_id)
    return TimelineEntry(at=entry.at, event=entry.event, agency=entry.agency, detail=detail)
