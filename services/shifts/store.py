"""Shifts' SQL: operators and presence, the roster and its changes, coverage episodes
and handover notes. Events go out through the outbox in the caller's transaction."""

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

import asyncpg

from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import Event, OperatorStatusChanged
from services.shifts.roster import ShiftOccurrence, ShiftTemplate
from services.shifts.rotation import RosterEntry, month_days, occurrence

SOURCE = "e112/shifts"
# Keys on e112.shifts: operator events by operator id; these by what they are about,
# so that each kind stays in order for a reader.
COVERAGE_KEY = "coverage"
ROSTER_KEY = "roster"


def record(event: Event, *, key: str | UUID, now: datetime) -> KafkaRecord:
    return encode(event, topic=topics.SHIFTS, key=str(key), source=SOURCE, time=now)


def status_changed(
    operator_id: UUID, shift: str | None, status: str, previous: str, report_id: UUID | None, now: datetime
) -> KafkaRecord:
    event = OperatorStatusChanged(
        operator_id=operator_id, shift=shift, status=status, previous=previous, report_id=report_id, at=now
    )
    return record(event, key=operator_id, now=now)


async def load_templates(conn: asyncpg.Connection) -> list[ShiftTemplate]:
    rows = await conn.fetch("SELECT code, starts, ends, operators_needed FROM shift_templates ORDER BY starts")
    return [ShiftTemplate(r["code"], r["starts"], r["ends"], r["operators_needed"]) for r in rows]


# --- operators and presence -------------------------------------------------------

OPERATOR_SELECT = """
    SELECT o.id, o.name, o.active, p.checked_in_at, p.id IS NOT NULL AS on_duty,
           coalesce(p.status, 'offline') AS status, p.status_since, p.report_id,
           p.shift, p.shift_starts_at, p.shift_ends_at
    FROM operators o LEFT JOIN presence p ON p.operator_id = o.id AND p.checked_out_at IS NULL
"""


