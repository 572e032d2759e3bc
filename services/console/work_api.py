"""The call taker's work: take a call, the queue and verdicts, the dispatch board.
Every change is sent upstream with the signed-in operator's id."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from schemas.catalog import Category, ContactKind
from schemas.reports import OPERATOR_HEADER
from services.common.web import PROBLEM_RESPONSES, Problem
from services.console.catalog import form_catalog
from services.console.dependencies import Metrics, Upstream
from services.console.queue import queue_items
from services.console.session import ActingOperator, CurrentOperator

log = logging.getLogger(__name__)
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
# intake's field -> the form's field, so the page marks the right input.
FORM_FIELDS = {
    "location.kecamatan": "kecamatan",
    "location.desa": "desa",
    "location.address": "address",
    "caller.phone": "phone",
    "caller.name": "caller_name",
}


class CallIn(BaseModel):
    """The take-a-call form. Empty inputs count as not given."""

    model_config = ConfigDict(extra="forbid")
    kind: ContactKind = "emergency"
    category: Category | None = None
    subtype: Annotated[str, StringConstraints(strip_whitespace=True, max_length=60)] | None = None
    kecamatan: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = None
    desa: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    address: Short | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    caller_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    casualties: int | None = Field(None, ge=0, le=100_000)
    # When the call taker picked up (the form's timer); intake says if it is in the future or too old.
    call_started_at: AwareDatetime | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value


def report_create(call: CallIn, operator_id: UUID) -> dict[str, Any]:
    """The intake report for a call taken by `operator_id` (channel `call`)."""
    location = {
        k: v
        for k, v in {"kecamatan": call.kecamatan, "desa": call.desa, "address": call.address}.items()
        if v is not None
    }
    caller = {k: v for k, v in {"phone": call.phone, "name": call.caller_name}.items() if v is not None}
    body: dict[str, Any] = {"kind": call.kind, "channel": "call", "operator_id": str(operator_id)}
    for name in ("category", "subtype", "description", "casualties"):
        if getattr(call, name) is not None:
            body[name] = getattr(call, name)
    if call.call_started_at is not None:
        body["call_started_at"] = call.call_started_at.isoformat()
    if call.subtype == "lainnya":
        body.pop("subtype")  # "other": nothing more specific is known
    if location:
        body["location"] = location
    if caller:
        body["caller"] = caller
    return body


def form_errors(problem: Problem) -> Problem:
    errors = problem.extra.get("errors")
    if isinstance(errors, list):
        problem.extra["errors"] = [
            {**e, "field": FORM_FIELDS.get(e.get("field"), e.get("field"))} for e in errors if isinstance(e, dict)
        ]
    return problem


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["genuine", "prank", "duplicate", "information"]
    duplicate_of: UUID | None = None
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


class TaskClose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


class PhoneCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["reached", "not_reached"]
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


router = APIRouter(prefix="/api", tags=["work"], responses=PROBLEM_RESPONSES)


@router.get("/catalog", summary="Categories with their keys and subtypes, kinds of contact, the 22 kecamatan")
async def catalog() -> dict:
    return form_catalog()


@router.post("/calls", status_code=202, summary="Take a call: files it with intake as channel `call`, by me")
async def take_call(
    call: CallIn,
    operator: ActingOperator,
    request: Request,
    upstream: Upstream,
    metrics: Metrics,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> dict:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    try:
        answer = await upstream.json(
            "intake",
            "POST",
            "/v1/reports",
            json=report_create(call, operator.id),
            headers=headers,
            request_id=request.state.request_id,
        )
    except Problem as problem:
        metrics.actions.labels("call", "refused" if problem.status < 500 else "error").inc()
        raise form_errors(problem) from None
    metrics.actions.labels("call", call.kind).inc()
    log.info(
        "call filed",
        extra={"fields": {"operator_id": str(operator.id), "report_id": answer["id"], "kind": call.kind}},
    )
    return answer


@router.get("/reports/{report_id}", summary="One report with caller, timeline and verification (intake's view)")
async def report(report_id: UUID, operator: CurrentOperator, upstream: Upstream) -> dict:
    return await upstream.json("intake", "GET", f"/v1/reports/{report_id}")


@router.get("/queue", summary="My tasks and every report waiting for a verdict, what needs me first")
async def queue(operator: CurrentOperator, upstream: Upstream) -> dict:
    me = str(operator.id)
    tasks, tasks_known = await _my_tasks(upstream, me)
    pending_page, mine_page = await asyncio.gather(
        upstream.json("intake", "GET", "/v1/reports", params={"verification": "pending", "limit": 200}),
        upstream.json("intake", "GET", "/v1/reports", params={"assigned_to": me, "limit": 100}),
    )
    mine = mine_page["items"]
    summaries = {str(s["id"]): s for s in pending_page["items"] + mine}
    missing = {str(t["report_id"]) for t in tasks} - summaries.keys()
    for report in await asyncio.gather(*(_summary(upstream, r) for r in missing)):
        if report:
            summaries[str(report["id"])] = report
    pseudo = [
        {
            "task_id": None,
            "report_id": s["id"],
            "reason": "verify" if s.get("verdict") is None and s.get("verification") != "not_required" else "unrouted",
        }
        for s in mine
        if str(s["id"]) not in {str(t["report_id"]) for t in tasks}
    ]
    items = queue_items(tasks + pseudo, pending_page["items"], summaries, me)
    phones = await _agency_phones(
        upstream, {i["task"]["detail"]["agency"] for i in items if i["reason"] == "phone_agency" and i["task"]}
    )
    for item in items:
        if item["reason"] == "phone_agency" and item["task"]:
            item["phones"] = phones.get(item["task"]["detail"]["agency"], [])
    return {
        "items": items,
        "tasks_available": tasks_known,
        "waiting": await _waiting(upstream, tasks, tasks_known),
        "now": datetime.now(UTC).isoformat(),
    }


@router.post("/reports/{report_id}/verification", summary="My verdict: genuine, prank, duplicate (of another)")
async def verify(
    report_id: UUID, body: VerdictIn, operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics
) -> dict:
    if body.verdict == "duplicate" and body.duplicate_of is None:
        raise Problem(
            422,
            "Invalid request",
            "duplicate_of: name the report this one repeats.",
            errors=[{"field": "duplicate_of", "message": "required with verdict duplicate"}],
        )
    payload: dict = {"verdict": body.verdict}
    if body.duplicate_of is not None and body.verdict == "duplicate":
        payload["duplicate_of"] = str(body.duplicate_of)
    if body.note:
        payload["note"] = body.note
    result = await upstream.json(
        "intake",
        "POST",
        f"/v1/reports/{report_id}/verification",
        json=payload,
        headers={OPERATOR_HEADER: str(operator.id)},
        request_id=request.state.request_id,
    )
    metrics.actions.labels("verdict", body.verdict).inc()
    log.info(
        "verdict given",
        extra={"fields": {"operator_id": str(operator.id), "report_id": str(report_id), "verdict": body.verdict}},
    )
    return result


@router.post("/tasks/{task_id}/close", summary="Mark my task on a report done")
async def close_task(
    task_id: UUID, body: TaskClose, operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics
) -> dict:
    result = await upstream.json(
        "shifts",
        "POST",
        f"/v1/tasks/{task_id}/close",
        json={"operator_id": str(operator.id), "note": body.note},
        request_id=request.state.request_id,
    )
    metrics.actions.labels("task_close", "done").inc()
    return result


@router.post(
    "/tasks/{task_id}/phone-call",
    summary="My call to an agency the system cannot reach: reached (it has the dispatch) or not reached",
)
async def phone_call(
    task_id: UUID, body: PhoneCallIn, operator: ActingOperator, request: Request, upstream: Upstream, metrics: Metrics
) -> dict:
    me = str(operator.id)
    tasks, _ = await _my_tasks(upstream, me)
    task = next((t for t in tasks if str(t["task_id"]) == str(task_id)), None)
    if task is None or task["reason"] != "phone_agency":
        raise Problem(404, "Not found", f"You hold no task {task_id} to phone an agency.")
    # The notifier first: if it cannot record the call, the task stays open and the
    # operator tries again; the other way round a reached agency could be escalated.
    await upstream.json(
        "notifier",
        "POST",
        f"/v1/dispatches/{task['detail']['dispatch_id']}/phone-call",
        json={"outcome": body.outcome, "operator_id": me},
        request_id=request.state.request_id,
    )
    result = await upstream.json(
        "shifts",
        "POST",
        f"/v1/tasks/{task_id}/close",
        json={"operator_id": me, "outcome": body.outcome, "note": body.note},
        request_id=request.state.request_id,
    )
    metrics.actions.labels("phone_call", body.outcome).inc()
    log.info(
        "agency phoned",
        extra={
            "fields": {
                "operator_id": me,
                "task_id": str(task_id),
                "agency": task["detail"].get("agency"),
                "outcome": body.outcome,
            }
        },
    )
    return result


async def _my_tasks(upstream, me: str) -> tuple[list[dict], bool]:
    """Shifts' open tasks assigned to me; ([], False) while shifts has no task API."""
    response = await upstream.call(
        "shifts", "GET", "/v1/tasks", params={"state": "assigned", "operator_id": me}, passthrough=(404,)
    )
    if response.status_code == 404:
        return [], False
    body = response.json()
    tasks = body.get("items", []) if isinstance(body, dict) else body
    return [{**t, "task_id": t.get("task_id") or t.get("id")} for t in tasks], True


