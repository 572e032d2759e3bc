"""Handover at shift change: notes from the leaving operators to the incoming ones,
and who of the leaving shift is still checked in. (Passing open reports on comes with
assignment.)"""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints

from services.common.web import PROBLEM_RESPONSES, Connection, Problem
from services.shifts import store
from services.shifts.api import OperatorPublic, ShiftPublic, existing_operator, operator_public
from services.shifts.dependencies import Clock
from services.shifts.roster import shift_at

RESPONSES = {
    404: {**PROBLEM_RESPONSES[422], "description": "No such operator"},
    409: {**PROBLEM_RESPONSES[422], "description": "The operator is not checked in"},
}


class HandoverNoteCreate(BaseModel):
    operator_id: UUID = Field(description="the leaving operator who writes it")
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class HandoverNotePublic(BaseModel):
    id: int
    operator_id: UUID
    operator_name: str
    from_shift: str
    from_shift_starts_at: datetime
    for_shift: str
    for_shift_starts_at: datetime
    note: str
    written_at: datetime


class HandoverPublic(BaseModel):
    now: datetime
    shift: ShiftPublic
    notes: list[HandoverNotePublic] = Field(description="notes for this shift, newest first")
    leaving: list[OperatorPublic] = Field(description="operators still checked in although their shift has ended")


router = APIRouter(prefix="/v1", tags=["handover"], responses=PROBLEM_RESPONSES)


@router.post(
    "/handover-notes",
    status_code=201,
    summary="A note from an operator at work to the next shift",
    description="The note is for the shift that follows the one the operator checked in for.",
    responses=RESPONSES,
)
async def add_note(body: HandoverNoteCreate, conn: Connection, clock: Clock) -> HandoverNotePublic:
    now = clock()
    operator = await existing_operator(conn, body.operator_id)
    if not operator["on_duty"]:
        raise Problem(409, "Not checked in", "Handover notes come from an operator at work: check in first.")
    templates = await store.load_templates(conn)
    leaving = shift_at(operator["shift_starts_at"] or operator["checked_in_at"], templates)
    incoming = shift_at(leaving.ends_at, templates)
    row = await store.add_note(conn, body.operator_id, leaving, incoming, body.note, now)
    return HandoverNotePublic(**dict(await store.note(conn, row["id"])))


@router.get("/handover", summary="The shift now: the notes left for it and who of the last shift is still here")
async def handover(conn: Connection, clock: Clock) -> HandoverPublic:
    now = clock()
    shift = shift_at(now, await store.load_templates(conn))
    notes = await store.notes_for(conn, shift.starts_at)
    operators = await store.checked_in(conn)
    return HandoverPublic(
        now=now,
        shift=ShiftPublic.of(shift),
        notes=[HandoverNotePublic(**dict(n)) for n in notes],
        leaving=[operator_public(o) for o in operators if o["shift_ends_at"] and o["shift_ends_at"] <= now],
    )
