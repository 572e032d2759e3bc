"""The console's own SQL (schema `console`): PINs and sessions."""

from datetime import datetime, timedelta
from uuid import UUID

import asyncpg


async def set_pin(
    conn: asyncpg.Connection, operator_id: UUID, pin_hash: str, set_by: str, now: datetime, handle: str
) -> None:
    """The PIN, with a new sign-in handle (the list before sign-in names no operator id)."""
    await conn.execute(
        """
        INSERT INTO credentials (operator_id, pin_hash, set_by, set_at, signin_handle) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (operator_id) DO UPDATE
        SET pin_hash = excluded.pin_hash, set_by = excluded.set_by, set_at = excluded.set_at,
            failures = 0, locked_until = NULL, signin_handle = excluded.signin_handle
        """,
        operator_id,
        pin_hash,
        set_by,
        now,
        handle,
    )
    await conn.execute("DELETE FROM signin_throttle WHERE operator_id = $1", operator_id)


async def credential(conn: asyncpg.Connection, operator_id: UUID, *, for_update: bool = False):
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM credentials WHERE operator_id = $1{lock}", operator_id)


async def signin_handles(conn: asyncpg.Connection) -> dict[UUID, str]:
    """Operators who can sign in (a PIN is set), with the handle the sign-in list shows."""
    return {r["operator_id"]: r["signin_handle"] for r in await conn.fetch("SELECT * FROM credentials")}


async def operator_of_handle(conn: asyncpg.Connection, handle: str) -> UUID | None:
    return await conn.fetchval("SELECT operator_id FROM credentials WHERE signin_handle = $1", handle)


async def record_failure(conn, operator_id: UUID, failures: int, locked_until: datetime | None) -> None:
    await conn.execute(
        "UPDATE credentials SET failures = $2, locked_until = $3 WHERE operator_id = $1",
        operator_id,
        failures,
        locked_until,
    )


async def record_success(conn, operator_id: UUID, new_hash: str | None, source: str) -> None:
    await conn.execute(
        "UPDATE credentials SET failures = 0, locked_until = NULL, pin_hash = coalesce($2, pin_hash) "
        "WHERE operator_id = $1",
        operator_id,
        new_hash,
    )
    await conn.execute("DELETE FROM signin_throttle WHERE operator_id = $1 AND source = $2", operator_id, source)


async def throttle(conn, operator_id: UUID, source: str, now: datetime) -> asyncpg.Record:
    """The source's wrong-PIN state for the operator, locked (made if new). Rows quiet
    for a day go: their locks have run out."""
    await conn.execute("DELETE FROM signin_throttle WHERE updated_at < $1::timestamptz - interval '1 day'", now)
    return await conn.fetchrow(
        """
        INSERT INTO signin_throttle (operator_id, source, updated_at) VALUES ($1, $2, $3)
        ON CONFLICT (operator_id, source) DO UPDATE SET updated_at = signin_throttle.updated_at
        RETURNING *
        """,
        operator_id,
        source,
        now,
    )


async def record_source_failure(
    conn, operator_id: UUID, source: str, failures: int, locks: int, locked_until: datetime | None, now: datetime
) -> None:
    await conn.execute(
        "UPDATE signin_throttle SET failures = $3, locks = $4, locked_until = $5, updated_at = $6 "
        "WHERE operator_id = $1 AND source = $2",
        operator_id,
        source,
        failures,
        locks,
        locked_until,
        now,
    )


async def create_session(
    conn, token_hash: bytes, operator_id: UUID, name: str, csrf: str, now: datetime, expires: datetime
) -> None:
    await conn.execute(
        "INSERT INTO sessions (token_hash, operator_id, operator_name, csrf_token, created_at, expires_at, "
        "last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $5)",
        token_hash,
        operator_id,
        name,
        csrf,
        now,
        expires,
    )


async def live_session(conn, token_hash: bytes, now: datetime, idle: timedelta):
    """The session, if it is neither ended, expired nor idle longer than `idle`; seen now."""
    return await conn.fetchrow(
        "UPDATE sessions SET last_seen_at = $2 "
        "WHERE token_hash = $1 AND ended_at IS NULL AND expires_at > $2 AND last_seen_at > $2 - $3::interval "
        "RETURNING *",
        token_hash,
        now,
        idle,
    )


async def end_session(conn, token_hash: bytes, now: datetime) -> None:
    await conn.execute("UPDATE sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL", token_hash, now)


async def end_sessions_of(conn, operator_id: UUID, now: datetime) -> int:
    """A new PIN signs the operator out everywhere."""
    result = await conn.execute(
        "UPDATE sessions SET ended_at = $2 WHERE operator_id = $1 AND ended_at IS NULL", operator_id, now
    )
    return int(result.split()[-1])


async def forget_old_sessions(conn, before: datetime) -> None:
    await conn.execute("DELETE FROM sessions WHERE expires_at < $1", before)
