"""Intake's SQL. Every write that must reach Kafka goes through the outbox in the same
transaction."""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from schemas import topics
from schemas.envelope import encode
from schemas.events import EventCaller, EventLocation, ReportReceived
from schemas.reports import ReportCreate
from services.common.outbox import enqueue
from services.intake.status import Entry

SOURCE = "e112/intake"


def request_hash(report: ReportCreate) -> str:
    """A hash of the validated body, so `0812…` and `+62812…` count as the same request."""
    return hashlib.sha256(report.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    id: UUID
    received_at: datetime
    kind: str
    created: bool  # False: an earlier request with the same Idempotency-Key
    request_hash: str


async def store_report(
    conn: asyncpg.Connection,
    report_id: UUID,
    report: ReportCreate,
    received_at: datetime,
    idempotency_key: str | None,
) -> Stored:
    """Insert the report, its `received` timeline entry and its report.received event,
    in the caller's transaction. With an Idempotency-Key already used, insert nothing
    and return the first report."""
    digest = request_hash(report)
    loc = report.location
    caller = report.caller
    inserted = await conn.fetchval(
        """
        INSERT INTO reports (id, kind, category, subtype, description, kecamatan, desa, address,
                             lat, lon, caller_name, caller_phone, channel, casualties, received_at,
                             idempotency_key, request_hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING true
        """,
        report_id, report.kind, report.category, report.subtype, report.description,
        loc and loc.kecamatan, loc and loc.desa, loc and loc.address, loc and loc.lat, loc and loc.lon,
        caller and caller.name, caller and caller.phone, report.channel, report.casualties,
        received_at, idempotency_key, digest,
    )  # fmt: skip
    if not inserted:
        first = await conn.fetchrow(
            "SELECT id, received_at, kind, request_hash FROM reports WHERE idempotency_key = $1",
            idempotency_key,
        )
        return Stored(first["id"], first["received_at"], first["kind"], False, first["request_hash"])

    await conn.execute(
        "INSERT INTO report_timeline (report_id, at, event, detail) VALUES ($1, $2, 'received', $3::jsonb)",
        report_id, received_at, json.dumps({"channel": report.channel, "kind": report.kind}),
    )  # fmt: skip
    event = ReportReceived(
        report_id=report_id,
        kind=report.kind,
        category=report.category,
        subtype=report.subtype,
        description=report.description,
        location=EventLocation.model_validate(loc.model_dump()) if loc else None,
        caller=EventCaller.model_validate(caller.model_dump()) if caller else None,
        channel=report.channel,
        casualties=report.casualties,
        received_at=received_at,
    )
    await enqueue(conn, [encode(event, topic=topics.REPORTS, key=str(report_id), source=SOURCE, time=received_at)])
    return Stored(report_id, received_at, report.kind, True, digest)


async def fetch_report(conn: asyncpg.Connection, report_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM reports WHERE id = $1", report_id)


async def fetch_timeline(conn: asyncpg.Connection, report_id: UUID) -> list[Entry]:
    rows = await conn.fetch(
        "SELECT at, event, agency, dispatch_id, detail FROM report_timeline WHERE report_id = $1 ORDER BY at, id",
        report_id,
    )
    return [Entry(r["at"], r["event"], r["agency"], r["dispatch_id"], json.loads(r["detail"])) for r in rows]


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
    """Append an entry for a report intake knows; False (nothing written) otherwise."""
    written = await conn.fetchval(
        """
        INSERT INTO report_timeline (report_id, at, event, agency, dispatch_id, detail)
        SELECT id, $2, $3, $4, $5, $6::jsonb FROM reports WHERE id = $1
        RETURNING true
        """,
        report_id, at, event, agency, dispatch_id, json.dumps(detail or {}, default=str),
    )  # fmt: skip
    return bool(written)
