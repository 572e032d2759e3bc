"""Intake's timeline entries written together (one consumer batch) end exactly as the
same entries written one at a time: the same timelines, the same statuses; entries for a
report intake does not hold are left out and named. Real PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.reports import ReportCreate
from services.common import db
from services.intake import store
from services.intake.store import NewEntry
from tests.support import FIRE_REPORT

pytestmark = pytest.mark.integration

MIGRATIONS = Path(store.__file__).parent / "migrations"


async def reports_in(database_url: str, schema: str, ids: list[uuid.UUID], at: datetime):
    pool = await db.create_pool(database_url, schema=schema, min_size=1, max_size=2)
    await db.migrate(pool, schema, MIGRATIONS)
    async with pool.acquire() as conn, conn.transaction():
        body = ReportCreate.model_validate(FIRE_REPORT)
        await store.store_reports(conn, [store.NewReport(report_id, body, at, "test") for report_id in ids])
    return pool


def routed(report_id, at, agencies: dict[str, uuid.UUID]) -> NewEntry:
    dispatches = [
        {"dispatch_id": str(d), "agency": a, "role": "primary" if i == 0 else "support"}
        for i, (a, d) in enumerate(agencies.items())
    ]
    return NewEntry(report_id, at, "routed", detail={"rule_version": 1, "dispatches": dispatches})


async def state_of(pool, ids):
    async with pool.acquire() as conn:
        statuses = {r: await conn.fetchval("SELECT status FROM reports WHERE id = $1", r) for r in ids}
        timelines = {
            r: [(e.at, e.event, e.agency, e.dispatch_id) for e in await store.fetch_timeline(conn, r)] for r in ids
        }
    return statuses, timelines


async def test_entries_written_together_end_as_written_one_by_one(database_url):
    t0 = datetime.now(UTC)
    delivered, failed, acked = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a, b, c, d = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()  # c: routed only; d: an entry alone
    unknown = uuid.uuid4()
    at = [t0 + timedelta(milliseconds=i) for i in range(20)]
    entries = [
        routed(a, at[1], {"damkar": delivered, "pln": acked}),
        routed(b, at[2], {"damkar": failed}),
        NewEntry(a, at[3], "delivered", "damkar", delivered, {"channel": "webhook", "attempts": 1}),
        NewEntry(unknown, at[4], "delivered", "damkar", uuid.uuid4(), {"channel": "webhook", "attempts": 1}),
        NewEntry(a, at[5], "escalated", "pln", acked, {"step": 1, "reason": "t"}),  # neutral: no lock
        NewEntry(b, at[6], "failed", "damkar", failed, {"reason": "refused", "attempts": 5}),
        NewEntry(a, at[7], "delivered", "pln", acked, {"channel": "webhook", "attempts": 1}),
        routed(c, at[8], {"polres": uuid.uuid4()}),
        NewEntry(a, at[9], "acknowledged", "pln", acked, {"via": "api"}),
        NewEntry(d, at[10], "held", "damkar", uuid.uuid4(), {"reason": "t", "attempts": 1}),
    ]
    ids = [a, b, c, d]
    together = await reports_in(database_url, "timeline_together", ids, t0)
    one_by_one = await reports_in(database_url, "timeline_one_by_one", ids, t0)
    try:
        async with together.acquire() as conn, conn.transaction():
            missing = await store.add_timeline_entries(conn, entries)
        assert missing == {unknown}
        written_alone = []
        for entry in entries:
            async with one_by_one.acquire() as conn, conn.transaction():
                written_alone.append(
                    await store.add_timeline_entry(
                        conn,
                        report_id=entry.report_id,
                        at=entry.at,
                        event=entry.event,
                        agency=entry.agency,
                        dispatch_id=entry.dispatch_id,
                        detail=entry.detail,
                    )
                )
        assert written_alone == [e.report_id != unknown for e in entries]

        statuses, timelines = await state_of(together, ids)
        assert (statuses, timelines) == await state_of(one_by_one, ids)
        # And what they end as: a delivered with one agency acknowledged; b failed; c routed.
        assert statuses == {a: "delivered", b: "delivery_failed", c: "routed", d: "received"}
        assert [e[1] for e in timelines[a]] == [
            "received",
            "routed",
            "delivered",
            "escalated",
            "delivered",
            "acknowledged",
        ]
        assert [e[1] for e in timelines[d]] == ["received", "held"]
    finally:
        await together.close()
        await one_by_one.close()
