"""Roster API: generate a month, read it, and the supervisor's swaps and take-overs.

Every generation and edit is recorded with who and why (`roster_changes`) and
published as `roster.changed`. An edit that would break the rest rule is refused with
409 and the violations, unless the request says `"override": true`: then it is applied
and recorded as overridden, with the violations it accepted (a sick operator's shift
must be covered even if the only one free had a short night)."""

import json
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, StringConstraints

from schemas.events import RosterChanged, RosterEntryChange
from services.common.outbox import enqueue
from services.common.web import PROBLEM_RESPONSES, Connection, Problem
from services.shifts import store
from services.shifts.api import existing_operator
from services.shifts.dependencies import Clock, Metrics, RosterRule
from services.shifts.rotation import (
    RestRule,
    RosterEntry,
    RosterInfeasible,
    Violation,
    cycle,
    generate_month,
    violations_caused,
)

# Years 2000-2999 in ASCII digits: `\d` also takes other scripts' digits, and year 0000
# is no date at all (both were a 500).
Month = Annotated[
    str, Path(pattern=r"^2[0-9]{3}-(0[1-9]|1[0-2])$", description="YYYY-MM, from 2000", examples=["2026-03"])
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
CONFLICT = {
    404: {**PROBLEM_RESPONSES[422], "description": "No such roster, entry or operator"},
    409: {**PROBLEM_RESPONSES[422], "description": "Breaks the rest rule (`violations`), or not possible now"},
}
NEIGHBOURS = timedelta(days=2)  # a shift's rest depends only on the shifts within two days of it


class Attribution(BaseModel):
    changed_by: Name = Field(description="who makes the change (the supervisor)")
    reason: Text = Field(description="why")
    override: bool = Field(False, description="apply it although it breaks the rest rule (recorded as such)")


class RosterGenerate(Attribution):
    reason: Text = "monthly roster"


class SwapRequest(Attribution):
    entry_ids: list[int] = Field(
        min_length=2, max_length=2, description="two roster entries of two operators: each takes the other's shift"
    )


class TakeOverRequest(Attribution):
    entry_id: int = Field(description="the roster entry (a shift of one operator)")
    operator_id: UUID = Field(description="who takes that shift over")


class RosterEntryPublic(BaseModel):
    id: int
    day: date = Field(description="the local date the shift starts (malam runs into the next day)")
    shift: str
    starts_at: datetime
    ends_at: datetime
    operator_id: UUID
    operator_name: str


class OperatorTotals(BaseModel):
    operator_id: UUID
    operator_name: str
    shifts: dict[str, int]


class RosterMonthPublic(BaseModel):
    month: str
    cycle: list[str] = Field(description="the rotation each operator follows, a day at a time")
    rule: str
    generated_by: str
    generated_at: datetime
    totals: list[OperatorTotals]
    entries: list[RosterEntryPublic]


class ShiftRef(BaseModel):
    day: date
    shift: str


class ViolationPublic(BaseModel):
    operator_id: UUID
    rule: str = Field(description="min_rest or one_per_day")
    first: ShiftRef
    second: ShiftRef
    rest_hours: float


class RosterChangePublic(BaseModel):
    id: int
    kind: str = Field(description="generated, swap or take_over")
    month: str
    entries: list[RosterEntryChange]
    changed_by: str
    reason: str
    override: bool
    violations: list[ViolationPublic]
    changed_at: datetime


def first_day(month: str) -> date:
    year, number = month.split("-")
    return date(int(year), int(number), 1)


def describe(violation: Violation, names: dict) -> str:
    who = names.get(violation.operator_id, str(violation.operator_id))
    a, b = violation.first, violation.second
    if violation.rule == "one_per_day":
        return f"{who} would work {a.shift} and {b.shift} on {a.day}"
    hours = violation.rest / timedelta(hours=1)
    return f"{who} would work {a.shift} on {a.day} and {b.shift} on {b.day} with {hours:g} h rest between"


async def refuse_unless_overridden(conn, violations: list[Violation], override: bool, rule: RestRule) -> None:
    if not violations or override:
        return
    names = {r["id"]: r["name"] for r in await store.operators(conn)}
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    raise Problem(
        409,
        "Breaks the rest rule",
        f"{describe(violations[0], names)}{more}. The rule: {rule.describe()}. "
        'Send "override": true with the reason to apply it anyway; it is recorded.',
        violations=[v.as_dict() for v in violations],
    )


router = APIRouter(prefix="/v1/roster", tags=["roster"], responses=PROBLEM_RESPONSES)


async def save_change(conn, *, kind, month: date, changes: list[dict], body: Attribution, violations, now):
    change_id = await store.record_change(
        conn,
        kind=kind,
        month=month,
        entries=changes,
        changed_by=body.changed_by,
        reason=body.reason,
        override=bool(violations),
        violations=[v.as_dict() for v in violations],
        now=now,
    )
    event = RosterChanged(
        change_id=change_id,
        kind=kind,
        month=f"{month:%Y-%m}",
        entries=[RosterEntryChange(**c) for c in changes],
        changed_by=body.changed_by,
        reason=body.reason,
        override=bool(violations),
        violations=len(violations),
        at=now,
    )
    await enqueue(conn, [store.record(event, key=store.ROSTER_KEY, now=now)])
    return await one_change(conn, change_id)


async def one_change(conn, change_id: int) -> RosterChangePublic:
    row = await store.roster_change(conn, change_id)
    return change_public(row)


async def editable(conn, entry_id: int, now: datetime) -> store.StoredEntry:
    entry = await store.entry_for_update(conn, entry_id)
    if entry is None:
        raise Problem(404, "Not found", f"No roster entry {entry_id}.")
    if entry.ends_at <= now:
        raise Problem(409, "Shift is over", f"Entry {entry_id} ({entry.shift} on {entry.day}) has ended.")
    return entry


async def refuse_double_booking(conn, entry: store.StoredEntry, operator_id: UUID) -> None:
    """Putting someone on a shift they are already on is never right, override or not."""
    same = await store.roster_entries(conn, entry.day, entry.day, operator_ids=[operator_id])
    if any(e.shift == entry.shift for e in same):
        raise Problem(409, "Already on that shift", f"The operator already works {entry.shift} on {entry.day}.")


# The literal paths first: /swaps must not be read as a month.
@router.post("/swaps", status_code=201, summary="Two operators exchange shifts", responses=CONFLICT)
async def swap(
    body: SwapRequest, conn: Connection, clock: Clock, metrics: Metrics, rule: RosterRule
) -> RosterChangePublic:
    now = clock()
    async with conn.transaction():
        await store.lock_roster(conn)
        if body.entry_ids[0] == body.entry_ids[1]:
            raise Problem(422, "Invalid request", "A swap needs two different entries.")
        a, b = [await editable(conn, entry_id, now) for entry_id in body.entry_ids]
        if a.operator_id == b.operator_id:
            raise Problem(422, "Invalid request", "Both entries are the same operator's: a swap needs two.")
        await refuse_double_booking(conn, a, b.operator_id)
        await refuse_double_booking(conn, b, a.operator_id)
        neighbours = await store.roster_entries(
            conn,
            min(a.day, b.day) - NEIGHBOURS,
            max(a.day, b.day) + NEIGHBOURS,
            operator_ids=[a.operator_id, b.operator_id],
        )
        moved = {a.id: b.operator_id, b.id: a.operator_id}
        after = [RosterEntry(e.day, e.shift, moved.get(e.id, e.operator_id)) for e in neighbours]
        templates = await store.load_templates(conn)
        caused = violations_caused([e.entry for e in neighbours], after, templates, rule)
        await refuse_unless_overridden(conn, caused, body.override, rule)
        for entry_id, operator_id in moved.items():
            await store.reassign(conn, entry_id, operator_id)
        changes = [change(a, b.operator_id), change(b, a.operator_id)]
        result = await save_change(
            conn, kind="swap", month=a.day.replace(day=1), changes=changes, body=body, violations=caused, now=now
        )
    metrics.roster_changes.labels("swap", str(result.override).lower()).inc()
    return result


@router.post("/take-overs", status_code=201, summary="An operator takes over another's shift", responses=CONFLICT)
async def take_over(
    body: TakeOverRequest, conn: Connection, clock: Clock, metrics: Metrics, rule: RosterRule
) -> RosterChangePublic:
    now = clock()
    async with conn.transaction():
        await store.lock_roster(conn)
        entry = await editable(conn, body.entry_id, now)
        taker = await existing_operator(conn, body.operator_id)
        if not taker["active"]:
            raise Problem(409, "Operator inactive", f"Operator {body.operator_id} is not active.")
        if entry.operator_id == body.operator_id:
            raise Problem(422, "Invalid request", "That shift is already this operator's.")
        await refuse_double_booking(conn, entry, body.operator_id)
        neighbours = await store.roster_entries(
            conn, entry.day - NEIGHBOURS, entry.day + NEIGHBOURS, operator_ids=[body.operator_id]
        )
        before = [e.entry for e in neighbours]
        after = [*before, RosterEntry(entry.day, entry.shift, body.operator_id)]
        caused = violations_caused(before, after, await store.load_templates(conn), rule)
        await refuse_unless_overridden(conn, caused, body.override, rule)
        await store.reassign(conn, entry.id, body.operator_id)
        result = await save_change(
            conn,
            kind="take_over",
            month=entry.day.replace(day=1),
            changes=[change(entry, body.operator_id)],
            body=body,
            violations=caused,
            now=now,
        )
    metrics.roster_changes.labels("take_over", str(result.override).lower()).inc()
    return result


@router.post(
    "/{month}",
    status_code=201,
    summary="Generate a month's roster from the active operators",
    description="The rotation and the rest rule are described in services/shifts/rotation.py and the README.",
    responses=CONFLICT,
)
async def generate(
    month: Month, body: RosterGenerate, conn: Connection, clock: Clock, metrics: Metrics, rule: RosterRule
) -> RosterMonthPublic:
    now, first = clock(), first_day(month)
    async with conn.transaction():
        await store.lock_roster(conn)
        if await store.month_row(conn, first):
            raise Problem(409, "Already generated", f"The roster for {month} exists: edit it with swaps.")
        operator_ids = await store.roster_operator_ids(conn)
        templates = await store.load_templates(conn)
        try:
            entries = generate_month(first.year, first.month, operator_ids, templates, rule)
        except RosterInfeasible as exc:
            raise Problem(409, "Cannot build the roster", str(exc), operators=len(operator_ids)) from None
        last = store.last_day(first)
        # The months around may exist (with other operators): the rest rule holds across the boundary.
        neighbours = await store.roster_entries(conn, first - NEIGHBOURS, first - timedelta(days=1))
        neighbours += await store.roster_entries(conn, last + timedelta(days=1), last + NEIGHBOURS)
        before = [e.entry for e in neighbours]
        caused = violations_caused(before, before + entries, templates, rule)
        await refuse_unless_overridden(conn, caused, body.override, rule)
        pattern = [code or "off" for code in cycle(templates, len(operator_ids))]
        stored = await store.insert_month(
            conn, first, pattern, rule.min_rest / timedelta(hours=1), body.changed_by, now, entries, templates
        )
        changes = [change(e, e.operator_id, generated=True) for e in stored]
        await save_change(conn, kind="generated", month=first, changes=changes, body=body, violations=caused, now=now)
    metrics.roster_changes.labels("generated", str(bool(caused)).lower()).inc()
    return await month_public(conn, first)


@router.get("/{month}", summary="A month's roster", responses=CONFLICT)
async def get_month(
    month: Month,
    conn: Connection,
    operator_id: Annotated[UUID | None, Query(description="only this operator's shifts")] = None,
) -> RosterMonthPublic:
    return await month_public(conn, first_day(month), operator_id)


@router.get("/{month}/changes", summary="Every generation, swap and take-over of a month, oldest first")
async def get_changes(month: Month, conn: Connection) -> list[RosterChangePublic]:
    return [change_public(r) for r in await store.changes(conn, first_day(month))]


def change(entry: store.StoredEntry, to_operator: UUID, *, generated: bool = False) -> dict:
    return {
        "entry_id": entry.id,
        "day": entry.day,
        "shift": entry.shift,
        "from_operator_id": None if generated else entry.operator_id,
        "to_operator_id": to_operator,
    }


def change_public(row) -> RosterChangePublic:
    return RosterChangePublic(
        id=row["id"],
        kind=row["kind"],
        month=f"{row['month']:%Y-%m}",
        entries=[RosterEntryChange.model_validate(e) for e in json.loads(row["entries"])],
        changed_by=row["changed_by"],
        reason=row["reason"],
        override=row["override"],
        violations=[ViolationPublic.model_validate(v) for v in json.loads(row["violations"])],
        changed_at=row["changed_at"],
    )


async def month_public(conn, first: date, operator_id: UUID | None = None) -> RosterMonthPublic:
    row = await store.month_row(conn, first)
    if row is None:
        raise Problem(404, "Not found", f"No roster for {first:%Y-%m} yet: generate it with POST.")
    entries = await store.roster_entries(
        conn, first, store.last_day(first), operator_ids=[operator_id] if operator_id else None
    )
    counts: dict[UUID, Counter] = {}
    names: dict[UUID, str] = {}
    for e in entries:
        counts.setdefault(e.operator_id, Counter())[e.shift] += 1
        names[e.operator_id] = e.operator_name
    return RosterMonthPublic(
        month=f"{first:%Y-%m}",
        cycle=row["cycle"],
        rule=RestRule(timedelta(hours=float(row["min_rest_hours"]))).describe(),
        generated_by=row["generated_by"],
        generated_at=row["generated_at"],
        totals=[
            OperatorTotals(operator_id=op, operator_name=names[op], shifts=dict(counts[op]))
            for op in sorted(names, key=lambda op: names[op])
        ],
        entries=[RosterEntryPublic(**vars(e)) for e in entries],
    )
