"""The outbox relay publishes again what a broker lost after acknowledging it: the test
broker (Tansu) keeps nothing across a restart, so events acknowledged and not yet read
would otherwise be gone. Real broker, real PostgreSQL, the common OutboxRelay."""

import asyncio
import json

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from services.common.kafka import new_producer
from services.common.lifecycle import cancel_tasks
from services.common.outbox import enqueue
from tests.integration.outbox_support import SCHEMA, TOPIC, N, all_published, outbox_ready, read_ids, records, relay_for
from tests.support import eventually, produce

pytestmark = pytest.mark.integration
# After a broker restart the relay's first sends wait on the producer's metadata for
# topics the broker no longer has, before it recreates them: on a loaded machine that
# took longer than 20 s (fresh-clone make test), so the reads after a restart wait
# longer. Nothing here measures speed.
AFTER_RESTART = 60


def replayed(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("e112_outbox_replayed_total", {"topic": TOPIC}) or 0.0


def assert_same_messages(seen: dict, sent: list) -> None:
    for record in sent:
        message = seen[record.event_id]
        assert message.headers == {name: value.decode() for name, value in record.headers}
        assert message.key == record.key.decode()
        assert message.raw == record.value


async def published_then_lost(database_url: str, broker, pool, sent: list) -> None:
    """`sent` published by a relay that then stops, and lost by the broker: it restarts empty."""
    relay = asyncio.create_task(relay_for(database_url, broker.bootstrap, CollectorRegistry()).run())
    try:
        async with pool.acquire() as conn:
            await enqueue(conn, sent)
        await read_ids(broker.bootstrap, {r.event_id for r in sent}, timeout=30)
        await eventually(lambda: all_published(pool), timeout=10)
    finally:
        await cancel_tasks(relay)
    broker.stop()
    broker.start()


async def test_events_a_restarted_broker_lost_are_published_again(database_url, broker, tmp_path):
    pool = await outbox_ready(database_url, tmp_path)
    registry = CollectorRegistry()
    relay = relay_for(database_url, broker.bootstrap, registry)
    task = asyncio.create_task(relay.run())
    sent = records(N)
    wanted = {r.event_id for r in sent}
    try:
        async with pool.acquire() as conn:
            await enqueue(conn, sent)
        assert_same_messages(await read_ids(broker.bootstrap, wanted, timeout=30), sent)
        await eventually(lambda: all_published(pool), timeout=10)
        async with pool.acquire() as conn:  # kept, with where the broker put them
            placed = await conn.fetch("SELECT kafka_partition, kafka_offset FROM outbox")
        assert len(placed) == N
        assert all(r["kafka_partition"] is not None and r["kafka_offset"] is not None for r in placed)
        assert len({r["kafka_partition"] for r in placed}) > 1  # several partitions to check
        assert replayed(registry) == 0  # a healthy broker triggers nothing

        broker.stop()
        broker.start()  # empty: the topic and every message are gone

        # Within a few loss checks (plus the relay's reconnection), all are back.
        assert_same_messages(await read_ids(broker.bootstrap, wanted, timeout=AFTER_RESTART), sent)
        await eventually(lambda: replayed(registry) >= N, timeout=10)
        await asyncio.sleep(2.0)  # more checks: the log now ends past what was acknowledged
        assert replayed(registry) == N
    finally:
        await cancel_tasks(task)
        await pool.close()


async def test_a_new_relay_replays_what_the_broker_lost_before_it_started(database_url, broker, tmp_path):
    """After a restart the relay knows what was acknowledged only from the retained rows.
    Its topic is recreated when it starts: the loss shows as a log that ends too early."""
    pool = await outbox_ready(database_url, tmp_path)
    sent = records(N)
    wanted = {r.event_id for r in sent}
    try:
        await published_then_lost(database_url, broker, pool, sent)  # the relay and the broker restart together

        registry = CollectorRegistry()
        second = asyncio.create_task(relay_for(database_url, broker.bootstrap, registry, topics=[TOPIC]).run())
        try:
            assert_same_messages(await read_ids(broker.bootstrap, wanted, timeout=AFTER_RESTART), sent)
            await eventually(lambda: replayed(registry) == N, timeout=10)
        finally:
            await cancel_tasks(second)
    finally:
        await pool.close()


async def test_a_write_acknowledged_below_an_earlier_one_shows_the_loss_at_once(database_url, broker, tmp_path):
    """The periodic check runs once, at the start: the new writes after the broker's
    restart get offsets the broker had already acknowledged, which a healthy log never
    does, and the relay publishes again what was lost from those partitions."""
    pool = await outbox_ready(database_url, tmp_path)
    registry = CollectorRegistry()
    task = asyncio.create_task(relay_for(database_url, broker.bootstrap, registry, loss_check_interval=3600).run())
    before, after = records(N), records(N)  # the same keys: the same partitions
    try:
        async with pool.acquire() as conn:
            await enqueue(conn, before)
        await read_ids(broker.bootstrap, {r.event_id for r in before}, timeout=30)
        await eventually(lambda: all_published(pool), timeout=10)

        broker.stop()
        broker.start()
        async with pool.acquire() as conn:
            await enqueue(conn, after)

        wanted = {r.event_id for r in before + after}
        assert_same_messages(await read_ids(broker.bootstrap, wanted, timeout=AFTER_RESTART), before)
        assert replayed(registry) >= N
    finally:
        await cancel_tasks(task)
        await pool.close()


async def test_a_loss_found_stays_pending_when_the_relay_stops_before_sending_again(database_url, broker, tmp_path):
    """The relay that finds a loss marks the rows pending in the table before it sends
    anything: stopped right after (the broker that lost them often fails the first
    writes too), the next leader publishes them, though the log has regrown since."""
    pool = await outbox_ready(database_url, tmp_path)
    sent = records(N)
    wanted = {r.event_id for r in sent}
    try:
        await published_then_lost(database_url, broker, pool, sent)
        registry = CollectorRegistry()
        finder = relay_for(database_url, broker.bootstrap, registry, topics=[TOPIC])
        conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
        producer = new_producer(broker.bootstrap, client_id="test-loss-finder")
        reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await producer.start()
        await reader.start()
        try:
            await finder._seed_acked(conn)
            await finder._replay_lost(conn, producer, reader)  # finds the loss, then stops
        finally:
            await reader.stop()
            await producer.stop()
            await conn.close()
        assert replayed(registry) == N
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == N
        # Something else lands first: the log now ends past where the lost rows were.
        await produce(broker.bootstrap, records(N))

        second = asyncio.create_task(relay_for(database_url, broker.bootstrap, CollectorRegistry()).run())
        try:
            assert_same_messages(await read_ids(broker.bootstrap, wanted, timeout=AFTER_RESTART), sent)
            await eventually(lambda: all_published(pool), timeout=10)
        finally:
            await cancel_tasks(second)
    finally:
        await pool.close()


async def test_published_events_are_kept_for_the_window_and_the_backlog_counts_only_pending_ones(
    database_url, broker, tmp_path
):
    pool = await outbox_ready(database_url, tmp_path)
    registry = CollectorRegistry()
    relay = relay_for(database_url, broker.bootstrap, registry, retention_seconds=600, cleanup_interval=0.2)
    task = asyncio.create_task(relay.run())
    old, recent = records(N // 2), records(N // 2)

    async def kept() -> set[str]:
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT headers FROM outbox WHERE published_at IS NOT NULL")
        return {dict(json.loads(r["headers"]))["ce_id"] for r in rows}

    try:
        async with pool.acquire() as conn:
            await enqueue(conn, old)
            await enqueue(conn, recent)
        await eventually(lambda: all_published(pool), timeout=30)
        assert await kept() == {r.event_id for r in old + recent}  # published, and kept
        async with pool.acquire() as conn:
            # The first half was published an hour ago, as far as the window is concerned;
            # all of them were written an hour ago.
            await conn.execute("UPDATE outbox SET created_at = now() - interval '1 hour'")
            await conn.execute(
                "UPDATE outbox SET published_at = now() - interval '1 hour' "
                "WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1)",
                len(old),
            )
        # The cleanup deletes the rows published before the window, and only those.
        await eventually(lambda: _is(kept(), {r.event_id for r in recent}), timeout=10)
        await asyncio.sleep(1.0)  # a few more cleanups
        assert await kept() == {r.event_id for r in recent}
    finally:
        await cancel_tasks(task)

    try:
        # The relay is stopped: new rows wait. The backlog counts them, not the
        # published rows still kept (written an hour ago).
        waiting = records(3)
        async with pool.acquire() as conn:
            await enqueue(conn, waiting)
            await relay._refresh_backlog(conn)
            assert await conn.fetchval("SELECT count(*) FROM outbox") == len(recent) + len(waiting)
        assert registry.get_sample_value("e112_outbox_pending") == len(waiting)
        assert registry.get_sample_value("e112_outbox_oldest_age_seconds") < 60
        assert replayed(registry) == 0
    finally:
        await pool.close()


async def _is(value, expected) -> bool:
    return await value == expected
