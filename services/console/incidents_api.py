"""An incident's end, from the console: the signed-in operator closes it with an outcome
(from the board) or reopens it (from the history), and the history of closed incidents.
Intake decides what may be closed; its 409s (another caller's report, awaiting a
verdict, already closed) reach the page as they are."""

import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from schemas.catalog import CloseOutcome
from schemas.reports import OPERATOR_HEADER
from services.common.web import PROBLEM_RESPONSES, Problem
from services.console.dependencies import Metrics, Upstream
from services.console.metrics import ConsoleMetrics
from services.console.session import ActingOperator, CurrentOperator

log = logging.getLogger(__name__)
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
HISTORY_PAGE = 50
# Linked callers are left out of a page, so one can come back empty with more behind it:
# read on a few pages rather than show the operator an empty list with a "more" button.
HISTORY_READS = 4
DONE = {"close": "incident closed", "reopen": "incident reopened"}
HISTORY_FIELDS = ("category", "subtype", "kecamatan", "desa", "received_at", "closed_at", "close_outcome")


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: CloseOutcome
    note: Text | None = None

    @field_validator("note", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text


router = APIRouter(prefix="/api", tags=["incidents"], responses=PROBLEM_RESPONSES)


async def act(
    request: Request,
    upstream: Upstream,
    metrics: ConsoleMetrics,
    operator,
    report_id: UUID,
    action: str,
    payload: dict,
    outcome: str,
) -> dict:
    try:
        report = await upstream.json(
            "intake",
            "POST",
            f"/v1/reports/{report_id}/{action}",
            json=payload,
            headers={OPERATOR_HEADER: str(operator.id)},
            request_id=request.state.request_id,
        )
    except Problem as problem:
        metrics.actions.labels(action, "refused" if problem.status < 500 else "error").inc()
        raise
    metrics.actions.labels(action, outcome).inc()
    # The note and the reason are the operator's free text: not logged.
    log.info(
        DONE[action],
        extra={"fields": {"operator_id": str(operator.id), "report_id": str(report_id), "outcome": outcome}},
    )
    return report


@router.post("/reports/{report_id}/close", summary="Close an incident with its outcome (and its callers), by me")
async def close(
    report_id: UUID, body: CloseIn, operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics
) -> dict:
    payload: dict[str, Any] = {"outcome": body.outcome, "note": body.note}
    return await act(request, upstream, metrics, operator, report_id, "close", payload, body.outcome)


@router.post("/reports/{report_id}/reopen", summary="Reopen a closed incident, with the reason, by me")
async def reopen(
    report_id: UUID, body: ReopenIn, operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics
) -> dict:
    return await act(request, upstream, metrics, operator, report_id, "reopen", {"reason": body.reason}, "done")


@router.get("/history", summary="Closed incidents, newest first (by when received), a page at a time")
async def history(
    operator: CurrentOperator,
    upstream: Upstream,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the page before")] = None,
) -> dict:
    items: list[dict] = []
    for _ in range(HISTORY_READS):
        params: dict[str, Any] = {"closed": "true", "kind": "emergency", "limit": HISTORY_PAGE}
        if cursor:
            params["cursor"] = cursor
        page = await upstream.json("intake", "GET", "/v1/reports", params=params)
        items += [
            {"report_id": str(i["id"]), **{k: i.get(k) for k in HISTORY_FIELDS}}
            for i in page["items"]
            if i.get("linked_to") is None
        ]
        cursor = page.get("next_cursor")
        if items or not cursor:
            break
    return {"items": items, "next_cursor": cursor}
