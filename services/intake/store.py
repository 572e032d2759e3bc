"""Intake's SQL. Every write that must reach Kafka goes through the outbox in the same
transaction."""

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from schemas import topics
from schemas.catalog import Verification
from schemas.envelope import encode
from schemas.events import (
    EventCaller,
    EventLocation,
    ReportClosed,
    ReportReceived,
    ReportReopened,
    ReportUnlinked,
    ReportVerified,
)
from schemas.reports import ReportCreate
from services.common.outbox import enqueue, headers_json
from services.intake.linking import Candidate, Link, Place, desa_key
from services.intake.status import STATUS_NEUTRAL_EVENTS, Entry, summarise

SOURCE = "e112/intake"


def request_hash(report: ReportCreate) -> str:
    """A hash of the validated body, so `0812…` and `+62812…` count as the same request."""
    return hashlib.sha256(report.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class FirstRequest:
    report_id: UUID
    request_hash: str


@dataclass(frozen=True)
class KeyClaim:
    """A request's Idempotency-Key, to reserve for the report it would file."""

    client: str
    key: str
    report_id: UUID
    digest: str


async def claim_idempotency_keys(
    conn: asyncpg.Connection, claims: list[KeyClaim], ttl: timedelta
) -> dict[tuple[str, str], FirstRequest]:
    """Reserve each claim's key for its request, and return, by (client, key), the
    unexpired first requests of the keys already used: those requests file nothing. An
    expired key is taken over by its new request. The claims' keys must be distinct.

    Keys are claimed in (client, key) order: a request waits on a key another transaction
    holds until that one ends, and two batches that share keys wait in one order, never
    on each other."""
    if not claims:
        return {}
    ordered = sorted(claims, key=lambda c: (c.client, c.key))
    columns = (
        [c.client for c in ordered],
        [c.key for c in ordered],
        [c.report_id for c in ordered],
        [c.digest for c in ordered],
    )
    reserved = await conn.fetch(
        """
        INSERT INTO idempotency_keys (client, key, report_id, request_hash)
        SELECT client, key, report_id, digest
        FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[])
             WITH ORDINALITY AS c(client, key, report_id, digest, n)
        ORDER BY n
        ON CONFLICT DO NOTHING RETURNING client, key
        """,
        *columns,
    )
    if len(reserved) == len(ordered):
        return {}
    mine = {(r["client"], r["key"]) for r in reserved}
    used = [c for c in ordered if (c.client, c.key) not in mine]
    firsts = await conn.fetch(
        """
        SELECT client, key, report_id, request_hash, created_at > now() - $3::interval AS live
        FROM idempotency_keys WHERE (client, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY client, key FOR UPDATE
        """,
        [c.client for c in used],
        [c.key for c in used],
        ttl,
    )
    live = {(r["client"], r["key"]): FirstRequest(r["report_id"], r["request_hash"]) for r in firsts if r["live"]}
    expired = [c for c in used if (c.client, c.key) not in live]
    if expired:
        await conn.execute(
            """
            UPDATE idempotency_keys SET report_id = c.report_id, request_hash = c.digest, created_at = now()
            FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[]) AS c(client, key, report_id, digest)
            WHERE idempotency_keys.client = c.client AND idempotency_keys.key = c.key
            """,
            [c.client for c in expired],
            [c.key for c in expired],
            [c.report_id for c in expired],
            [c.digest for c in expired],
        )
    return live


async def forget_expired_idempotency_keys(conn: asyncpg.Connection, ttl: timedelta) -> int:
    result = await conn.execute("DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval", ttl)
    return int(result.split()[-1])


_OPEN_INCIDENT = """
    kind = 'emergency' AND linked_to IS NULL
    AND status NOT IN ('done', 'closed', 'recorded', 'awaiting_verification')
"""


async def open_incidents(conn: asyncpg.Connection, category: str, since: datetime, *, exclude: UUID) -> list[Candidate]:
    """Emergencies of `category` since `since` that are incidents of their own (not
    linked) and not finished or closed. A report held for verification is no incident yet: a call
    about the same fire must not wait for an SMS's verdict (the operator verifying the
    SMS marks it a duplicate of the call instead)."""
    rows = await conn.fetch(
        f"SELECT id, received_at, kecamatan, desa, lat, lon FROM reports "
        f"WHERE {_OPEN_INCIDENT} AND category = $1 AND received_at >= $2 AND id <> $3",
        category,
        since,
        exclude,
    )
    return [_candidate(r) for r in rows]


@dataclass(frozen=True)
class Nearby:
    """Where a new emergency looks for the open incident it may belong to."""

    category: str
    since: datetime
    place: Place


async def open_incidents_near(
    conn: asyncpg.Connection, looks: list[Nearby], max_distance_m: float
) -> list[list[Candidate]]:
    """For each look, the open incidents (as open_incidents) that could be the same
    incident (linking.find_incident decides): within a box of `max_distance_m` around
    the place, or in the same kecamatan for the same-desa rule. That rule only decides
    when one side has no coordinates (with both, distance alone does), so with both a
    report elsewhere in the kecamatan is no candidate: in a surge the kecamatan-wide
    match brought each new report dozens of rows to decode and drop (bench --profile).
    In a disaster a category has thousands of open reports within the window; a new one
    needs only its neighbours, each part of the union through an index of its own (the
    place's box; the desa's reports without coordinates; for a look without them, the
    desa's located ones): the parts never return one report twice.
    One statement for all the looks."""
    args: list[list] = [[] for _ in range(8)]
    for look in looks:
        box = _box(look.place, max_distance_m)
        key = desa_key(look.place.desa)
        kecamatan = look.place.kecamatan if key else None
        values = (look.category, look.since, kecamatan, key, *(box or (None,) * 4))
        for column, value in zip(args, values, strict=True):
            column.append(value)
    rows = await conn.fetch(
        f"""
        SELECT q.n, r.id, r.received_at, r.kecamatan, r.desa, r.lat, r.lon
        FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::float8[], $6::float8[],
                    $7::float8[], $8::float8[])
             WITH ORDINALITY AS q(category, since, kecamatan, desa_key, lat_min, lat_max, lon_min, lon_max, n)
        CROSS JOIN LATERAL (
            SELECT id, received_at, kecamatan, desa, lat, lon FROM reports
            WHERE q.lat_min IS NOT NULL AND {_OPEN_INCIDENT} AND lat IS NOT NULL AND lon IS NOT NULL
                  AND point(lon, lat) <@ box(point(q.lon_min, q.lat_min), point(q.lon_max, q.lat_max))
                  AND category = q.category AND received_at >= q.since
            UNION ALL
            SELECT id, received_at, kecamatan, desa, lat, lon FROM reports
            WHERE q.kecamatan IS NOT NULL AND {_OPEN_INCIDENT} AND (lat IS NULL OR lon IS NULL)
                  AND category = q.category AND kecamatan = q.kecamatan AND desa_key = q.desa_key
                  AND received_at >= q.since
            UNION ALL
            SELECT id, received_at, kecamatan, desa, lat, lon FROM reports
            WHERE q.kecamatan IS NOT NULL AND q.lat_min IS NULL AND {_OPEN_INCIDENT}
                  AND lat IS NOT NULL AND lon IS NOT NULL
                  AND category = q.category AND kecamatan = q.kecamatan AND desa_key = q.desa_key
                  AND received_at >= q.since
        ) AS r
        """,
        *args,
    )
    found: list[list[Candidate]] = [[] for _ in looks]
    for r in rows:
        found[r["n"] - 1].append(_candidate(r))
    return found


def _candidate(r: asyncpg.Record) -> Candidate:
    return Candidate(r["id"], r["received_at"], Place(r["kecamatan"], r["desa"], r["lat"], r["lon"]))


_METRES_PER_DEGREE = 111_000.0  # a little under the true ~111.2 km: the box errs on the large side
_LINK_CELL_DEGREES = 0.01


def _box(place: Place, metres: float) -> tuple[float, float, float, float] | None:
    """(lat_min, lat_max, lon_min, lon_max) holding every point within `metres` of `place`."""
    if place.lat is None or place.lon is None:
        return None
    dlat = metres / _METRES_PER_DEGREE * 1.01
    dlon = min(180.0, dlat / max(math.cos(math.radians(min(abs(place.lat) + dlat, 89.0))), 1e-3))
    return place.lat - dlat, place.lat + dlat, place.lon - dlon, place.lon + dlon


def link_lock_ids(category: str, place: Place, max_distance_m: float) -> list[int]:
    """The advisory locks a new emergency holds while it looks for its incident, sorted.

    Two reports that linking could join must take a lock in common, or two callers of
    one fire a moment apart could both miss each other; reports that cannot be joined
    should share none, so that a surge is not filed one report at a time. Linking joins
    by distance (both with coordinates: the candidate lies in a grid cell that the new
    report's box touches, and each report also locks its own cell) or by the same desa
    of the same kecamatan (one lock per desa). Sorted, so two transactions never wait
    on each other in a circle."""
    keys = []
    desa = desa_key(place.desa)
    if place.kecamatan and desa:
        keys.append(f"intake-link:{category}:desa:{place.kecamatan.casefold()}:{desa}")
    box = _box(place, max_distance_m)
    if box is not None:
        cell = max(_LINK_CELL_DEGREES, 2 * max_distance_m / _METRES_PER_DEGREE)
        lat_min, lat_max, lon_min, lon_max = box
        for i in range(math.floor(lat_min / cell), math.floor(lat_max / cell) + 1):
            for j in range(math.floor(lon_min / cell), math.floor(lon_max / cell) + 1):
                keys.append(f"intake-link:{category}:cell:{cell:g}:{i}:{j}")
    ids = {int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "big", signed=True) for k in keys}
    return sorted(ids)


