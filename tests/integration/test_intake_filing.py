"""Reports filed together (one transaction, services/intake/filing.py) end exactly as the
same reports filed one at a time, in the same order: the same outcomes, rows, timelines
and report.received events; and the group commit isolates a report that cannot be stored. Real
PostgreSQL."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from schemas.reports import ReportCreate
from services.common import db
from services.common.groupcommit import GroupCommit, GroupCommitMetrics
from services.intake import store
from services.intake.clients import Client
from services.intake.filing import (
    Filed,
    Filing,
    FilingRules,
    KeyReused,
    Replayed,
    file_together,
)
from services.intake.settings import IntakeSettings
from tests.support import FIRE_REPORT

pytestmark = pytest.mark.integration

MIGRATIONS = Path(store.__file__).parent / "migrations"
RULES = FilingRules.of(IntakeSettings())
APP = Client("app-a", "app A", "app", None)
OTHER_APP = Client("app-b", "app B", "app", None)


def report(**changes) -> ReportCreate:
    body = {**FIRE_REPORT, **changes}
    return ReportCreate.model_validate(body)


def at(lat: float, lon: float, desa: str = "Beru") -> dict:
    return {"kecamatan": "Wlingi", "desa": desa, "lat": lat, "lon": lon}


def filing(body: ReportCreate, when: datetime, key: str | None = None, client: Client = APP) -> Filing:
    return Filing(uuid.uuid4(), body, when, client, store.request_hash(body), key)


def a_day_of_filings(t0: datetime) -> tuple[list[Filing], Filing]:
    """One batch's worth, each line a rule that batching must keep; and a report filed
    before the batch whose key the batch uses again."""
    t = [t0 + timedelta(milliseconds=i) for i in range(20)]
    fire = report(location=at(-8.078, 112.318))
    snake = at(-8.10, 112.30, "Tegalasri")
    animal = report(category="binatang_buas", description="Ular kobra di dapur", location=snake)
    prank = ReportCreate.model_validate({"kind": "prank", "channel": "call", "caller": {"phone": "081299990000"}})
    earlier = filing(report(location=at(-8.20, 112.20, "Jati")), t0 - timedelta(minutes=5), key="k-before")
    batch = [
        filing(fire, t[0], key="k1"),  # an incident
        filing(report(location=at(-8.0785, 112.3183)), t[1]),  # another caller of it, 60 m away: linked to it
        filing(fire, t[2], key="k1"),  # the first request again: its report, nothing new
        filing(report(description="Kebakaran lain"), t[3], key="k1"),  # the key, another body: refused
        filing(fire, t[4], key="k1", client=OTHER_APP),  # the same key of another app: its own report
        filing(animal.model_copy(update={"channel": "sms"}), t[5]),  # held for a verdict: no incident yet
        filing(animal, t[6]),  # so this call is not linked to it: an incident of its own
        filing(animal, t[7]),  # and this one is linked to the call
        filing(prank, t[8]),
        filing(prank, t[9]),  # the caller's second prank
        filing(report(location=at(-8.20, 112.20, "Jati")), t[10], key="k-before"),  # the earlier report's key
        filing(report(kind="information", category=None, description="Jam buka kantor"), t[11]),
    ]
    return batch, earlier


async def filing_pool(database_url: str, schema: str):
    pool = await db.create_pool(database_url, schema=schema, min_size=1, max_size=4)
    await db.migrate(pool, schema, MIGRATIONS)
    return pool


async def what_is_stored(pool, ids: list[uuid.UUID]):
    async with pool.acquire() as conn:
        rows = {r["id"]: dict(r) for r in await store.fetch_reports(conn, ids)}
        timelines = {i: [(e.event, e.detail) for e in await store.fetch_timeline(conn, i)] for i in ids}
        outbox = [(r["key"], r["value"]) for r in await conn.fetch("SELECT key, value FROM outbox ORDER BY id")]
    return rows, timelines, outbox


def comparable(outcome):
    """An outcome without the row object's identity (a Replayed's record compares by id)."""
    if isinstance(outcome, Replayed):
        return ("replayed", outcome.report["id"], outcome.report["status"])
    return outcome


async def test_a_batch_files_as_its_reports_would_one_by_one(database_url):
    t0 = datetime.now(UTC)
    batch, earlier = a_day_of_filings(t0)
    together = await filing_pool(database_url, "filing_together")
    alone = await filing_pool(database_url, "filing_alone")
    try:
        for pool in (together, alone):
            async with pool.acquire() as conn, conn.transaction():
                await file_together(conn, [earlier], RULES)
        async with together.acquire() as conn, conn.transaction():
            outcomes = await file_together(conn, batch, RULES)
        one_by_one = []
        for f in batch:
            async with alone.acquire() as conn, conn.transaction():
                one_by_one += await file_together(conn, [f], RULES)
        assert [comparable(o) for o in outcomes] == [comparable(o) for o in one_by_one]
        ids = [earlier.report_id] + [f.report_id for f in batch]
        assert await what_is_stored(together, ids) == await what_is_stored(alone, ids)

        # What the rules say, line by line.
        fire, second_caller, again, reused, other_app, sms, call, linked_call, prank1, prank2, before, info = outcomes
        assert isinstance(fire, Filed) and fire.status == "received" and fire.link is None
        assert second_caller.status == "linked" and second_caller.link.incident_report_id == batch[0].report_id
        assert comparable(again) == ("replayed", batch[0].report_id, "received")
        assert reused == KeyReused()
        assert isinstance(other_app, Filed) and other_app.link.incident_report_id == batch[0].report_id
        assert (sms.status, sms.verification) == ("awaiting_verification", "before_dispatch")
        assert (call.status, call.link) == ("received", None)
        assert linked_call.link.incident_report_id == batch[6].report_id
        assert (prank1.status, prank1.caller_pranks, prank2.caller_pranks) == ("recorded", 1, 2)
        assert comparable(before) == ("replayed", earlier.report_id, "received")
        assert info.status == "recorded"
        rows, timelines, outbox = await what_is_stored(together, ids)
        filed = [f for f, o in zip(batch, outcomes, strict=True) if isinstance(o, Filed)]
        assert len(rows) == 1 + len(filed) and len(outbox) == 1 + len(filed)
        assert [k for k, _ in outbox[1:]] == [str(f.report_id).encode() for f in filed]  # in filing order
        assert [e for e, _ in timelines[batch[0].report_id]] == ["received", "caller_added", "caller_added"]
    finally:
        await together.close()
        await alone.close()


async def test_concurrent_posts_are_filed_together_and_a_bad_one_fails_alone(database_url):
    pool = await filing_pool(database_url, "filing_grouped")
    registry = CollectorRegistry()
    grouped = GroupCommit(
        "filing", pool, lambda conn, items: file_together(conn, items, RULES), GroupCommitMetrics(registry), writers=1
    )
    writer = asyncio.create_task(grouped.run())
    try:
        t0 = datetime.now(UTC)
        kecamatan = ["Wlingi", "Talun", "Kanigoro", "Sutojayan", "Garum", "Nglegok"]
        places = [{"kecamatan": kecamatan[i % 6], "desa": f"Desa {i}"} for i in range(40)]
        filings = [filing(report(location=p), t0 + timedelta(microseconds=i)) for i, p in enumerate(places)]
        async with pool.acquire() as conn, conn.transaction():
            await file_together(conn, [filings[7]], RULES)  # its id taken already: this one cannot be stored
        await asyncio.sleep(0)  # the writer waits for work
        results = await asyncio.gather(*(grouped.submit(f) for f in filings), return_exceptions=True)

        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [7] and isinstance(results[7], asyncpg.UniqueViolationError)
        assert all(isinstance(r, Filed) and r.status == "received" for i, r in enumerate(results) if i != 7)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM reports") == 40
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 40
        writes = registry.get_sample_value("e112_group_commit_items_count", {"writer": "filing"})
        alone = registry.get_sample_value("e112_group_commit_items_bucket", {"writer": "filing", "le": "1.0"})
        assert writes > alone  # some were filed together

        # Stopped (the service shutting down): a POST still in flight files its report itself.
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        late = filing(report(), datetime.now(UTC))
        assert isinstance(await grouped.submit(late), Filed)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM reports WHERE id = $1", late.report_id) == 1
    finally:
        writer.cancel()
        await pool.close()
