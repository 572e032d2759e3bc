"""Intake's reports API: file, read back, list, and the contact statistics."""

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, StringConstraints

from schemas.catalog import Category, Channel, ContactKind, canonical_kecamatan
from schemas.reports import (
    CALL_STARTED_CLOCK_SKEW_SECONDS,
    CALL_STARTED_MAX_AGE_HOURS,
    OPERATOR_HEADER,
    ContactCount,
    ContactStats,
    ReportAccepted,
    ReportCreate,
    ReportPage,
    ReportPublic,
    ReportSummary,
)
from services.common.groupcommit import GroupCommit
from services.common.web import PROBLEM_RESPONSES, Connection, Problem, from_state
from services.intake import store
from services.intake.clients import CentreClient, Client, CurrentClient, OperatorAction
from services.intake.dependencies import Filings, Settings
from services.intake.filing import Filed, Filing, KeyReused, Replayed
from services.intake.reading import report_public
from services.intake.settings import IntakeSettings

REPORT_STATUSES = (
    "awaiting_verification",
    "received",
    "unrouted",
    "routed",
    "delivered",
    "delivery_failed",
    "acknowledged",
    "responding",
    "done",
    "linked",
    "recorded",
    "closed",
)


def _problem(description: str) -> dict:
    return {**PROBLEM_RESPONSES[422], "description": description}


COMMON_PROBLEMS = {
    **PROBLEM_RESPONSES,
    429: _problem("Over this app's rate limit; retry after `Retry-After` seconds"),
    503: _problem("Storage unavailable; nothing was changed; retry after `Retry-After` seconds"),
}


class Unlink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ReportCounts(BaseModel):
    total: int
    by_status: dict[str, int]


class FlaggedCaller(BaseModel):
    phone: str
    pranks: int
    last_prank_at: datetime


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.received = Counter(
            "e112_reports_received_total",
            "Contacts accepted, by kind, category and channel",
            ["kind", "category", "channel"],
            registry=registry,
        )
        self.linked = Counter(
            "e112_reports_linked_total",
            "Emergencies linked to an open incident, by category",
            ["category"],
            registry=registry,
        )
        self.rejected = Counter(
            "e112_reports_rejected_total", "Reports refused, by reason", ["reason"], registry=registry
        )


def _call_start_problem(started: datetime, received_at: datetime) -> str | None:
    if started > received_at + timedelta(seconds=CALL_STARTED_CLOCK_SKEW_SECONDS):
        return "in the future"
    if started < received_at - timedelta(hours=CALL_STARTED_MAX_AGE_HOURS):
        return f"more than {CALL_STARTED_MAX_AGE_HOURS} h ago"
    return None