async def lock_for_linking(conn: asyncpg.Connection, lock_ids: list[int]) -> None:
    """Take the transaction-scoped advisory locks in the given (sorted) order."""
    if lock_ids:
        await conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k", lock_ids)


REPORT_COLUMNS = (
    "id",
    "kind",
    "category",
    "subtype",
    "description",
    "kecamatan",
    "desa",
    "address",
    "lat",
    "lon",
    "caller_name",
    "caller_phone",
    "channel",
    "casualties",
    "received_at",
    "client_name",
    "status",
    "linked_to",
    "verification",
    "filed_by",
    "client_id",
    "call_started_at",
    "desa_key",
)
_N = len(REPORT_COLUMNS)

_COLUMN_TYPES = {
    "id": "uuid",
    "lat": "float8",
    "lon": "float8",
    "casualties": "int4",
    "received_at": "timestamptz",
    "linked_to": "uuid",
    "filed_by": "uuid",
    "call_started_at": "timestamptz",
}

# The reports, their first timeline entries (at their receipt) and their report.received
# events in the outbox, in one statement for however many reports; it also counts each
# caller's pranks stored before it. The timeline joins the inserted reports so that they
# are written first.
_STORE_REPORTS = f"""
    WITH report AS (
        INSERT INTO reports ({", ".join(REPORT_COLUMNS)})
        SELECT * FROM unnest({", ".join(f"${i}::{_COLUMN_TYPES.get(c, 'text')}[]" for i, c in enumerate(REPORT_COLUMNS, 1))})
        RETURNING id, received_at
    ), timeline AS (
        INSERT INTO report_timeline (report_id, at, event, detail)
        SELECT report.id, report.received_at, e.event, e.detail::jsonb
        FROM unnest(${_N + 1}::uuid[], ${_N + 2}::text[], ${_N + 3}::text[]) WITH ORDINALITY AS e(report_id, event, detail, n)
        JOIN report ON report.id = e.report_id
        ORDER BY e.n
    ), announced AS (
        INSERT INTO outbox (topic, key, headers, value)
        SELECT topic, key, headers::jsonb, value
        FROM unnest(${_N + 4}::text[], ${_N + 5}::bytea[], ${_N + 6}::text[], ${_N + 7}::bytea[])
             WITH ORDINALITY AS o(topic, key, headers, value, n)
        ORDER BY n
    )
    SELECT (SELECT count(*) FROM reports r WHERE r.caller_phone = p.phone AND r.kind = 'prank' AND r.received_at >= p.since)
    FROM unnest(${_N + 8}::text[], ${_N + 9}::timestamptz[]) WITH ORDINALITY AS p(phone, since, n)
    ORDER BY p.n
"""  # noqa: E501


