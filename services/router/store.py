"""Router's SQL: the versioned routing table and the decisions."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from schemas.events import ReportReceived
from services.router.outcomes import REDECIDABLE, Outcome, sql_list
from services.router.routing import DEFAULT_TABLE, Decision, RoutingTable, upgraded_table


class TableUnreadable(Exception):
    """The live routing table does not validate (edited by hand, or written by a newer
    router): no report can be routed until a valid version is saved."""


class VersionConflict(Exception):
    def __init__(self, expected: int, current: int):
        super().__init__(f"the table changed: version {current} is live, the change was made on {expected}")
        self.current = current


def parse_table(version: int, rules: str) -> RoutingTable:
    try:
        return RoutingTable.model_validate_json(rules)
    except ValidationError as exc:
        first = str(exc).splitlines()[0]
        raise TableUnreadable(f"routing table version {version} cannot be read: {first}") from exc


async def seed_default_table(conn: asyncpg.Connection) -> None:
    """Version 1 is the shipped default, written once on the first start. A live table
    stored by the first router (per-category rules only) gains the shipped extra rules
    and units as a new version, its rules kept."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE routing_table_versions IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute(
            """
            INSERT INTO routing_table_versions (version, rules, changed_by, reason)
            VALUES (1, $1::jsonb, 'system', 'shipped default (contract table for Kabupaten Blitar, seed units)')
            ON CONFLICT (version) DO NOTHING
            """,
            DEFAULT_TABLE.model_dump_json(),
        )
        row = await conn.fetchrow("SELECT version, rules FROM routing_table_versions ORDER BY version DESC LIMIT 1")
        upgraded = upgraded_table(json.loads(row["rules"]))
        if upgraded is not None:
            await _insert(
                conn,
                row["version"] + 1,
                upgraded,
                "system",
                "router update: shipped extra rules (casualties, power and phone lines) and seed units added",
            )


async def live_table(
    conn: asyncpg.Connection, cached: tuple[int, RoutingTable] | None = None
) -> tuple[int, RoutingTable]:
    """The highest version. The rules are fetched and parsed only when it is not the
    cached version: one small query per report, and a change is seen by the next one."""
    row = await conn.fetchrow(
        """
        SELECT version, CASE WHEN version = $1 THEN NULL ELSE rules END AS rules
        FROM routing_table_versions ORDER BY version DESC LIMIT 1
        """,
        cached[0] if cached else None,
    )
    if cached and row["rules"] is None:
        return cached
    return row["version"], parse_table(row["version"], row["rules"])


async def table_version(conn: asyncpg.Connection, version: int | None = None) -> asyncpg.Record | None:
    """One version with who made it and why: the live one when `version` is None."""
    return await conn.fetchrow(
        """
        SELECT version, rules, changed_by, reason, created_at FROM routing_table_versions
        WHERE $1::int IS NULL OR version = $1 ORDER BY version DESC LIMIT 1
        """,
        version,
    )


async def list_versions(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT version, changed_by, reason, created_at FROM routing_table_versions ORDER BY version DESC LIMIT $1",
        limit,
    )


async def change_table(
    conn: asyncpg.Connection,
    change: RoutingTable | Callable[[RoutingTable], RoutingTable],
    changed_by: str,
    reason: str,
    expected_version: int | None = None,
) -> tuple[int, RoutingTable]:
    """Save `change` (a whole table, or a function of the live one) as the next version.
    A whole table does not read the live one, so it also replaces an unreadable table."""
    async with conn.transaction():
        # Serialise writers: two changes can neither take one version number nor be
        # made on the same base and lose one of them.
        await conn.execute("LOCK TABLE routing_table_versions IN SHARE ROW EXCLUSIVE MODE")
        row = await conn.fetchrow("SELECT version, rules FROM routing_table_versions ORDER BY version DESC LIMIT 1")
        if expected_version is not None and expected_version != row["version"]:
            raise VersionConflict(expected_version, row["version"])
        table = change if isinstance(change, RoutingTable) else change(parse_table(row["version"], row["rules"]))
        version = row["version"] + 1
        await _insert(conn, version, table, changed_by, reason)
    return version, table


async def _insert(conn: asyncpg.Connection, version: int, table: RoutingTable, changed_by: str, reason: str) -> None:
    await conn.execute(
        "INSERT INTO routing_table_versions (version, rules, changed_by, reason) VALUES ($1, $2::jsonb, $3, $4)",
        version,
        table.model_dump_json(),
        changed_by,
        reason,
    )


def _dispatches_json(decision: Decision | None) -> str:
    if decision is None:
        return "[]"
    return json.dumps(
        [
            {
                "dispatch_id": str(a.dispatch_id),
                "agency": a.agency,
                "role": a.role,
                "unit": a.unit.model_dump() if a.unit else None,
                "because": list(a.because),
            }
            for a in decision.assignments
        ]
    )