async def report_filter(
    client: CurrentClient,
    status: Annotated[str | None, Query(description=f"One of: {', '.join(REPORT_STATUSES)}")] = None,
    category: Category | None = None,
    kecamatan: Annotated[str | None, Query(max_length=40, description="Any case")] = None,
    kind: ContactKind | None = None,
    channel: Channel | None = None,
    verification: Annotated[
        Literal["pending", "verified", "not_required"] | None,
        Query(description="pending: waiting for an operator's verdict (held or dispatched unverified)"),
    ] = None,
    assigned_to: Annotated[UUID | None, Query(description="The operator who has the report's open task")] = None,
    closed: Annotated[
        bool | None,
        Query(
            description="false: open ones only (incidents not closed, and other contacts); "
            "true: closed incidents and their callers only"
        ),
    ] = None,
    incident: Annotated[
        bool | None, Query(description="true: incidents only (emergencies that are not another caller's report)")
    ] = None,
    since: Annotated[datetime | None, Query(description="Received at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="Received before (RFC 3339)")] = None,
) -> store.ReportFilter:
    """The listing's filter from the query, scoped to what the key may read."""
    if status is not None and status not in REPORT_STATUSES:
        raise _query_problem("status", f"must be one of: {', '.join(REPORT_STATUSES)}")
    canonical = None
    if kecamatan is not None and (canonical := canonical_kecamatan(kecamatan)) is None:
        raise _query_problem("kecamatan", "not a kecamatan of Kabupaten Blitar")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise _query_problem(name, "give a time zone, e.g. 2026-11-28T07:00:00+07:00")
    return store.ReportFilter(
        status,
        category,
        canonical,
        kind,
        channel,
        since,
        until,
        verification,
        assigned_to,
        closed,
        client_id=None if client.sees_every_report else client.id,
        incident=incident,
    )


ReportQuery = Annotated[store.ReportFilter, Depends(report_filter)]


def _query_problem(field: str, message: str) -> Problem:
    return Problem(422, "Invalid request", f"{field}: {message}", errors=[{"field": field, "message": message}])


def _encode_cursor(item: ReportSummary) -> str:
    return base64.urlsafe_b64encode(f"{item.received_at.isoformat()}|{item.id}".encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        at, _, report_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), UUID(report_id)
    except (ValueError, UnicodeDecodeError):
        raise _query_problem("cursor", "not a cursor this API gave out") from None


Metrics = Annotated[IntakeMetrics, from_state("report_metrics")]
router = APIRouter(prefix="/v1", tags=["reports"], responses=COMMON_PROBLEMS)


def filing_router(idempotency_ttl_hours: float) -> APIRouter:
    """POST /v1/reports. Made for each app rather than at module level: its
    Idempotency-Key's documentation names the configured IDEMPOTENCY_TTL_HOURS."""
    filing_routes = APIRouter(prefix="/v1", tags=["reports"], responses=COMMON_PROBLEMS)
    IdempotencyKey = Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description=f"The same key and body again within {idempotency_ttl_hours:g} h returns the "
            "first report, never a second one; with a different body it is a 409.",
        ),
    ]

    @filing_routes.post(
        "/reports",
        status_code=202,
        summary="File a report",
        responses={
            202: {
                "description": "Accepted: stored, and on its way to the agencies",
                "headers": {"Location": {"description": "/v1/reports/{id}", "schema": {"type": "string"}}},
            },
            409: _problem("Idempotency-Key reused with a different body"),
        },
    )
    async def create_report(
        report: ReportCreate,
        client: CurrentClient,
        response: Response,
        filings: Filings,
        metrics: Metrics,
        settings: Settings,
        idempotency_key: IdempotencyKey = None,
    ) -> ReportAccepted:
        return await file_report(report, client, response, filings, metrics, settings, idempotency_key)

    return filing_routes


async def file_report(
    report: ReportCreate,
    client: Client,
    response: Response,
    filings: GroupCommit,
    metrics: IntakeMetrics,
    settings: IntakeSettings,
    idempotency_key: str | None,
) -> ReportAccepted:
    report_id, received_at = uuid.uuid4(), datetime.now(UTC)
    _refuse_incomplete(report, received_at, metrics)
    filing = Filing(report_id, report, received_at, client, store.request_hash(report), idempotency_key)
    match await filings.submit(filing):
        case KeyReused():
            metrics.rejected.labels("idempotency_conflict").inc()
            raise Problem(
                409,
                "Idempotency-Key reused",
                "This Idempotency-Key was used for a different report; use a new key for a new report.",
            )
        case Replayed(report=row):
            response.headers["Location"] = f"/v1/reports/{row['id']}"
            return ReportAccepted(
                id=row["id"],
                status=row["status"],
                kind=row["kind"],
                received_at=row["received_at"],
                linked_to=row["linked_to"],
                verification=row["verification"],
            )
        case Filed() as filed:
            metrics.received.labels(report.kind, report.category or "none", report.channel).inc()
            if filed.link:
                metrics.linked.labels(report.category).inc()
            response.headers["Location"] = f"/v1/reports/{report_id}"
            return ReportAccepted(
                id=report_id,
                status=filed.status,
                kind=report.kind,
                received_at=received_at,
                linked_to=filed.link and filed.link.incident_report_id,
                caller_flagged=filed.caller_pranks >= settings.prank_flag_threshold,
                verification=filed.verification,
            )


def _refuse_incomplete(report: ReportCreate, received_at: datetime, metrics: IntakeMetrics) -> None:
    """An emergency without what dispatch needs, or a call that started in the future or
    too long ago, is a 422."""
    missing = report.missing_for_emergency()
    if missing:
        metrics.rejected.labels("incomplete_emergency").inc()
        raise Problem(
            422,
            "Invalid report",
            "An emergency needs: " + ", ".join(missing) + ".",
            errors=[{"field": f, "message": "required for an emergency"} for f in missing],
        )
    if report.call_started_at is not None and (message := _call_start_problem(report.call_started_at, received_at)):
        metrics.rejected.labels("call_started_at").inc()
        raise Problem(
            422,
            "Invalid report",
            f"call_started_at: {message}.",
            errors=[{"field": "call_started_at", "message": message}],
        )