@dataclass(frozen=True)
class NewReport:
    """A report to store, decided: its link, if it is another caller of an open incident,
    and what the verification policy holds for it."""

    report_id: UUID
    report: ReportCreate
    received_at: datetime
    client_name: str
    client_id: str | None = None
    link: Link | None = None
    verification: Verification = "not_required"
    pranks_since: datetime | None = None  # the caller's pranks counted from then on (default: this report's own)


@dataclass(frozen=True)
class Stored:
    status: str
    caller_pranks: int  # pranks from the caller's phone since `pranks_since`, this report included


def status_on_receipt(report: ReportCreate, link: Link | None, verification: Verification) -> str:
    if report.kind != "emergency":
        return "recorded"
    if link:
        return "linked"
    return "awaiting_verification" if verification == "before_dispatch" else "received"


async def store_reports(conn: asyncpg.Connection, new: list[NewReport]) -> list[Stored]:
    """Insert the reports (in this order), their timeline entries and their report.received
    events, in the caller's transaction; each linked one is added to its incident's
    timeline too (a caller_added entry). Each report's prank count takes in those before
    it in `new` as a report filed alone after them would."""
    rows = [_report_row(n) for n in new]
    entries: list[tuple[UUID, str, dict]] = []
    for n in new:
        received = {"channel": n.report.channel, "kind": n.report.kind, "via": n.client_name}
        if n.verification != "not_required":
            received["verification"] = n.verification
        if n.report.operator_id:
            received["operator_id"] = str(n.report.operator_id)
        entries.append((n.report_id, "received", received))
        if n.link:
            link = {
                "incident_report_id": str(n.link.incident_report_id),
                "reason": n.link.reason,
                "distance_m": n.link.distance_m,
            }
            entries.append((n.report_id, "linked", link))
    announced = [
        encode(received_event(row), topic=topics.REPORTS, key=str(row["id"]), source=SOURCE, time=row["received_at"])
        for row in rows
    ]
    since = [n.pranks_since or n.received_at for n in new]
    stored_before = await conn.fetch(
        _STORE_REPORTS,
        *([row[c] for row in rows] for c in REPORT_COLUMNS),
        [e[0] for e in entries],
        [e[1] for e in entries],
        [json.dumps(e[2]) for e in entries],
        [a.topic for a in announced],
        [a.key for a in announced],
        [headers_json(a) for a in announced],
        [a.value for a in announced],
        [row["caller_phone"] for row in rows],
        since,
    )
    # The statement's own inserts are not visible to its counts: the earlier pranks of the
    # batch are added here, and the report's own.
    stored = []
    for i, row in enumerate(rows):
        phone = row["caller_phone"]
        in_batch = sum(
            1
            for earlier in rows[: i + 1]
            if phone is not None
            and earlier["kind"] == "prank"
            and earlier["caller_phone"] == phone
            and earlier["received_at"] >= since[i]
        )
        stored.append(Stored(row["status"], stored_before[i][0] + in_batch))
    callers_added = [
        NewEntry(
            n.link.incident_report_id,
            n.received_at,
            "caller_added",
            detail={"report_id": str(n.report_id), "reason": n.link.reason},
        )
        for n in new
        if n.link
    ]
    await add_timeline_entries(conn, callers_added)
    return stored


