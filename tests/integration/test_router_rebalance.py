"""Two routers in one consumer group on the 3-partition `e112.reports`; one leaves while
both are in the middle of a batch and more reports arrive. It either finishes its batch
and commits before its partitions move (a normal stop), or, stopped harder, gives the
batch back uncommitted and rolled back; either way the other router carries on from the
committed offsets: every report is dispatched, none twice, and no event is even
processed twice. Real PostgreSQL, real broker.

Both routers are made to hold a batch at once by locking the routing table in a test
transaction: their handlers wait on the lock, mid-batch, until the test releases it."""

import asyncio
import re
import uuid
from datetime import UTC, datetime
from functools import partial

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import EventCaller, EventLocation, ReportReceived
from services.router.app import create_app
from services.router.settings import RouterSettings
from tests.conftest import API_KEY
from tests.support import eventually, read_topics, running

pytestmark = pytest.mark.integration

PARTITIONS = 3
DISPATCH = "id.go.blitarkab.e112.dispatch.requested.v1"
FIRE_AGENCIES = ("damkar", "pln", "polres")


def fire_report() -> KafkaRecord:
    event = ReportReceived(
        report_id=uuid.uuid4(),
        kind="emergency",
        category="kebakaran",
        subtype=None,
        description="uji",
        location=EventLocation(kecamatan="Garum"),
        caller=EventCaller(name="Sri", phone="+6281234567890"),
        channel="call",
        received_at=datetime.now(UTC),
    )
    return encode(event, topic=topics.REPORTS, key=str(event.report_id), source="test")


async def produce_to_every_partition(bootstrap: str, per_partition: int) -> list[KafkaRecord]:
    """`per_partition` new reports on each partition, so both routers get some."""
    records = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(PARTITIONS):
            for _ in range(per_partition):
                r = fire_report()
                await producer.send_and_wait(r.topic, r.value, key=r.key, headers=r.headers, partition=partition)
                records.append(r)
    finally:
        await producer.stop()
    return records


class Member:
    """One router, its lifespan running in a task until `leave()`."""

    def __init__(self, database_url: str, bootstrap: str, grace: float):
        self.app = create_app(
            RouterSettings(
                database_url=database_url,
                kafka_bootstrap_servers=bootstrap,
                e112_api_key=API_KEY,
                outbox_poll_interval=0.2,
                kafka_session_timeout_ms=2000,
                shutdown_grace_seconds=grace,
            )
        )
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        async with running(self.app, API_KEY):
            self.started.set()
            await self._stop.wait()

    def leave(self) -> None:
        self._stop.set()

    async def events(self, outcome: str) -> float:
        """This router's consumer counter for `outcome` (readable after it stopped too)."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://m") as client:
            text = (await client.get("/metrics")).text
        found = re.search(rf'e112_consumer_events_total{{consumer="router",outcome="{outcome}"}} ([0-9.e+]+)', text)
        return float(found.group(1)) if found else 0.0


async def decided(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM router.routing_decisions WHERE outcome = 'routed'")
    finally:
        await conn.close()


async def outbox_drained(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) = 0 FROM router.outbox WHERE published_at IS NULL")
    finally:
        await conn.close()


async def waiting_on_lock(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )


@pytest.mark.parametrize("how", ["finishes its batch", "gives its batch back"])
async def test_a_router_leaving_mid_batch_loses_no_report_and_doubles_none(database_url, broker, how):
    bootstrap = broker.bootstrap
    a = Member(database_url, bootstrap, grace=30)
    await a.started.wait()
    # B stopping normally may finish its batch; stopped "harder" its grace is too short to.
    b = Member(database_url, bootstrap, grace=30 if how == "finishes its batch" else 0.2)
    await b.started.wait()
    sent: list[KafkaRecord] = []

    # Until B has partitions of its own (the group has rebalanced onto both routers).
    while await b.events("handled") == 0:
        sent += await produce_to_every_partition(bootstrap, 1)
        await eventually(partial(all_handled, a, b, sent), timeout=30)
    b_before = await b.events("handled")

    lock = await asyncpg.connect(database_url)
    try:
        async with lock.transaction():
            await lock.execute("LOCK TABLE router.routing_table_versions IN ACCESS EXCLUSIVE MODE")
            sent += await produce_to_every_partition(bootstrap, 4)
            await eventually(lambda: waiting_on_lock_is(lock, 2), timeout=30)  # both mid-batch
            b.leave()
            if how == "finishes its batch":
                await eventually(lambda: b.app.state.consumer.stopping)
            else:
                await asyncio.wait_for(asyncio.shield(b.task), 30)  # cancelled mid-batch, and gone
            sent += await produce_to_every_partition(bootstrap, 3)  # more, while B leaves
        # The lock is released: the batches in hand go on.
        await asyncio.wait_for(b.task, 30)
        await eventually(lambda: all_handled(a, b, sent), timeout=60)
        # Handled is committed to the outbox; A publishes it (leading once B let go).
        await eventually(lambda: outbox_drained(database_url), timeout=60)
    finally:
        await lock.close()
        a.leave()
        await asyncio.wait_for(a.task, 30)
        b.leave()
        await asyncio.gather(b.task, return_exceptions=True)

    b_mid_batch = await b.events("handled") - b_before
    if how == "finishes its batch":
        assert b_mid_batch > 0  # B finished the batch it held before leaving
    else:
        assert b_mid_batch == 0  # B's batch was rolled back and left uncommitted
    # Each event processed exactly once across the two: no redelivery after the rebalance.
    assert await a.events("duplicate") + await b.events("duplicate") == 0
    assert await decided(database_url) == len(sent)

    messages = await read_topics(
        bootstrap,
        [topics.dispatch_topic(x) for x in FIRE_AGENCIES],
        until=lambda ms: len(ms) >= 3 * len(sent),
        settle=2.0,
        timeout=60,
    )
    by_report: dict[str, list] = {}
    for m in messages:
        assert m.headers["ce_type"] == DISPATCH
        by_report.setdefault(m.key, []).append(m)
    assert set(by_report) == {r.key.decode() for r in sent}  # no report lost
    for key, got in by_report.items():
        # Each agency once per report: one dispatch id, one ce_id (a relay stopped between
        # publishing and deleting may repeat a message; its ce_id is the same one).
        assert {m.data["agency"] for m in got} == set(FIRE_AGENCIES), key
        assert len({m.data["dispatch_id"] for m in got}) == 3
        assert len({m.headers["ce_id"] for m in got}) == 3


async def all_handled(a: Member, b: Member, sent: list[KafkaRecord]) -> bool:
    # Each report is two events on e112.reports: report.received, handled, then the
    # router's own report.routed, skipped unread (not a type the router acts on).
    return await a.events("handled") + await b.events("handled") == len(sent)


async def waiting_on_lock_is(conn: asyncpg.Connection, n: int) -> bool:
    return await waiting_on_lock(conn) >= n
