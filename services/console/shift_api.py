"""The shift panel: who is on duty and free; my check-in, check-out and break."""

import logging
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from services.common.web import PROBLEM_RESPONSES
from services.console.dependencies import Metrics, Upstream
from services.console.metrics import ConsoleMetrics
from services.console.session import ActingOperator, CurrentOperator

log = logging.getLogger(__name__)


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["available", "break"]


router = APIRouter(prefix="/api/shift", tags=["shift"], responses=PROBLEM_RESPONSES)


@router.get("", summary="The shift now (shifts' on-duty view) and me")
async def shift(operator: CurrentOperator, upstream: Upstream) -> dict:
    on_duty = await upstream.json("shifts", "GET", "/v1/on-duty")
    me = await upstream.json("shifts", "GET", f"/v1/operators/{operator.id}")
    return {**on_duty, "me": me}


async def act(
    request: Request,
    upstream: Upstream,
    metrics: ConsoleMetrics,
    operator,
    action: str,
    method: str,
    path: str,
    **kwargs,
) -> dict:
    me = await upstream.json(
        "shifts", method, f"/v1/operators/{operator.id}/{path}", request_id=request.state.request_id, **kwargs
    )
    metrics.actions.labels(action, "done").inc()
    log.info("shift action", extra={"fields": {"operator_id": str(operator.id), "action": action}})
    return me


@router.post("/check-in", summary="Check me in (status available)")
async def check_in(operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics) -> dict:
    return await act(request, upstream, metrics, operator, "check_in", "POST", "check-in")


@router.post("/check-out", summary="Check me out")
async def check_out(operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics) -> dict:
    return await act(request, upstream, metrics, operator, "check_out", "POST", "check-out")


@router.put("/status", summary="Take a break, or end it (available)")
async def status(
    body: StatusIn, operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics
) -> dict:
    return await act(request, upstream, metrics, operator, body.status, "PUT", "status", json={"status": body.status})
