"""Notifier's SQL: webhooks, the durable delivery queue and the attempt log."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class DueDispatch:
    dispatch_id: UUID
    report_id: UUID
    agency: str
    event_id: str
    event_type: str
    event_source: str
    event_time: datetime | None
    body: bytes
    received_at: datetime
    attempts: int  # including the one being made now


async def enqueue_dispatch(
    conn: asyncpg.Connection,
    *,
    dispatch_id: UUID,
    report_id: UUID,
    agency: str,
    event_id: str,
    event_type: str,
    event_source: str,
    event_time: datetime | None,
    body: bytes,
    received_at: datetime,
) -> bool:
    inserted = await conn.fetchval(
        """
        INSERT INTO dispatches (dispatch_id, report_id, agency, event_id, event_type, event_source, event_time,
                                body, received_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (dispatch_id) DO NOTHING RETURNING true
        """,
        dispatch_id, report_id, agency, event_id, event_type, event_source, event_time, body, received_at,
    )  # fmt: skip
    return bool(inserted)


async def claim_due(conn: asyncpg.Connection, limit: int, lease_seconds: float) -> list[DueDispatch]:
    """Take up to `limit` due dispatches and lease them: each counts one more attempt
    and stays hidden for `lease_seconds`, after which a worker that died mid-attempt
    has let it come due again."""
    rows = await conn.fetch(
        """
        UPDATE dispatches d
        SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
        FROM (SELECT dispatch_id FROM dispatches
              WHERE state = 'pending' AND next_attempt_at <= now()
              ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
        WHERE d.dispatch_id = due.dispatch_id
        RETURNING d.dispatch_id, d.report_id, d.agency, d.event_id, d.event_type, d.event_source, d.event_time, d.body,
                  d.received_at, d.attempts
        """,
        limit, lease_seconds,
    )  # fmt: skip
    return [DueDispatch(**dict(r)) for r in rows]


async def seconds_until_next_due(conn: asyncpg.Connection) -> float | None:
    return await conn.fetchval(
        "SELECT greatest(0, extract(epoch FROM min(next_attempt_at) - now()))::float8 "
        "FROM dispatches WHERE state = 'pending'"
    )


async def webhook_url(conn: asyncpg.Connection, agency: str) -> str | None:
    return await conn.fetchval("SELECT url FROM agency_webhooks WHERE agency = $1", agency)


async def record_attempt(
    conn: asyncpg.Connection,
    *,
    dispatch_id: UUID,
    attempt: int,
    channel: str,
    target: str | None,
    started_at: datetime,
    duration_ms: int,
    outcome: str,
    status_code: int | None,
    error: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO delivery_attempts (dispatch_id, attempt, channel, target, started_at, duration_ms,
                                       outcome, status_code, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        dispatch_id, attempt, channel, target, started_at, duration_ms, outcome, status_code, error,
    )  # fmt: skip


async def finish(conn: asyncpg.Connection, dispatch_id: UUID, state: str, error: str | None) -> bool:
    """Mark a pending dispatch delivered or failed; False if it had already finished."""
    done = await conn.fetchval(
        """
        UPDATE dispatches SET state = $2, last_error = $3, finished_at = now()
        WHERE dispatch_id = $1 AND state = 'pending' RETURNING true
        """,
        dispatch_id, state, error,
    )  # fmt: skip
    return bool(done)


async def schedule_retry(conn: asyncpg.Connection, dispatch_id: UUID, delay_seconds: float, error: str) -> None:
    await conn.execute(
        """
        UPDATE dispatches SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
        WHERE dispatch_id = $1 AND state = 'pending'
        """,
        dispatch_id, delay_seconds, error,
    )  # fmt: skip
