"""The fetch wait a consumer sends the broker: short while events come, long once it
has been idle, short again at the next event. Read off the FetchRequests the real
client sends to the real broker (aiokafka has no public setter: FetchPacing changes
its fetcher's attribute, and this is what shows the fetcher still reads it)."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from prometheus_client import CollectorRegistry

from schemas.envelope import encode
from schemas.events import ReportUnrouted
from services.common import db
from services.common.consumer import ConsumerMetrics, EventConsumer
from services.common.handlers import HandlerTable
from services.common.kafka import ensure_topics
from tests.support import eventually, produce

pytestmark = pytest.mark.integration

TOPIC = "e112.test-pacing"
BUSY, IDLE = 30, 900


def event():
    return encode(
        ReportUnrouted(report_id=uuid.uuid4(), category=None, reason="test", at=datetime.now(UTC)),
        topic=TOPIC,
        key="k",
        source="test",
    )


async def test_an_idle_consumer_asks_for_the_long_wait_and_an_event_brings_the_short_one_back(
    database_url, broker, tmp_path, monkeypatch
):
    waits: list[int] = []
    send = AIOKafkaClient.send

    async def watched(self, node_id, request, **kwargs):
        if isinstance(request, FetchRequest):
            waits.append(request._max_wait_ms)
        return await send(self, node_id, request, **kwargs)

    monkeypatch.setattr(AIOKafkaClient, "send", watched)  # every request still goes to the broker
    pool = await db.create_pool(database_url, schema="pacingtest", min_size=1, max_size=2)
    await db.migrate(pool, "pacingtest", tmp_path / "no-migrations")
    seen: list[str] = []

    async def handler(conn, envelope):
        seen.append(envelope.id)

    consumer = EventConsumer(
        name="pacing-test",
        pool=pool,
        handler=HandlerTable({ReportUnrouted: handler}),
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=BUSY,
        idle_fetch_max_wait_ms=IDLE,
        idle_after_seconds=1.0,
        session_timeout_ms=6000,
        metrics=ConsumerMetrics(CollectorRegistry()),
        topics_=[TOPIC],
        partitions=1,
    )
    await ensure_topics(broker.bootstrap, [TOPIC], 1)
    task = asyncio.create_task(consumer.run())
    try:
        await produce(broker.bootstrap, [event()])
        await eventually(lambda: len(seen) == 1, timeout=60)
        assert BUSY in waits

        await eventually(lambda: waits[-3:] == [IDLE] * 3, timeout=30)  # a second without events: it stays long

        await produce(broker.bootstrap, [event()])
        await eventually(lambda: len(seen) == 2, timeout=30)
        await eventually(lambda: waits[-1] == BUSY, timeout=30)
    finally:
        await consumer.shutdown(task)
        await pool.close()
