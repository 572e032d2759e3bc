"""A consumer skips unread the types its handler does not act on (no transaction, no
inbox row), still handles the ones it does in order, and still dead-letters a message
that is not a CloudEvent. Real broker, real PostgreSQL, the common EventConsumer."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from schemas.envelope import KafkaRecord, encode
from schemas.events import ReportUnlinked, ReportUnrouted
from services.common import db
from services.common.consumer import ConsumerMetrics, EventConsumer, prune_inbox
from services.common.handlers import HandlerTable
from services.common.kafka import ensure_topics
from tests.support import eventually, produce

pytestmark = pytest.mark.integration

TOPIC = "e112.test-handles"


def unrouted_events(topic: str, count: int) -> list[KafkaRecord]:
    """`count` distinct report.unrouted events for `topic`, one key (one partition)."""
    now = datetime.now(UTC)
    return [
        encode(
            ReportUnrouted(report_id=uuid.uuid4(), category=None, reason="t", at=now),
            topic=topic,
            key="k",
            source="test",
        )
        for _ in range(count)
    ]


async def recording_consumer(
    database_url, broker, tmp_path, *, schema: str, name: str, topic: str, cls=EventConsumer, **options
):
    """A consumer on `topic` (one partition) in a fresh schema, whose handler records the
    ce_ids it is given: (consumer, pool, the ids seen)."""
    pool = await db.create_pool(database_url, schema=schema, min_size=1, max_size=4)
    await db.migrate(pool, schema, tmp_path / "no-migrations")
    seen: list[str] = []

    async def handler(conn, envelope):
        seen.append(envelope.id)

    consumer = cls(
        name=name,
        pool=pool,
        handler=HandlerTable({ReportUnrouted: handler}),
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=100,
        session_timeout_ms=6000,
        metrics=ConsumerMetrics(CollectorRegistry()),
        topics_=[topic],
        partitions=1,
        **options,
    )
    return consumer, pool, seen


async def test_types_not_handled_are_skipped_without_a_transaction(database_url, broker, tmp_path):
    consumer, pool, seen = await recording_consumer(
        database_url,
        broker,
        tmp_path,
        schema="htest",
        name="handles-test",
        topic=TOPIC,
    )
    metrics = consumer.metrics
    task = asyncio.create_task(consumer.run())
    try:
        now = datetime.now(UTC)
        unrouted = unrouted_events(TOPIC, 3)
        unlinked = encode(
            ReportUnlinked(report_id=uuid.uuid4(), incident_report_id=uuid.uuid4(), unlinked_by="x", unlinked_at=now),
            topic=TOPIC,
            key="k",
            source="test",
        )
        not_an_event = KafkaRecord(topic=TOPIC, key=b"k", headers=[], value=b"{}")
        await ensure_topics(broker.bootstrap, [TOPIC], 1)
        await produce(broker.bootstrap, [unrouted[0], unlinked, unrouted[1], not_an_event, unrouted[2]])
        await eventually(lambda: len(seen) == 3, timeout=90)
        assert seen == [r.event_id for r in unrouted]  # in order, the skipped one in between
        await eventually(lambda: _count(metrics, "deadlettered") == 1, timeout=30)
        async with pool.acquire() as conn:
            claimed = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}
        assert unlinked.event_id not in claimed  # no transaction was spent on it
        assert {r.event_id for r in unrouted} <= claimed
        assert _count(metrics, "skipped") == 1 and _count(metrics, "handled") == 3
    finally:
        await consumer.shutdown(task)
        await pool.close()


def _count(metrics: ConsumerMetrics, outcome: str) -> float:
    return metrics.events.labels("handles-test", outcome)._value.get()


class CountingConsumer(EventConsumer):
    """Counts the transactions spent on events: one per event on the per-event way, one
    per partition batch on the batch way."""

    one_by_one = 0
    together = 0
    batches = 0  # one partition's records of one fetch

    async def _process_partition(self, records):
        self.batches += 1
        return await super()._process_partition(records)

    async def _process(self, record):
        self.one_by_one += 1
        return await super()._process(record)

    async def _process_together(self, records):
        self.together += 1
        return await super()._process_together(records)

    @property
    def transactions(self) -> int:
        return self.one_by_one + self.together


async def test_a_flood_of_copies_is_dropped_by_one_inbox_lookup_per_batch(database_url, broker, tmp_path):
    """Copies of events already handled (a relay re-publishing what a broker lost) cost
    one inbox query or claim per fetched batch: no transaction and no handler call each."""
    consumer, pool, seen = await recording_consumer(
        database_url,
        broker,
        tmp_path,
        schema="dtest",
        name="flood-test",
        topic="e112.test-flood",
        cls=CountingConsumer,
    )
    metrics = consumer.metrics
    task = asyncio.create_task(consumer.run())
    try:
        events = unrouted_events("e112.test-flood", 20)
        await ensure_topics(broker.bootstrap, ["e112.test-flood"], 1)
        await produce(broker.bootstrap, events)
        await eventually(lambda: len(seen) == 20, timeout=90)
        assert consumer.transactions <= 20
        before, batches_before = consumer.transactions, consumer.batches
        (fresh,) = unrouted_events("e112.test-flood", 1)
        await produce(broker.bootstrap, [*events, *events, fresh])  # two copies of each, then a new one
        await eventually(lambda: len(seen) == 21, timeout=90)
        assert seen == [e.event_id for e in events] + [fresh.event_id]  # the copies did nothing
        assert metrics.events.labels("flood-test", "duplicate")._value.get() == 40
        # However the fetches split the 41 records (the test produces them one by one),
        # each batch costs one transaction, not each copy: a fetch brings several.
        batches = consumer.batches - batches_before
        assert consumer.transactions - before == batches < 41
    finally:
        await consumer.shutdown(task)
        await pool.close()


async def test_a_batch_is_one_transaction_and_a_poison_event_in_it_goes_alone_to_the_dead_letters(
    database_url, broker, tmp_path
):
    """Twenty events handled as one batch commit together; one the handler cannot handle
    rolls the batch back, and then the others are handled one by one, once each, and it
    alone is dead-lettered."""
    topic = "e112.test-batch"
    pool = await db.create_pool(database_url, schema="btest", min_size=1, max_size=4)
    await db.migrate(pool, "btest", tmp_path / "no-migrations")
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE effects (event_id text NOT NULL)")
    events = unrouted_events(topic, 20)
    poison = events[7].event_id

    async def handler(conn, envelope):
        await conn.execute("INSERT INTO effects (event_id) VALUES ($1)", envelope.id)
        if envelope.id == poison:
            raise ValueError("cannot be handled")

    consumer = CountingConsumer(
        name="batch-test",
        pool=pool,
        handler=HandlerTable({ReportUnrouted: handler}),
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=100,
        session_timeout_ms=6000,
        metrics=ConsumerMetrics(CollectorRegistry()),
        topics_=[topic],
        partitions=1,
    )
    await ensure_topics(broker.bootstrap, [topic], 1)
    await produce(broker.bootstrap, events)
    task = asyncio.create_task(consumer.run())
    try:
        metrics = consumer.metrics
        await eventually(lambda: metrics.events.labels("batch-test", "deadlettered")._value.get() == 1, timeout=90)
        await eventually(lambda: metrics.events.labels("batch-test", "handled")._value.get() == 19, timeout=30)
        async with pool.acquire() as conn:
            effects = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects")]
            claimed = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}
            deadletters = await conn.fetchval("SELECT count(*) FROM outbox WHERE topic = 'e112.deadletter'")
        good = [e.event_id for e in events if e.event_id != poison]
        assert sorted(effects) == sorted(good)  # once each; nothing of the rolled-back batch stayed
        assert set(good) <= claimed and poison not in claimed
        assert deadletters == 1
        assert consumer.together >= 1
    finally:
        await consumer.shutdown(task)
        await pool.close()


async def test_the_inbox_forgets_only_this_consumers_ids_older_than_the_retention(database_url, tmp_path):
    pool = await db.create_pool(database_url, schema="ptest", min_size=1, max_size=2)
    try:
        await db.migrate(pool, "ptest", tmp_path / "no-migrations")
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at) VALUES "
                "('router', 'old', now() - interval '36 days'), ('router', 'recent', now() - interval '34 days'), "
                "('notifier', 'old', now() - interval '36 days')"
            )
            pruned = await prune_inbox(conn, "router", 35)
            left = {(r["consumer"], r["event_id"]) for r in await conn.fetch("SELECT consumer, event_id FROM inbox")}
    finally:
        await pool.close()
    assert pruned == 1
    assert left == {("router", "recent"), ("notifier", "old")}


async def test_a_consumer_under_backpressure_takes_nothing_until_its_queue_has_room(database_url, broker, tmp_path):
    """The notifier's consumer pauses while its deliverer has too much due: the events
    wait on the topic (the group's lag, which the watchdog reads) and come after."""
    full = [True]
    consumer, pool, seen = await recording_consumer(
        database_url,
        broker,
        tmp_path,
        schema="bptest",
        name="backpressure-test",
        topic="e112.test-bp",
        pause_while=lambda: full[0],
    )
    events = unrouted_events("e112.test-bp", 5)
    await ensure_topics(broker.bootstrap, ["e112.test-bp"], 1)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: consumer._consumer is not None and consumer._consumer.paused(), timeout=60)
        await produce(broker.bootstrap, events)
        await asyncio.sleep(3)  # several fetch rounds while paused
        held = list(seen)
        paused = consumer.metrics.paused.labels("backpressure-test")._value.get()
        full[0] = False
        await eventually(lambda: len(seen) == 5, timeout=60)
    finally:
        await consumer.shutdown(task)
        await pool.close()
    assert held == [] and paused == 1
    assert seen == [e.event_id for e in events]