@router.get(
    "/reports/{report_id}",
    summary="A report, its status and its timeline",
    description="An app's key reads the reports it filed; the console and admin keys read all of them.",
    responses={404: _problem("No such report (or, for an app's key, not one it filed)")},
)
async def get_report(report_id: UUID, client: CurrentClient, conn: Connection, settings: Settings) -> ReportPublic:
    report = await report_public(conn, report_id, settings, reader=client)
    if report is None:
        raise Problem(404, "Not found", f"No report {report_id}.")
    return report


@router.get("/reports", summary="List and filter reports, newest first")
async def list_reports(
    where: ReportQuery,
    conn: Connection,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
) -> ReportPage:
    rows = await store.list_reports(conn, where, after=_decode_cursor(cursor), limit=limit + 1)
    items = [ReportSummary(**dict(r)) for r in rows[:limit]]
    more = len(rows) > limit
    return ReportPage(items=items, next_cursor=_encode_cursor(items[-1]) if more else None)


@router.get(
    "/stats/reports",
    tags=["statistics"],
    summary="How many reports a listing's filter holds, by status (all of them, not a page)",
)
async def report_counts(where: ReportQuery, conn: Connection) -> ReportCounts:
    rows = await store.count_reports(conn, where)
    by_status = {r["status"]: r["n"] for r in rows}
    return ReportCounts(total=sum(by_status.values()), by_status=by_status)


@router.get("/stats/contacts", tags=["statistics"], summary="Contacts per day, kind and channel")
async def contact_stats(
    client: CurrentClient,
    conn: Connection,
    since: Annotated[datetime, Query(description="From (RFC 3339, with time zone)")],
    until: Annotated[datetime | None, Query(description="To, exclusive (default: now)")] = None,
) -> ContactStats:
    until = until or datetime.now(UTC)
    if since.tzinfo is None or until.tzinfo is None:
        raise _query_problem("since", "give a time zone, e.g. 2026-11-01T00:00:00+07:00")
    if until <= since:
        raise _query_problem("until", "must be after since")
    rows = await store.contact_counts(conn, since, until)
    closed = {r["close_outcome"]: r["incidents"] for r in await store.closed_counts(conn, since, until)}
    by_day = [ContactCount(**dict(r)) for r in rows]
    by_kind: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    for row in by_day:
        by_kind[row.kind] = by_kind.get(row.kind, 0) + row.contacts
        by_channel[row.channel] = by_channel.get(row.channel, 0) + row.contacts
    total = sum(by_kind.values())
    share = {kind: round(n / total, 4) for kind, n in by_kind.items()} if total else {}
    return ContactStats(
        since=since,
        until=until,
        total=total,
        by_kind=by_kind,
        share_by_kind=share,
        by_channel=by_channel,
        by_day=by_day,
        incidents_closed=closed,
    )


@router.get(
    "/callers/flagged",
    tags=["statistics"],
    summary="Callers who pranked repeatedly (never blocked)",
    description="Callers' phones: for the console and admin keys only.",
    responses={403: _problem("An app's key: callers' phones are not for apps")},
)
async def flagged(client: CentreClient, conn: Connection, settings: Settings) -> list[FlaggedCaller]:
    since = datetime.now(UTC) - timedelta(days=settings.prank_flag_days)
    rows = await store.flagged_callers(conn, since, settings.prank_flag_threshold)
    return [FlaggedCaller(**dict(r)) for r in rows]


@router.post(
    "/reports/{report_id}/unlink",
    summary="Undo a link: the report is then dispatched on its own",
    description=f"Sent by the console for the operator signed in to it, named in `{OPERATOR_HEADER}`.",
    responses={
        403: _problem("Not a console key: an app's key may not undo links"),
        404: _problem("No such report"),
        409: _problem("The report is not linked, or its incident closed"),
    },
)
async def unlink(report_id: UUID, body: Unlink, actor: OperatorAction, conn: Connection) -> ReportAccepted:
    now = datetime.now(UTC)
    async with conn.transaction():
        row = await conn.fetchrow("SELECT linked_to, closed_at FROM reports WHERE id = $1 FOR UPDATE", report_id)
        if row is None:
            raise Problem(404, "Not found", f"No report {report_id}.")
        if row["linked_to"] is None:
            raise Problem(409, "Not linked", "This report is not linked to another; nothing to undo.")
        if row["closed_at"] is not None:
            raise Problem(
                409, "Incident closed", f"Incident {row['linked_to']} is closed with this caller; reopen it first."
            )
        await store.unlink_report(
            conn, report_id, row["linked_to"], operator=str(actor.operator_id), reason=body.reason, at=now
        )
        report = await store.fetch_report(conn, report_id)
    return ReportAccepted(id=report_id, status=report["status"], kind=report["kind"], received_at=report["received_at"])