def _report_row(n: NewReport) -> dict[str, Any]:
    report, loc, caller = n.report, n.report.location, n.report.caller
    return {
        "id": n.report_id,
        "kind": report.kind,
        "category": report.category,
        "subtype": report.subtype,
        "description": report.description,
        "kecamatan": loc and loc.kecamatan,
        "desa": loc and loc.desa,
        "desa_key": desa_key(loc and loc.desa),
        "address": loc and loc.address,
        "lat": loc and loc.lat,
        "lon": loc and loc.lon,
        "caller_name": caller and caller.name,
        "caller_phone": caller and caller.phone,
        "channel": report.channel,
        "casualties": report.casualties,
        "received_at": n.received_at,
        "client_name": n.client_name,
        "status": status_on_receipt(report, n.link, n.verification),
        "linked_to": n.link and n.link.incident_report_id,
        "verification": n.verification,
        "filed_by": report.operator_id,
        "client_id": n.client_id,
        "call_started_at": report.call_started_at,
    }


LOCATION_COLUMNS = ("kecamatan", "desa", "address", "lat", "lon")


def received_event(row: Mapping[str, Any]) -> ReportReceived:
    """The report.received of a `reports` row (or of the values being inserted): the one
    mapping from what intake stores to what the router reads, used when the report is
    filed and when the watchdog re-drives it (watchdog.py)."""
    location = {c: row[c] for c in LOCATION_COLUMNS}
    has_caller = row["caller_name"] is not None or row["caller_phone"] is not None
    return ReportReceived(
        report_id=row["id"],
        kind=row["kind"],
        category=row["category"],
        subtype=row["subtype"],
        description=row["description"],
        location=EventLocation(**location) if any(v is not None for v in location.values()) else None,
        caller=EventCaller(name=row["caller_name"], phone=row["caller_phone"]) if has_caller else None,
        channel=row["channel"],
        casualties=row["casualties"],
        received_at=row["received_at"],
        linked_to=row["linked_to"],
        verification=row["verification"],
    )


