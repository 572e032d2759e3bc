"""The agencies' own API: read and acknowledge a dispatch and report field status with
the agency's key, or acknowledge through the signed link in a dispatch e-mail.

An agency key acts on that agency's dispatches only: another agency's dispatch is a
404, exactly as one that does not exist (a key must not tell which dispatches exist).
The e-mail link is its own credential (signed, expiring, for one dispatch). Its GET
only shows a confirmation page, and the POST from that page acknowledges: mail
scanners that open every link must not acknowledge for a human.
"""

import html
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.common.web import PROBLEM_RESPONSES, Connection, Pool, Problem
from services.notifier import acks, signing, store
from services.notifier import clock as clocks
from services.notifier.dependencies import Clock, Metrics, Settings
from services.notifier.settings import NotifierSettings

_bearer = HTTPBearer(auto_error=False, description="The agency's API key, as `Authorization: Bearer <key>`")
AGENCY_ERRORS = {
    **PROBLEM_RESPONSES,
    404: {**PROBLEM_RESPONSES[422], "description": "No such dispatch of your agency"},
}


class AcknowledgementPublic(BaseModel):
    dispatch_id: UUID
    agency: str
    acknowledged_at: datetime
    via: str = Field(description="api or email_link: how the first acknowledgement came")
    already_acknowledged: bool = Field(description="True when an earlier call had acknowledged it")


class AgencyDispatchPublic(BaseModel):
    dispatch_id: UUID
    report_id: UUID
    agency: str
    state: str = Field(description="pending, delivered, failed, stopped (acknowledged first) or cancelled")
    channel: str | None = Field(description="how it was delivered (webhook, email)")
    attempts: int
    finished_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_via: str | None = Field(description="api, email_link or phone")
    field_status: str | None
    cancelled_at: datetime | None


class FieldStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["on_the_way", "on_scene", "done"]
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


class FieldStatusPublic(BaseModel):
    dispatch_id: UUID
    agency: str
    field_status: str
    changed: bool = Field(description="False when this was the current status already")
    acknowledged_at: datetime