@dataclass(frozen=True)
class NewDecision:
    report_id: UUID
    event_id: str
    category: str | None
    rule_version: int | None
    decision: Decision | None
    outcome: Outcome


async def record_decisions(
    conn: asyncpg.Connection, decisions: Sequence[NewDecision], decided_at: datetime
) -> set[UUID]:
    """The reports among `decisions` (one each) decided now: not those already decided
    (a second copy of the same report). A report that was dead-lettered is decided again
    when it is re-driven, a linked one when an operator unlinks it, a held one when an
    operator verifies it. One statement for a consumer batch's reports."""
    # The decision locks (lock_decision) are taken by this very statement, every one
    # before any row is written (the aggregate ends before the insert's first row), in
    # report id order so that two batches cannot wait on each other. What must come
    # after them is the next statement's look for parked reports (linked.release_waiting),
    # not this insert's, and that one starts after the locks are held.
    rows = await conn.fetch(
        f"""
        INSERT INTO routing_decisions
            (report_id, event_id, category, rule_version, dispatches, matched_rules, reason, outcome, decided_at)
        SELECT d.report_id, d.event_id, d.category, d.rule_version, d.dispatches::jsonb, d.matched_rules::jsonb,
               d.reason, d.outcome, $9
        FROM (SELECT count(pg_advisory_xact_lock(112, hashtext(id::text)))
              FROM (SELECT unnest($1::uuid[]) AS id ORDER BY 1) AS ids) AS decision_locks,
             unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[])
                 AS d(report_id, event_id, category, rule_version, dispatches, matched_rules, reason, outcome)
        ON CONFLICT (report_id) DO UPDATE SET
            event_id = EXCLUDED.event_id, category = EXCLUDED.category, rule_version = EXCLUDED.rule_version,
            dispatches = EXCLUDED.dispatches, matched_rules = EXCLUDED.matched_rules, reason = EXCLUDED.reason,
            outcome = EXCLUDED.outcome, decided_at = EXCLUDED.decided_at, linked_to = NULL
        WHERE routing_decisions.outcome IN ({sql_list(REDECIDABLE)})
        RETURNING report_id
        """,
        [d.report_id for d in decisions],
        [d.event_id for d in decisions],
        [d.category for d in decisions],
        [d.rule_version for d in decisions],
        [_dispatches_json(d.decision) for d in decisions],
        [json.dumps(list(d.decision.matched_rules) if d.decision else []) for d in decisions],
        [d.decision.reason if d.decision else None for d in decisions],
        [d.outcome for d in decisions],
        decided_at,
    )
    return {row["report_id"] for row in rows}


async def record_deadlettered(
    conn: asyncpg.Connection, *, report_id: UUID, event_id: str, category: str | None, reason: str, at: datetime
) -> bool:
    """Say why a report went nowhere; False (nothing written) when it was decided already
    (a later copy of a routed report failing says nothing about the report)."""
    inserted = await conn.fetchval(
        f"""
        INSERT INTO routing_decisions (report_id, event_id, category, dispatches, reason, outcome, decided_at)
        VALUES ($1, $2, $3, '[]', $4, '{Outcome.DEADLETTERED}', $5)
        ON CONFLICT (report_id) DO UPDATE SET event_id = EXCLUDED.event_id, reason = EXCLUDED.reason,
            decided_at = EXCLUDED.decided_at
        WHERE routing_decisions.outcome = '{Outcome.DEADLETTERED}'
        RETURNING true
        """,
        report_id,
        event_id,
        category,
        reason,
        at,
    )
    return bool(inserted)


async def not_dispatched(conn: asyncpg.Connection, report_id: UUID, reason: str) -> bool:
    """A report held for its verdict is decided never to be dispatched (a verdict that it
    is not genuine, or its incident closed first); False when it was not held."""
    updated = await conn.fetchval(
        f"UPDATE routing_decisions SET outcome = '{Outcome.NOT_DISPATCHED}', reason = $2, decided_at = now() "
        f"WHERE report_id = $1 AND outcome = '{Outcome.AWAITING_VERIFICATION}' RETURNING true",
        report_id,
        reason,
    )
    return bool(updated)


async def lock_decision(conn: asyncpg.Connection, report_id: UUID) -> None:
    """Serialise, until the transaction ends, everything that decides `report_id` or
    reads its decision to act on it. Without it, an incident decided at the same moment
    as another caller's report linked to it (two partitions, handled side by side in one
    router or by two replicas) can miss each other: the linked report parks because the
    decision is not committed yet, and the deciding transaction's release of parked
    reports does not see the park, also not committed yet; the report then waits for
    the sweep and is dispatched on its own. With the lock, one of them commits first
    and the other's next statement sees it."""
    await conn.execute("SELECT pg_advisory_xact_lock(112, hashtext($1::text))", str(report_id))


