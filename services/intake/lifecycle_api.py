"""An incident's end: an operator closes it with an outcome, or reopens it.

An incident is a report and the other callers' reports linked to it; they close and
reopen together. Closing publishes report.closed (the router tells each dispatched
agency with dispatch.closed, the shifts service closes the incident's tasks); a closed
incident takes no new callers, is not watched and leaves the board. It also closes on
its own, `resolved`, when every dispatched agency reports `done` (timeline.py)."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, StringConstraints

from schemas.catalog import CloseOutcome
from schemas.reports import OPERATOR_HEADER, ReportPublic
from services.common.web import PROBLEM_RESPONSES, Connection, Problem, from_state
from services.intake import store
from services.intake.clients import OperatorAction
from services.intake.dependencies import Settings
from services.intake.reading import report_public

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: CloseOutcome
    note: Text | None = None


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text


class LifecycleMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.closed = Counter(
            "e112_incidents_closed_total",
            "Incidents closed by an operator, by outcome (those that closed on their own are in /v1/stats/contacts)",
            ["outcome"],
            registry=registry,
        )
        self.reopened = Counter("e112_incidents_reopened_total", "Incidents reopened by an operator", registry=registry)


def _problem(description: str) -> dict:
    return {**PROBLEM_RESPONSES[422], "description": description}


def closable_problem(root: asyncpg.Record) -> Problem | None:
    """Why this report cannot be closed (or reopened) as an incident, if it cannot."""
    if root["kind"] != "emergency":
        return Problem(
            409, "Not an incident", f"This contact was recorded as {root['kind']}: there is no incident to close."
        )
    if root["linked_to"] is not None:
        return Problem(
            409,
            "Another caller's report",
            f"This report is another caller of incident {root['linked_to']}: close or reopen that incident.",
            incident_report_id=str(root["linked_to"]),
        )
    return None


async def _locked_incident(conn: asyncpg.Connection, report_id: UUID) -> asyncpg.Record:
    members = await store.lock_incident(conn, report_id)
    root = next((r for r in members if r["id"] == report_id), None)
    if root is None:
        raise Problem(404, "Not found", f"No report {report_id}.")
    if problem := closable_problem(root):
        raise problem
    return root


Metrics = Annotated[LifecycleMetrics, from_state("lifecycle_metrics")]
router = APIRouter(prefix="/v1", tags=["incidents"], responses=PROBLEM_RESPONSES)
ACTING = f"Sent by the console for the operator signed in to it, named in `{OPERATOR_HEADER}`."


@router.post(
    "/reports/{report_id}/close",
    summary="Close an incident with its outcome (its linked callers close with it)",
    description=ACTING + " The agencies it was dispatched to get a closing notice (`dispatch.closed`).",
    responses={
        403: _problem("Not a console key: an app's key may not close incidents"),
        404: _problem("No such report"),
        409: _problem(
            "Not an incident (not an emergency, or another caller's report), awaiting a verdict, or closed already"
        ),
    },
)
async def close(
    report_id: UUID, body: CloseIn, actor: OperatorAction, conn: Connection, settings: Settings, metrics: Metrics
) -> ReportPublic:
    now = datetime.now(UTC)
    async with conn.transaction():
        root = await _locked_incident(conn, report_id)
        if root["closed_at"] is not None:
            raise Problem(
                409,
                "Already closed",
                f"Closed as {root['close_outcome']} at "
                f"{root['closed_at'].isoformat()}; reopen it first to close it again.",
                outcome=root["close_outcome"],
            )
        if store.awaiting_verdict(root):
            raise Problem(
                409,
                "Awaiting a verdict",
                "This report waits for an operator's verdict before "
                "dispatch: give the verdict (information or prank ends it unsent).",
            )
        await store.close_incident(
            conn, report_id, outcome=body.outcome, note=body.note, operator_id=actor.operator_id, at=now
        )
        report = await report_public(conn, report_id, settings)
    metrics.closed.labels(body.outcome).inc()
    return report


@router.post(
    "/reports/{report_id}/reopen",
    summary="Reopen a closed incident (with the callers that closed with it)",
    description=ACTING + " It is open, watched and on the board again.",
    responses={
        403: _problem("Not a console key: an app's key may not reopen incidents"),
        404: _problem("No such report"),
        409: _problem("Not an incident (not an emergency, or another caller's report), or not closed"),
    },
)
async def reopen(
    report_id: UUID, body: ReopenIn, actor: OperatorAction, conn: Connection, settings: Settings, metrics: Metrics
) -> ReportPublic:
    now = datetime.now(UTC)
    async with conn.transaction():
        root = await _locked_incident(conn, report_id)
        if root["closed_at"] is None:
            raise Problem(409, "Not closed", "This incident is open; there is nothing to reopen.")
        await store.reopen_incident(conn, root, reason=body.reason, operator_id=actor.operator_id, at=now)
        report = await report_public(conn, report_id, settings)
    metrics.reopened.inc()
    return report