async def unlink_report(
    conn: asyncpg.Connection, report_id: UUID, incident_id: UUID, *, operator: str, reason: str, at: datetime
) -> None:
    """Undo a link in the caller's transaction: the router then routes the report on
    its own (report.unlinked, after report.received on the same key, so in order)."""
    await conn.execute("UPDATE reports SET linked_to = NULL WHERE id = $1", report_id)
    await add_timeline_entry(
        conn,
        report_id=report_id,
        at=at,
        event="unlinked",
        detail={"incident_report_id": str(incident_id), "by": operator, "reason": reason},
    )
    await add_timeline_entry(
        conn, report_id=incident_id, at=at, event="caller_removed", detail={"report_id": str(report_id), "by": operator}
    )
    event = ReportUnlinked(report_id=report_id, incident_report_id=incident_id, unlinked_by=operator, unlinked_at=at)
    await enqueue(conn, [encode(event, topic=topics.REPORTS, key=str(report_id), source=SOURCE, time=at)])


async def fetch_report(conn: asyncpg.Connection, report_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM reports WHERE id = $1", report_id)


async def fetch_reports(conn: asyncpg.Connection, report_ids: list[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM reports WHERE id = ANY($1::uuid[])", report_ids)


async def fetch_timeline(conn: asyncpg.Connection, report_id: UUID) -> list[Entry]:
    rows = await conn.fetch(
        "SELECT at, event, agency, dispatch_id, detail FROM report_timeline WHERE report_id = $1 ORDER BY at, id",
        report_id,
    )
    return [Entry(r["at"], r["event"], r["agency"], r["dispatch_id"], json.loads(r["detail"])) for r in rows]


@dataclass(frozen=True)
class NewEntry:
    """A timeline entry to add to a report."""

    report_id: UUID
    at: datetime
    event: str
    agency: str | None = None
    dispatch_id: UUID | None = None
    detail: dict | None = None


async def add_timeline_entry(
    conn: asyncpg.Connection,
    *,
    report_id: UUID,
    at: datetime,
    event: str,
    agency: str | None = None,
    dispatch_id: UUID | None = None,
    detail: dict | None = None,
) -> bool:
    """Append one entry (see add_timeline_entries); False for a report intake does not hold."""
    entry = NewEntry(report_id, at, event, agency, dispatch_id, detail)
    return not await add_timeline_entries(conn, [entry])


async def add_timeline_entries(conn: asyncpg.Connection, entries: list[NewEntry]) -> set[UUID]:
    """Append `entries` (in this order) to their reports' timelines and bring each
    report's status up to date; returns the reports intake does not hold, for which
    nothing was written.

    Two statements at most, however many entries and reports: the reports whose status
    an entry may change are locked and read (in id order: two consumers' transactions
    lock one report set in one order), then every entry is inserted and those reports'
    whole timelines read back with them; a third writes the statuses that changed. The
    lock is a statement of its own: the timeline must be read by a statement that
    starts once the lock is held, or an entry another transaction committed while this
    one waited is missed and a stale status stored. Entries that cannot change a
    status (STATUS_NEUTRAL_EVENTS) take no lock. One entry at a time cost two or three
    statements each, a fifth of a surge's statements (bench --profile)."""
    if not entries:
        return set()
    changing = sorted({e.report_id for e in entries if e.event not in STATUS_NEUTRAL_EVENTS})
    locked = []
    if changing:
        locked = await conn.fetch("SELECT * FROM reports WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", changing)
    rows = await conn.fetch(
        _ADD_ENTRIES,
        [e.report_id for e in entries],
        [e.at for e in entries],
        [e.event for e in entries],
        [e.agency for e in entries],
        [e.dispatch_id for e in entries],
        [json.dumps(e.detail or {}, default=str) for e in entries],
        [r["id"] for r in locked],
    )
    timelines = {r["report_id"]: _entries(orjson.loads(r["timeline"])) for r in rows if r["timeline"] is not None}
    new_status = {}
    for row in locked:
        status = _status_of(row, timelines[row["id"]])
        if status != row["status"]:  # most entries leave it as it was: no row version, no index entry
            new_status[row["id"]] = status
    if new_status:
        await conn.execute(
            "UPDATE reports SET status = s.status FROM unnest($1::uuid[], $2::text[]) AS s(id, status) "
            "WHERE reports.id = s.id AND reports.id = ANY($1::uuid[])",
            list(new_status),
            list(new_status.values()),
        )
    return {e.report_id for e in entries} - {r["report_id"] for r in rows}


# Each report an entry was written for, with the whole timeline of the locked ones ($7):
# the statement's own inserts are not visible to its read of the table, so they are
# added to it from the CTE.
_ADD_ENTRIES = """
    WITH added AS (
        INSERT INTO report_timeline (report_id, at, event, agency, dispatch_id, detail)
        SELECT e.report_id, e.at, e.event, e.agency, e.dispatch_id, e.detail::jsonb
        FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::text[])
             WITH ORDINALITY AS e(report_id, at, event, agency, dispatch_id, detail, n)
        WHERE EXISTS (SELECT FROM reports r WHERE r.id = e.report_id)
        ORDER BY e.n
        RETURNING report_id, at, event, agency, dispatch_id, detail
    ), entries AS (
        SELECT report_id, at, event, agency, dispatch_id, detail FROM report_timeline
        WHERE report_id = ANY($7::uuid[])
        UNION ALL SELECT * FROM added WHERE report_id = ANY($7::uuid[])
    ), timelines AS (
        SELECT report_id, json_agg(entries ORDER BY at)::text AS timeline FROM entries GROUP BY report_id
    )
    SELECT written.report_id, timelines.timeline
    FROM (SELECT DISTINCT report_id FROM added) AS written LEFT JOIN timelines USING (report_id)
"""


def _entries(items: list[dict]) -> list[Entry]:
    return [
        Entry(datetime.fromisoformat(i["at"]), i["event"], i["agency"], i["dispatch_id"], i["detail"]) for i in items
    ]


async def set_assignee(conn: asyncpg.Connection, report_id: UUID, operator_id: UUID) -> None:
    await conn.execute("UPDATE reports SET assigned_to = $2 WHERE id = $1", report_id, operator_id)


async def clear_assignee(conn: asyncpg.Connection, report_id: UUID, operator_id: UUID | None) -> None:
    """Only the operator who has it lets go: a late close of an older task must not
    clear a newer assignment."""
    await conn.execute(
        "UPDATE reports SET assigned_to = NULL WHERE id = $1 AND assigned_to = $2", report_id, operator_id
    )


def awaiting_verdict(row: asyncpg.Record) -> bool:
    return row["verification"] == "before_dispatch" and row["verdict"] is None


def _status_of(row: asyncpg.Record, timeline: list[Entry]) -> str:
    status, _ = summarise(
        row["kind"],
        timeline,
        linked=row["linked_to"] is not None,
        awaiting_verdict=awaiting_verdict(row),
        closed=row["closed_at"] is not None,
    )
    return status


async def lock_incident(conn: asyncpg.Connection, report_id: UUID) -> list[asyncpg.Record]:
    """The report `report_id` and the reports linked to it, locked in id order (the
    order add_timeline_entries locks in, so the two never wait on each other in a circle)."""
    return await conn.fetch("SELECT * FROM reports WHERE id = $1 OR linked_to = $1 ORDER BY id FOR UPDATE", report_id)


async def close_incident(
    conn: asyncpg.Connection,
    report_id: UUID,
    *,
    outcome: str,
    note: str | None,
    operator_id: UUID | None,
    at: datetime,
) -> list[UUID]:
    """Close the open incident `report_id` with its linked callers, in the caller's
    transaction (which holds lock_incident): the columns, a `closed` entry on each
    timeline (which sets their status) and report.closed. Returns the callers closed."""
    rows = await conn.fetch(
        """
        UPDATE reports SET closed_at = $2, close_outcome = $3, closed_by = $4, close_note = $5
        WHERE (id = $1 OR linked_to = $1) AND closed_at IS NULL
        RETURNING id
        """,
        report_id,
        at,
        outcome,
        operator_id,
        note,
    )
    callers = sorted(r["id"] for r in rows if r["id"] != report_id)
    detail = {"outcome": outcome, "note": note, "operator_id": operator_id and str(operator_id)}
    entries = [NewEntry(report_id, at, "closed", detail=detail | {"callers": [str(c) for c in callers]})]
    entries += [NewEntry(c, at, "closed", detail=detail | {"incident_report_id": str(report_id)}) for c in callers]
    await add_timeline_entries(conn, entries)
    event = ReportClosed(
        report_id=report_id, outcome=outcome, note=note, operator_id=operator_id, linked_reports=callers, closed_at=at
    )
    await enqueue(conn, [encode(event, topic=topics.REPORTS, key=str(report_id), source=SOURCE, time=at)])
    return callers


async def reopen_incident(
    conn: asyncpg.Connection, row: asyncpg.Record, *, reason: str, operator_id: UUID, at: datetime
) -> list[UUID]:
    """Reopen the closed incident `row` (held by lock_incident) with the callers that
    closed with it, in the caller's transaction. Returns those callers."""
    rows = await conn.fetch(
        """
        UPDATE reports SET closed_at = NULL, close_outcome = NULL, closed_by = NULL, close_note = NULL
        WHERE (id = $1 OR linked_to = $1) AND closed_at = $2
        RETURNING id
        """,
        row["id"],
        row["closed_at"],
    )
    callers = sorted(r["id"] for r in rows if r["id"] != row["id"])
    detail = {"reason": reason, "operator_id": str(operator_id)}
    entries = [NewEntry(r["id"], at, "reopened", detail=detail) for r in rows]
    await add_timeline_entries(conn, entries)
    event = ReportReopened(
        report_id=row["id"], reason=reason, operator_id=operator_id, linked_reports=callers, reopened_at=at
    )
    await enqueue(conn, [encode(event, topic=topics.REPORTS, key=str(row["id"]), source=SOURCE, time=at)])
    return callers


async def finished_incidents(conn: asyncpg.Connection, report_ids: list[UUID]) -> list[asyncpg.Record]:
    """Those of `report_ids` whose every agency is done and that are still open, locked:
    they close on their own."""
    return await conn.fetch(
        "SELECT id, status FROM reports WHERE id = ANY($1::uuid[]) AND status = 'done' AND closed_at IS NULL "
        "AND linked_to IS NULL AND kind = 'emergency' ORDER BY id FOR UPDATE",
        report_ids,
    )


@dataclass(frozen=True)
class ReportFilter:
    status: str | None = None
    category: str | None = None
    kecamatan: str | None = None
    kind: str | None = None
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    verification: str | None = None  # pending, verified or not_required
    assigned_to: UUID | None = None
    closed: bool | None = None
    client_id: str | None = None  # an app's key: only the reports it filed
    incident: bool | None = None  # true: incidents only (emergencies that are not another caller's report)


# ReportFilter's WHERE clause, shared by the listing and the counts ($10 is their LIMIT).
_WHERE = """
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR category = $2)
          AND ($3::text IS NULL OR kecamatan = $3) AND ($4::text IS NULL OR kind = $4)
          AND ($5::text IS NULL OR channel = $5)
          AND ($6::timestamptz IS NULL OR received_at >= $6) AND ($7::timestamptz IS NULL OR received_at < $7)
          AND ($8::timestamptz IS NULL OR (received_at, id) < ($8, $9::uuid))
          AND ($11::text IS NULL
               OR ($11 = 'pending' AND verification <> 'not_required' AND verdict IS NULL)
               OR ($11 = 'verified' AND verdict IS NOT NULL)
               OR ($11 = 'not_required' AND verification = 'not_required'))
          AND ($12::uuid IS NULL OR assigned_to = $12)
          AND ($13::boolean IS NULL OR (closed_at IS NOT NULL) = $13)
          AND ($14::text IS NULL OR client_id = $14)
          AND ($15::boolean IS NULL OR (kind = 'emergency' AND linked_to IS NULL) = $15)
"""


def _where_args(where: ReportFilter, after: tuple[datetime, UUID] | None, limit: int | None) -> list:
    return [
        where.status,
        where.category,
        where.kecamatan,
        where.kind,
        where.channel,
        where.since,
        where.until,
        after and after[0],
        after and after[1],
        limit,
        where.verification,
        where.assigned_to,
        where.closed,
        where.client_id,
        where.incident,
    ]


async def list_reports(
    conn: asyncpg.Connection, where: ReportFilter, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first, keyset-paginated on (received_at, id): stable while reports arrive."""
    return await conn.fetch(
        f"""
        SELECT id, kind, status, category, subtype, kecamatan, desa, channel, received_at, linked_to,
               verification, verdict, assigned_to, closed_at, close_outcome
        FROM reports {_WHERE}
        ORDER BY received_at DESC, id DESC
        LIMIT $10
        """,
        *_where_args(where, after, limit),
    )


async def count_reports(conn: asyncpg.Connection, where: ReportFilter) -> list[asyncpg.Record]:
    """How many reports the filter holds, by status: all of them, not a page."""
    return await conn.fetch(
        f"SELECT status, count(*) AS n FROM reports {_WHERE} GROUP BY status ORDER BY status LIMIT $10",
        *_where_args(where, None, None),  # LIMIT NULL: every status
    )


async def contact_counts(conn: asyncpg.Connection, since: datetime, until: datetime) -> list[asyncpg.Record]:
    """Contacts per local (Asia/Jakarta) day, kind and channel."""
    return await conn.fetch(
        """
        SELECT (received_at AT TIME ZONE 'Asia/Jakarta')::date AS day, kind, channel, count(*) AS contacts
        FROM reports WHERE received_at >= $1 AND received_at < $2
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        since,
        until,
    )


async def closed_counts(conn: asyncpg.Connection, since: datetime, until: datetime) -> list[asyncpg.Record]:
    """Incidents (not their callers) closed in [since, until), by outcome."""
    return await conn.fetch(
        """
        SELECT close_outcome, count(*) AS incidents FROM reports
        WHERE closed_at >= $1 AND closed_at < $2 AND linked_to IS NULL GROUP BY 1 ORDER BY 1
        """,
        since,
        until,
    )


async def caller_history(conn: asyncpg.Connection, phone: str, since: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        SELECT count(*) AS contacts, count(*) FILTER (WHERE kind = 'prank') AS pranks
        FROM reports WHERE caller_phone = $1 AND received_at >= $2
        """,
        phone,
        since,
    )


async def recent_contacts(conn: asyncpg.Connection, phone: str, *, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, kind, category, status, channel, received_at FROM reports WHERE caller_phone = $1 "
        "ORDER BY received_at DESC LIMIT $2",
        phone,
        limit,
    )


async def incident_summaries(conn: asyncpg.Connection, report_ids: list[UUID]) -> list[asyncpg.Record]:
    """What the call form shows of a possible incident (no caller's data), with its callers counted."""
    return await conn.fetch(
        "SELECT r.id, r.subtype, r.description, (SELECT count(*) FROM reports l WHERE l.linked_to = r.id) AS callers "
        "FROM reports r WHERE r.id = ANY($1::uuid[])",
        report_ids,
    )


async def flagged_callers(conn: asyncpg.Connection, since: datetime, threshold: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT caller_phone AS phone, count(*) AS pranks, max(received_at) AS last_prank_at
        FROM reports WHERE kind = 'prank' AND caller_phone IS NOT NULL AND received_at >= $1
        GROUP BY caller_phone HAVING count(*) >= $2 ORDER BY count(*) DESC, max(received_at) DESC
        """,
        since,
        threshold,
    )


async def incident_root(conn: asyncpg.Connection, report_id: UUID) -> asyncpg.Record | None:
    """The report `report_id`, or the incident it is linked to: duplicates join the first report."""
    row = await conn.fetchrow("SELECT id, kind, linked_to, closed_at FROM reports WHERE id = $1", report_id)
    if row is not None and row["linked_to"] is not None:
        row = await conn.fetchrow("SELECT id, kind, linked_to, closed_at FROM reports WHERE id = $1", row["linked_to"])
    return row


async def record_verdict(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    *,
    verdict: str,
    kind: str,
    operator_id: UUID,
    incident_id: UUID | None,
    note: str | None,
    at: datetime,
) -> None:
    """In the caller's transaction, with `row` read FOR UPDATE: the verdict, the kind it
    makes, the link of a duplicate, the timeline entries and report.verified."""
    report_id = row["id"]
    await conn.execute(
        """
        UPDATE reports SET verdict = $2, kind = $3, verified_by = $4, verified_at = $5,
                           linked_to = coalesce($6, linked_to)
        WHERE id = $1
        """,
        report_id,
        verdict,
        kind,
        operator_id,
        at,
        incident_id,
    )
    detail = {"verdict": verdict, "operator_id": str(operator_id), "verification": row["verification"]}
    if note:
        detail["note"] = note
    if incident_id:
        detail["duplicate_of"] = str(incident_id)
    await add_timeline_entry(conn, report_id=report_id, at=at, event="verified", detail=detail)
    if incident_id:
        detail = {"report_id": str(report_id), "reason": "duplicate", "by": str(operator_id)}
        await add_timeline_entry(conn, report_id=incident_id, at=at, event="caller_added", detail=detail)
    event = ReportVerified(
        report_id=report_id,
        verdict=verdict,
        duplicate_of=incident_id,
        operator_id=operator_id,
        note=note,
        verification=row["verification"],
        verified_at=at,
    )
    await enqueue(conn, [encode(event, topic=topics.REPORTS, key=str(report_id), source=SOURCE, time=at)])


async def live_policy(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM verification_policy ORDER BY version DESC LIMIT 1")


async def policy_versions(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM verification_policy ORDER BY version DESC LIMIT $1", limit)


async def save_policy(conn: asyncpg.Connection, rules: list[dict], changed_by: str, reason: str) -> asyncpg.Record:
    """A new version; concurrent changes serialise on the table lock (changes are rare)."""
    await conn.execute("LOCK TABLE verification_policy IN SHARE ROW EXCLUSIVE MODE")
    return await conn.fetchrow(
        """
        INSERT INTO verification_policy (version, rules, changed_by, reason)
        SELECT coalesce(max(version), 0) + 1, $1::jsonb, $2, $3 FROM verification_policy
        RETURNING *
        """,
        json.dumps(rules),
        changed_by,
        reason,
    )
