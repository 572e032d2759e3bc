"""PostgreSQL: the pool, and each service's migrations.

Each service owns one PostgreSQL schema (intake, router, notifier, shifts) and its
migrations are plain numbered `.sql` files in `services/<name>/migrations/`. They are
applied at start under an advisory lock, so replicas starting together apply each
file once. A migration tool (alembic, yoyo) would add a dependency and a model layer
for what is here twenty lines of ordered, transactional SQL.
"""

import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

COMMON_MIGRATIONS = Path(__file__).parent / "migrations"


async def create_pool(dsn: str, *, schema: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f"{schema},public", "application_name": f"e112-{schema}"},
        command_timeout=30,
        reset=keep_session,
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs on release beyond what asyncpg always does (roll
    back an open transaction, drop listener callbacks): nothing.

    Why: asyncpg's default sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, a round trip each time a connection goes back, about a
    fifth of a report's round trips. Nothing here leaves session state on a pooled
    connection: advisory locks are transaction-scoped (`pg_advisory_xact_lock`) except
    the migration lock, which `migrate` releases itself; settings are `SET LOCAL` or the
    pool's own startup `server_settings`; LISTEN and the outbox leader's session lock
    live on dedicated connections (outbox.py, the notifier's deliverer), not the pool."""


async def migrate(pool: asyncpg.Pool, schema: str, migrations_dir: Path) -> list[str]:
    """Apply the not-yet-applied migrations in file-name order; return those applied."""
    # The shared outbox/inbox tables first, then the service's own files.
    files = sorted(COMMON_MIGRATIONS.glob("*.sql")) + sorted(migrations_dir.glob("*.sql"))
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        # One lock id per schema: replicas of one service wait for each other.
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"e112-migrate-{schema}")
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
                "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
            for path in files:
                if path.name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    await conn.execute(path.read_text())
                    await conn.execute(f'INSERT INTO "{schema}".schema_migrations (name) VALUES ($1)', path.name)
                applied_now.append(path.name)
                log.info("migration applied", extra={"fields": {"schema": schema, "file": path.name}})
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"e112-migrate-{schema}")
    return applied_now


async def readiness_of(pool: asyncpg.Pool | None, consumer=None, *, consumes: bool = False) -> dict[str, bool]:
    """The /readyz checks: the database always; the broker only for a service that
    consumes (intake and shifts stay ready through a broker outage: their outboxes
    keep accepting)."""
    checks = {"database": pool is not None and await database_ok(pool)}
    if consumes:
        checks["broker"] = consumer is not None and await consumer.ready()
    return checks


async def database_ok(pool: asyncpg.Pool, timeout: float = 2.0) -> bool:
    try:
        async with pool.acquire(timeout=timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)
        return True
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
