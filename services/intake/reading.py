"""A whole report as the API shows it: the stored row, its timeline, the status and
dispatch states derived from it, the caller's history and the verification."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from schemas.reports import (
    Caller,
    CallerHistory,
    Closure,
    DispatchState,
    Location,
    ReportPublic,
    TimelineEntry,
    VerificationState,
)
from services.intake import store
from services.intake.clients import Client
from services.intake.settings import IntakeSettings
from services.intake.status import Entry, summarise


async def report_public(
    conn: asyncpg.Connection, report_id: UUID, settings: IntakeSettings, reader: Client | None = None
) -> ReportPublic | None:
    """The report as `reader` may see it: an app's key only a report it filed (None for
    another's), without the caller's history across other apps' reports."""
    row = await store.fetch_report(conn, report_id)
    if row is None:
        return None
    every = reader is None or reader.sees_every_report
    if not every and row["client_id"] != reader.id:
        return None
    timeline = await store.fetch_timeline(conn, report_id)
    linked = await conn.fetch("SELECT id FROM reports WHERE linked_to = $1 ORDER BY received_at", report_id)
    history = None
    if row["caller_phone"] and every:
        history = await _caller_history(conn, row["caller_phone"], settings)
    return _public_report(row, timeline, [r["id"] for r in linked], history)


async def _caller_history(conn: asyncpg.Connection, phone: str, settings: IntakeSettings) -> CallerHistory:
    since = datetime.now(UTC) - timedelta(days=settings.prank_flag_days)
    counts = await store.caller_history(conn, phone, since)
    return CallerHistory(
        contacts=counts["contacts"],
        pranks=counts["pranks"],
        period_days=settings.prank_flag_days,
        flagged=counts["pranks"] >= settings.prank_flag_threshold,
    )


def _public_report(
    row: asyncpg.Record, timeline: list[Entry], linked_reports: list[UUID], history: CallerHistory | None
) -> ReportPublic:
    """The report from what was read, its status and dispatch states derived from the timeline."""
    status, dispatches = summarise(
        row["kind"],
        timeline,
        linked=row["linked_to"] is not None,
        awaiting_verdict=store.awaiting_verdict(row),
        closed=row["closed_at"] is not None,
    )
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
        via=row["client_name"],
        linked_to=row["linked_to"],
        linked_reports=linked_reports,
        caller_history=history,
        verification=verification_state(row),
        operator_id=row["filed_by"],
        assigned_to=row["assigned_to"],
        call_started_at=row["call_started_at"],
        closure=_closure(row),
        dispatches=[DispatchState(**vars(d)) for d in dispatches],
        timeline=[_timeline_entry(e) for e in timeline],
    )


def _closure(row: asyncpg.Record) -> Closure | None:
    if row["closed_at"] is None:
        return None
    return Closure(
        outcome=row["close_outcome"], note=row["close_note"], operator_id=row["closed_by"], at=row["closed_at"]
    )


def verification_state(row: asyncpg.Record) -> VerificationState:
    if row["verification"] == "not_required":
        state = "not_required"
    else:
        state = "verified" if row["verdict"] else "pending"
    return VerificationState(
        required=row["verification"],
        state=state,
        verdict=row["verdict"],
        operator_id=row["verified_by"],
        at=row["verified_at"],
    )


def _timeline_entry(entry) -> TimelineEntry:
    detail = dict(entry.detail)
    if entry.dispatch_id:
        detail["dispatch_id"] = str(entry.dispatch_id)
    return TimelineEntry(at=entry.at, event=entry.event, agency=entry.agency, detail=detail)
