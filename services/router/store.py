"""Router's SQL: the versioned routing table and the decisions."""

import json
from datetime import datetime
from uuid import UUID

import asyncpg

from services.router.routing import DEFAULT_TABLE, Assignment, RoutingTable


async def seed_default_table(conn: asyncpg.Connection) -> None:
    """Version 1 is the contract's table, written once on the first start."""
    await conn.execute(
        """
        INSERT INTO routing_table_versions (version, rules, changed_by, reason)
        VALUES (1, $1::jsonb, 'system', 'shipped default (contract table for Kabupaten Blitar)')
        ON CONFLICT (version) DO NOTHING
        """,
        DEFAULT_TABLE.model_dump_json(),
    )


async def current_table(conn: asyncpg.Connection) -> tuple[int, RoutingTable]:
    row = await conn.fetchrow("SELECT version, rules FROM routing_table_versions ORDER BY version DESC LIMIT 1")
    return row["version"], RoutingTable.model_validate_json(row["rules"])


async def save_table(conn: asyncpg.Connection, table: RoutingTable, changed_by: str, reason: str) -> int:
    async with conn.transaction():
        # Serialise writers so two changes cannot take the same version number.
        await conn.execute("LOCK TABLE routing_table_versions IN SHARE ROW EXCLUSIVE MODE")
        version = await conn.fetchval("SELECT coalesce(max(version), 0) + 1 FROM routing_table_versions")
        await conn.execute(
            "INSERT INTO routing_table_versions (version, rules, changed_by, reason) VALUES ($1, $2::jsonb, $3, $4)",
            version, table.model_dump_json(), changed_by, reason,
        )  # fmt: skip
    return version


async def record_decision(
    conn: asyncpg.Connection,
    *,
    report_id: UUID,
    event_id: str,
    category: str | None,
    rule_version: int | None,
    assignments: list[Assignment],
    outcome: str,
    decided_at: datetime,
) -> bool:
    """False when the report was already decided (a second copy of the same report)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO routing_decisions (report_id, event_id, category, rule_version, dispatches, outcome, decided_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
        ON CONFLICT (report_id) DO NOTHING RETURNING true
        """,
        report_id, event_id, category, rule_version,
        json.dumps([{"dispatch_id": str(a.dispatch_id), "agency": a.agency, "role": a.role} for a in assignments]),
        outcome, decided_at,
    )  # fmt: skip
    return bool(inserted)


async def fetch_decision(conn: asyncpg.Connection, report_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT d.*, v.changed_by AS rule_changed_by, v.reason AS rule_reason
        FROM routing_decisions d LEFT JOIN routing_table_versions v ON v.version = d.rule_version
        WHERE d.report_id = $1
        """,
        report_id,
    )
