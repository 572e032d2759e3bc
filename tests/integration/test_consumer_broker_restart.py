"""A consumer that stays up while the broker restarts empty (Tansu keeps nothing) goes on
consuming the new events: it must not keep fetching from its old positions, past the
end of the recreated topics, and so skip the first new messages. Real broker, real
PostgreSQL, the common EventConsumer."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from schemas.envelope import encode
from schemas.events import ReportUnrouted
from services.common import db
from services.common.consumer import ConsumerMetrics, EventConsumer
from services.common.handlers import HandlerTable
from services.common.kafka import ensure_topics
from tests.support import eventually, produce

pytestmark = pytest.mark.integration

TOPIC = "e112.test-restart"


def events(n: int) -> list:
    now = datetime.now(UTC)
    return [
        encode(
            ReportUnrouted(report_id=uuid.uuid4(), category=None, reason="test", at=now),
            topic=TOPIC,
            key="k",
            source="test",
        )
        for _ in range(n)
    ]


async def test_a_running_consumer_keeps_consuming_after_the_broker_restarts_empty(database_url, broker, tmp_path):
    pool = await db.create_pool(database_url, schema="ctest", min_size=1, max_size=4)
    await db.migrate(pool, "ctest", tmp_path / "no-migrations")
    seen: list[str] = []
    in_hand, release = asyncio.Event(), asyncio.Event()

    async def handler(conn, envelope):
        if len(seen) == 5:  # the last event before the restart is in hand while it happens
            in_hand.set()
            await release.wait()
        seen.append(envelope.id)

    consumer = EventConsumer(
        name="restart-test",
        pool=pool,
        handler=HandlerTable({ReportUnrouted: handler}),
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=100,
        session_timeout_ms=6000,
        metrics=ConsumerMetrics(CollectorRegistry()),
        topics_=[TOPIC],
        partitions=1,
    )
    task = asyncio.create_task(consumer.run())
    try:
        before = events(6)
        await ensure_topics(broker.bootstrap, [TOPIC], 1)
        await produce(broker.bootstrap, before)
        await asyncio.wait_for(in_hand.wait(), 60)

        # The broker restarts empty on the same port while the batch is in hand (its
        # commit then reaches the new broker); the topic is recreated (as the services
        # do at start) and fewer new events arrive than were consumed before.
        broker.stop()
        broker.start()
        await ensure_topics(broker.bootstrap, [TOPIC], 1)
        release.set()
        await eventually(lambda: len(seen) == 6, timeout=60)
        after = events(3)
        await produce(broker.bootstrap, after)
        wanted = {r.event_id for r in after}
        await eventually(lambda: wanted <= set(seen), timeout=60)
        assert set(seen) == {r.event_id for r in before} | wanted
    finally:
        await consumer.shutdown(task)
        await pool.close()