async def operator(conn: asyncpg.Connection, operator_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(OPERATOR_SELECT + " WHERE o.id = $1", operator_id)


async def operators(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(OPERATOR_SELECT + " ORDER BY o.name, o.id")


async def checked_in(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(OPERATOR_SELECT + " WHERE p.id IS NOT NULL ORDER BY p.checked_in_at, o.name, o.id")


async def open_presence(conn: asyncpg.Connection, operator_id: UUID, now: datetime, shift: ShiftOccurrence) -> bool:
    """Check in; False if already checked in."""
    opened = await conn.fetchval(
        """
        INSERT INTO presence (operator_id, shift, checked_in_at, status, status_since, shift_starts_at, shift_ends_at)
        VALUES ($1, $2, $3, 'available', $3, $4, $5)
        ON CONFLICT (operator_id) WHERE checked_out_at IS NULL DO NOTHING RETURNING true
        """,
        operator_id,
        shift.code,
        now,
        shift.starts_at,
        shift.ends_at,
    )
    return bool(opened)


async def close_presence(conn: asyncpg.Connection, operator_id: UUID, now: datetime) -> asyncpg.Record | None:
    """Check out; the closed row, or None if not checked in."""
    return await conn.fetchrow(
        "UPDATE presence SET checked_out_at = $2 WHERE operator_id = $1 AND checked_out_at IS NULL "
        "RETURNING shift, status, report_id",
        operator_id,
        now,
    )


async def lock_presence(conn: asyncpg.Connection, operator_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, shift, status, status_by, report_id FROM presence "
        "WHERE operator_id = $1 AND checked_out_at IS NULL FOR UPDATE",
        operator_id,
    )


async def set_status(conn, presence_id: int, status: str, report_id: UUID | None, now: datetime) -> None:
    await conn.execute(
        "UPDATE presence SET status = $2, report_id = $3, status_since = $4, status_by = 'operator' WHERE id = $1",
        presence_id,
        status,
        report_id,
        now,
    )


async def count_checked_in_for(conn: asyncpg.Connection, shift_starts_at: datetime) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM presence WHERE checked_out_at IS NULL AND shift_starts_at = $1", shift_starts_at
    )


async def report_overstays(conn: asyncpg.Connection, ended_before: datetime, now: datetime) -> list[asyncpg.Record]:
    """Mark and return the check-ins whose shift ended before `ended_before`, not yet reported."""
    return await conn.fetch(
        """
        UPDATE presence SET overstay_reported_at = $2
        WHERE checked_out_at IS NULL AND overstay_reported_at IS NULL AND shift_ends_at <= $1
        RETURNING operator_id, shift, shift_ends_at, status
        """,
        ended_before,
        now,
    )


async def presence_by_shift(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT shift, count(*) AS on_duty, count(*) FILTER (WHERE status = 'available') AS free
        FROM presence WHERE checked_out_at IS NULL AND shift IS NOT NULL GROUP BY shift
        """
    )


# --- coverage episodes ------------------------------------------------------------


async def lock_coverage(conn: asyncpg.Connection) -> None:
    """Serialise coverage checks (the loop, check-ins, replicas) for this transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('e112-shifts-coverage'))")


async def open_episode(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM coverage_episodes WHERE ended_at IS NULL")


async def start_episode(conn, shift: ShiftOccurrence, present: int, reason: str, now: datetime) -> None:
    await conn.execute(
        """
        INSERT INTO coverage_episodes (shift, shift_starts_at, shift_ends_at, needed, present, reason, started_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        shift.code,
        shift.starts_at,
        shift.ends_at,
        shift.template.operators_needed,
        present,
        reason,
        now,
    )


async def end_episode(conn: asyncpg.Connection, episode_id: int, ended_at: datetime, how: str) -> None:
    await conn.execute(
        "UPDATE coverage_episodes SET ended_at = $2, ended_how = $3 WHERE id = $1", episode_id, ended_at, how
    )


# --- roster -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEntry:
    id: int
    day: date
    shift: str
    starts_at: datetime
    ends_at: datetime
    operator_id: UUID
    operator_name: str

    @property
    def entry(self) -> RosterEntry:
        return RosterEntry(self.day, self.shift, self.operator_id)


def last_day(month: date) -> date:
    return month_days(month.year, month.month)[-1]


ENTRY_SELECT = """
    SELECT e.id, e.day, e.shift, e.starts_at, e.ends_at, e.operator_id, o.name AS operator_name
    FROM roster_entries e JOIN operators o ON o.id = e.operator_id
"""


async def lock_roster(conn: asyncpg.Connection) -> None:
    """Serialise roster writes for this transaction: each edit checks the rest rule
    against what the others wrote."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('e112-shifts-roster'))")


async def roster_operator_ids(conn: asyncpg.Connection) -> list[UUID]:
    """Active operators in a stable order (the rotation keeps each one's place)."""
    return [r["id"] for r in await conn.fetch("SELECT id FROM operators WHERE active ORDER BY created_at, id")]


async def month_row(conn: asyncpg.Connection, month: date) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM roster_months WHERE month = $1", month)


async def insert_month(
    conn,
    month: date,
    cycle: list[str],
    min_rest_hours: float,
    by: str,
    now: datetime,
    entries: list[RosterEntry],
    templates: list[ShiftTemplate],
) -> list[StoredEntry]:
    await conn.execute(
        "INSERT INTO roster_months (month, cycle, min_rest_hours, generated_by, generated_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        month,
        cycle,
        min_rest_hours,
        by,
        now,
    )
    shifts = [occurrence(e, templates) for e in entries]
    await conn.execute(
        """
        INSERT INTO roster_entries (day, shift, starts_at, ends_at, operator_id)
        SELECT * FROM unnest($1::date[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::uuid[])
        """,
        [e.day for e in entries],
        [e.shift for e in entries],
        [s.starts_at for s in shifts],
        [s.ends_at for s in shifts],
        [e.operator_id for e in entries],
    )
    return await roster_entries(conn, month, last_day(month))


async def roster_entries(
    conn: asyncpg.Connection,
    first: date,
    last: date,
    *,
    operator_ids: list[UUID] | None = None,
    starts_at: datetime | None = None,
) -> list[StoredEntry]:
    rows = await conn.fetch(
        ENTRY_SELECT
        + """
        WHERE e.day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR e.operator_id = ANY($3))
          AND ($4::timestamptz IS NULL OR e.starts_at = $4)
        ORDER BY e.starts_at, o.name, e.id
        """,
        first,
        last,
        operator_ids,
        starts_at,
    )
    return [StoredEntry(**dict(r)) for r in rows]


async def entry_for_update(conn: asyncpg.Connection, entry_id: int) -> StoredEntry | None:
    row = await conn.fetchrow(ENTRY_SELECT + " WHERE e.id = $1 FOR UPDATE OF e", entry_id)
    return StoredEntry(**dict(row)) if row else None


async def reassign(conn: asyncpg.Connection, entry_id: int, operator_id: UUID) -> None:
    await conn.execute("UPDATE roster_entries SET operator_id = $2 WHERE id = $1", entry_id, operator_id)


async def record_change(
    conn: asyncpg.Connection,
    *,
    kind: str,
    month: date,
    entries: list[dict],
    changed_by: str,
    reason: str,
    override: bool,
    violations: list[dict],
    now: datetime,
) -> int:
    return await conn.fetchval(
        """
        INSERT INTO roster_changes (kind, month, entries, changed_by, reason, override, violations, changed_at)
        VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7::jsonb, $8) RETURNING id
        """,
        kind,
        month,
        json.dumps(entries, default=str),
        changed_by,
        reason,
        override,
        json.dumps(violations),
        now,
    )


async def changes(conn: asyncpg.Connection, month: date) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM roster_changes WHERE month = $1 ORDER BY id", month)


# --- handover -----------------------------------------------------------------------


async def add_note(
    conn, operator_id: UUID, from_shift: ShiftOccurrence, for_shift: ShiftOccurrence, note: str, now: datetime
) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        INSERT INTO handover_notes (operator_id, from_shift, from_shift_starts_at, for_shift, for_shift_starts_at,
                                    note, written_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
        """,
        operator_id,
        from_shift.code,
        from_shift.starts_at,
        for_shift.code,
        for_shift.starts_at,
        note,
        now,
    )


NOTE_SELECT = """
    SELECT n.id, n.operator_id, o.name AS operator_name, n.from_shift, n.from_shift_starts_at, n.for_shift,
           n.for_shift_starts_at, n.note, n.written_at
    FROM handover_notes n JOIN operators o ON o.id = n.operator_id
"""


async def note(conn: asyncpg.Connection, note_id: int) -> asyncpg.Record:
    return await conn.fetchrow(NOTE_SELECT + " WHERE n.id = $1", note_id)


async def notes_for(conn: asyncpg.Connection, shift_starts_at: datetime, limit: int = 50) -> list[asyncpg.Record]:
    return await conn.fetch(
        NOTE_SELECT + " WHERE n.for_shift_starts_at = $1 ORDER BY n.written_at DESC, n.id DESC LIMIT $2",
        shift_starts_at,
        limit,
    )


# --- tasks (tasks.py, tasks_api.py; the assignment's own SQL is in assigner.py) -----


async def open_task(
    conn: asyncpg.Connection, report_id: UUID, reason: str, detail: dict, now: datetime, agency: str = ""
) -> UUID | None:
    """A new task, or None when the report has an open one for this reason (and agency,
    for a task about one agency) already."""
    return await conn.fetchval(
        """
        INSERT INTO tasks (id, report_id, reason, detail, state, created_at, agency)
        VALUES ($1, $2, $3, $4::jsonb, 'queued', $5, $6)
        ON CONFLICT (report_id, reason, agency) WHERE state <> 'closed' DO NOTHING RETURNING id
        """,
        uuid.uuid4(),
        report_id,
        reason,
        json.dumps(detail, default=str),
        now,
        agency,
    )


async def reports_with_open_task(conn: asyncpg.Connection, report_ids: list[UUID], reason: str) -> set[UUID]:
    rows = await conn.fetch(
        "SELECT DISTINCT report_id FROM tasks WHERE report_id = ANY($1::uuid[]) AND reason = $2 AND state <> 'closed'",
        report_ids,
        reason,
    )
    return {r["report_id"] for r in rows}


async def open_tasks_for_update(conn: asyncpg.Connection, report_id: UUID, reason: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM tasks WHERE report_id = $1 AND reason = $2 AND state <> 'closed' FOR UPDATE", report_id, reason
    )


async def all_open_tasks_for_update(conn: asyncpg.Connection, report_ids: list[UUID]) -> list[asyncpg.Record]:
    """Locked in one order (their creation), so that two such closings never wait on
    each other in a circle."""
    return await conn.fetch(
        "SELECT * FROM tasks WHERE report_id = ANY($1::uuid[]) AND state <> 'closed' ORDER BY created_at, seq "
        "FOR UPDATE",
        report_ids,
    )


async def task(conn: asyncpg.Connection, task_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM tasks WHERE id = $1{lock}", task_id)


async def tasks(
    conn: asyncpg.Connection, *, state: str | None, operator_id: UUID | None, report_id: UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first, filtered by whichever of state, operator and report are given."""
    return await conn.fetch(
        """
        SELECT * FROM tasks WHERE ($1::text IS NULL OR state = $1) AND ($2::uuid IS NULL OR operator_id = $2)
          AND ($3::uuid IS NULL OR report_id = $3)
        ORDER BY created_at DESC, seq DESC LIMIT $4
        """,
        state,
        operator_id,
        report_id,
        limit,
    )


async def queued_tasks(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM tasks WHERE state = 'queued' ORDER BY created_at, seq")


async def operator_exists(conn: asyncpg.Connection, operator_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT true FROM operators WHERE id = $1", operator_id))


async def add_operator(conn: asyncpg.Connection, operator_id: UUID, name: str) -> None:
    await conn.execute("INSERT INTO operators (id, name) VALUES ($1, $2)", operator_id, name)


async def roster_change(conn: asyncpg.Connection, change_id: int) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM roster_changes WHERE id = $1", change_id)