async def lock_decisions(conn: asyncpg.Connection, report_ids: list[UUID]) -> None:
    """lock_decision for many at once, in report id order, the order record_decisions
    takes its own in: two batches whose reports and incidents overlap then wait for one
    another, and never deadlock (each waiting on a lock the other took first, until
    PostgreSQL aborts one after a second and its batch is redone one event at a time)."""
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock(112, hashtext(id::text))) "
        "FROM (SELECT DISTINCT unnest($1::uuid[]) AS id ORDER BY 1) AS ids",
        report_ids,
    )


async def decided_for_good(conn: asyncpg.Connection, report_ids: list[UUID]) -> set[UUID]:
    """Those of `report_ids` whose committed decision no later event changes."""
    rows = await conn.fetch(
        f"SELECT report_id FROM routing_decisions WHERE report_id = ANY($1::uuid[]) "
        f"AND outcome NOT IN ({sql_list(REDECIDABLE)})",
        report_ids,
    )
    return {r["report_id"] for r in rows}


async def fetch_decision(conn: asyncpg.Connection, report_id: UUID) -> asyncpg.Record | None:
    await lock_decision(conn, report_id)  # a statement of its own: the SELECT sees what committed meanwhile
    return await peek_decision(conn, report_id)


async def peek_decision(conn: asyncpg.Connection, report_id: UUID) -> asyncpg.Record | None:
    """The decision as committed now, without waiting for a transaction deciding it."""
    return await conn.fetchrow(
        """
        SELECT d.*, v.changed_by AS rule_changed_by, v.reason AS rule_reason
        FROM routing_decisions d LEFT JOIN routing_table_versions v ON v.version = d.rule_version
        WHERE d.report_id = $1
        """,
        report_id,
    )


# --- decisions of linked and held reports (linked.py, verification.py) ------------


async def park_or_link(conn: asyncpg.Connection, event_id: str, report: ReportReceived, *, waiting: bool) -> bool:
    """Another caller's report for `report.linked_to`: linked, or parked until the
    incident is decided (`waiting`). False when it was decided already (a copy)."""
    return bool(
        await conn.fetchval(
            """
            INSERT INTO routing_decisions (report_id, event_id, category, rule_version, dispatches, matched_rules,
                                           reason, outcome, decided_at, linked_to, report)
            VALUES ($1, $2, $3, NULL, '[]'::jsonb, '[]'::jsonb, $4, $5, now(), $6, $7::jsonb)
            ON CONFLICT (report_id) DO NOTHING RETURNING true
            """,
            report.report_id,
            event_id,
            report.category,
            f"another caller for incident {report.linked_to}",
            Outcome.AWAITING_INCIDENT if waiting else Outcome.LINKED,
            report.linked_to,
            report.model_dump_json(),
        )
    )


async def link_parked(conn: asyncpg.Connection, incidents: list[UUID]) -> list[asyncpg.Record]:
    """The reports parked for `incidents` become linked: (linked_to, event_id, report) each."""
    return await conn.fetch(
        f"""
        UPDATE routing_decisions SET outcome = '{Outcome.LINKED}', decided_at = now()
        WHERE linked_to = ANY($1::uuid[]) AND outcome = '{Outcome.AWAITING_INCIDENT}'
        RETURNING linked_to, event_id, report
        """,
        incidents,
    )


async def take_overdue_parked(conn: asyncpg.Connection, wait: timedelta) -> asyncpg.Record | None:
    """The oldest report parked longer than `wait`, locked for this transaction."""
    return await conn.fetchrow(
        f"""
        SELECT event_id, report FROM routing_decisions
        WHERE outcome = '{Outcome.AWAITING_INCIDENT}' AND decided_at < now() - $1::interval
        ORDER BY decided_at LIMIT 1 FOR UPDATE SKIP LOCKED
        """,
        wait,
    )


async def hold_for_verification(conn: asyncpg.Connection, event_id: str, report: ReportReceived) -> bool:
    """False when the report was decided already (a copy)."""
    return bool(
        await conn.fetchval(
            f"""
            INSERT INTO routing_decisions (report_id, event_id, category, rule_version, dispatches, matched_rules,
                                           reason, outcome, decided_at, report)
            VALUES ($1, $2, $3, NULL, '[]'::jsonb, '[]'::jsonb, 'waiting for an operator''s verification',
                    '{Outcome.AWAITING_VERIFICATION}', now(), $4::jsonb)
            ON CONFLICT (report_id) DO NOTHING RETURNING true
            """,
            report.report_id,
            event_id,
            report.category,
            report.model_dump_json(),
        )
    )


async def forget_decision(conn: asyncpg.Connection, report_id: UUID) -> None:
    await conn.execute("DELETE FROM routing_decisions WHERE report_id = $1", report_id)


async def mark_cancelled(conn: asyncpg.Connection, report_id: UUID, reason: str) -> None:
    await conn.execute(
        f"UPDATE routing_decisions SET outcome = '{Outcome.CANCELLED}', reason = $2 WHERE report_id = $1",
        report_id,
        reason,
    )