async def agency_of_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The agency whose key the request bears. It takes a connection of its own, and only
    when a key is sent: a request without one costs none."""
    agency = None
    if credentials is not None:
        async with request.app.state.pool.acquire() as conn:
            agency = await store.agency_for_key(conn, signing.hash_api_key(credentials.credentials))
    if agency is None:
        raise Problem(
            401,
            "Unauthorized",
            "Send your agency's API key as `Authorization: Bearer <key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return agency


AgencyOfKey = Annotated[str, Depends(agency_of_key)]
router = APIRouter(prefix="/v1", tags=["agency"], responses=AGENCY_ERRORS)


async def own_dispatch(conn, dispatch_id: UUID, agency: str, *, for_update: bool = True):
    row = await store.dispatch_row(conn, dispatch_id, for_update=for_update)
    if row is None or row["agency"] != agency:
        raise Problem(404, "Not found", f"{agency} has no dispatch {dispatch_id}.")
    return row


@router.get(
    "/agency/dispatches/{dispatch_id}",
    summary="Your agency's dispatch as the Command Center sees it: delivery, acknowledgement, field status",
)
async def read(dispatch_id: UUID, agency: AgencyOfKey, conn: Connection) -> AgencyDispatchPublic:
    row = await own_dispatch(conn, dispatch_id, agency, for_update=False)
    return AgencyDispatchPublic(**{name: row[name] for name in AgencyDispatchPublic.model_fields})


@router.post(
    "/dispatches/{dispatch_id}/acknowledgement",
    summary="Acknowledge your agency's dispatch: stops every further notice for it (idempotent)",
)
async def acknowledge(
    dispatch_id: UUID, agency: AgencyOfKey, conn: Connection, clock: Clock, metrics: Metrics
) -> AcknowledgementPublic:
    async with conn.transaction():
        row = await own_dispatch(conn, dispatch_id, agency)
        ack = await acks.acknowledge(conn, row, "api", clock.now(), metrics)
    return AcknowledgementPublic(
        dispatch_id=ack.dispatch_id,
        agency=ack.agency,
        acknowledged_at=ack.acknowledged_at,
        via=ack.via,
        already_acknowledged=not ack.new,
    )


@router.post(
    "/dispatches/{dispatch_id}/field-status",
    summary="Report your unit's status: on_the_way, on_scene, done (also acknowledges)",
    responses={409: {**PROBLEM_RESPONSES[422], "description": "A step back (e.g. on_scene after done)"}},
)
async def post_field_status(
    dispatch_id: UUID, body: FieldStatusChange, agency: AgencyOfKey, conn: Connection, clock: Clock, metrics: Metrics
) -> FieldStatusPublic:
    async with conn.transaction():
        row = await own_dispatch(conn, dispatch_id, agency)
        try:
            changed = await acks.report_field_status(conn, row, body.status, body.note, clock.now(), metrics)
        except acks.FieldStatusBackwards as exc:
            raise Problem(409, "Conflict", str(exc)) from None
        row = await store.dispatch_row(conn, dispatch_id)
    return FieldStatusPublic(
        dispatch_id=dispatch_id,
        agency=agency,
        field_status=row["field_status"],
        changed=changed,
        acknowledged_at=row["acknowledged_at"],
    )


# The e-mail link's routes read the token before they take a connection (a mail
# scanner's or a guesser's request costs none), and acknowledging reads the dispatch
# first, then locks it in a transaction of its own: they acquire for themselves.
link_router = APIRouter(prefix="/v1", tags=["agency"])
LINK_ERRORS = {400: {"description": "The link is malformed, altered or expired (an HTML page says which)"}}


def page(title: str, text: str, status: int = 200, form: bool = False) -> HTMLResponse:
    button = '<form method="post"><button type="submit">Konfirmasi / Acknowledge</button></form>' if form else ""
    return HTMLResponse(
        f"<!doctype html><html lang='id'><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>",
        status_code=status,
    )


async def dispatch_for(pool, token: str, clock: clocks.Clock, settings: NotifierSettings):
    link_secret = settings.ack_link_secret.get_secret_value()
    try:
        dispatch_id = signing.read_ack_token(link_secret, token, int(clock.now().timestamp()))
    except signing.InvalidToken as exc:
        return None, page("Tautan tidak berlaku / Link not valid", str(exc), 400)
    async with pool.acquire() as conn:
        row = await store.dispatch_row(conn, dispatch_id)
    if row is None:
        return None, page("Tidak ditemukan / Not found", f"No dispatch {dispatch_id}.", 404)
    return row, None


@link_router.get(
    "/ack/{token}",
    response_class=HTMLResponse,
    responses=LINK_ERRORS,
    summary="The e-mail's acknowledgement link: a confirmation page (does not acknowledge by itself)",
)
async def ack_page(token: str, pool: Pool, clock: Clock, settings: Settings):
    row, error = await dispatch_for(pool, token, clock, settings)
    if error:
        return error
    if row["acknowledged_at"] is not None:
        return page(
            "Sudah dikonfirmasi / Already acknowledged",
            f"Dispatch {row['dispatch_id']} ({row['agency']}) was acknowledged at "
            f"{row['acknowledged_at'].isoformat(timespec='seconds')}.",
        )
    return page(
        "Konfirmasi dispatch / Acknowledge dispatch",
        f"Dispatch {row['dispatch_id']} for {row['agency']}: confirm that your agency has it and acts on it. "
        "Reminders and escalation stop.",
        form=True,
    )


@link_router.post(
    "/ack/{token}",
    response_class=HTMLResponse,
    responses=LINK_ERRORS,
    summary="Acknowledge through the e-mail's link",
)
async def ack_by_link(token: str, pool: Pool, clock: Clock, settings: Settings, metrics: Metrics):
    row, error = await dispatch_for(pool, token, clock, settings)
    if error:
        return error
    async with pool.acquire() as conn, conn.transaction():
        locked = await store.dispatch_row(conn, row["dispatch_id"], for_update=True)
        ack = await acks.acknowledge(conn, locked, "email_link", clock.now(), metrics)
    at = ack.acknowledged_at.isoformat(timespec="seconds")
    return page("Terima kasih / Acknowledged", f"Dispatch {ack.dispatch_id} ({ack.agency}) acknowledged at {at}.")