async def _waiting(upstream, mine: list[dict], tasks_known: bool) -> dict[str, int] | None:
    """How many tasks are open: mine, waiting for a free operator, all of the centre's.
    Nothing is hidden: the list shows mine and the verdicts, these count the rest."""
    if not tasks_known:
        return None
    queued, assigned = await asyncio.gather(
        upstream.json("shifts", "GET", "/v1/tasks", params={"state": "queued", "limit": 500}),
        upstream.json("shifts", "GET", "/v1/tasks", params={"state": "assigned", "limit": 500}),
    )
    return {"mine": len(mine), "for_nobody": len(queued), "open": len(queued) + len(assigned)}


async def _agency_phones(upstream, agencies: set[str]) -> dict[str, list[str]]:
    """The 24-hour numbers of the agencies to phone (the notifier's configuration)."""

    async def one(agency: str) -> tuple[str, list[str]]:
        try:
            return agency, (await upstream.json("notifier", "GET", f"/v1/agencies/{agency}")).get("phones", [])
        except Problem:
            return agency, []  # the task still shows; the operator finds the number another way

    return dict(await asyncio.gather(*(one(a) for a in sorted(agencies))))


async def _summary(upstream, report_id: str) -> dict | None:
    report = await report_or_none(upstream, report_id)
    if report is None:
        return None
    location = report.get("location") or {}
    verification = report.get("verification") or {}
    return {
        **report,
        "kecamatan": location.get("kecamatan"),
        "desa": location.get("desa"),
        "verification": verification.get("required"),
        "verdict": verification.get("verdict"),
    }


async def report_or_none(upstream, report_id: str) -> dict | None:
    response = await upstream.call("intake", "GET", f"/v1/reports/{report_id}", passthrough=(404,))
    return response.json() if response.status_code == 200 else None
