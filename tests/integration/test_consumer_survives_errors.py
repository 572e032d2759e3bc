"""A consumer task never ends silently: an error that is neither the broker's nor a
handler's (here, the dead-letter path itself failing, as an asyncpg client error did
during a PostgreSQL restart) restarts the consumer, and the events after it are still
handled. Real broker, real PostgreSQL, the common EventConsumer."""

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

TOPIC = "e112.test-errors"


class DeadLetterFailsOnce(EventConsumer):
    failures = 0

    async def on_deadletter(self, conn, record, dedup_key, error):
        if self.failures == 0:
            self.failures += 1
            raise RuntimeError("the dead-letter path broke")
        return []


async def test_a_consumer_restarts_after_an_unexpected_error_and_handles_what_follows(database_url, broker, tmp_path):
    pool = await db.create_pool(database_url, schema="ctest", min_size=1, max_size=4)
    await db.migrate(pool, "ctest", tmp_path / "no-migrations")
    seen: list[str] = []
    poison = uuid.uuid4()

    async def handler(conn, envelope):
        if envelope.data.report_id == poison:
            raise ValueError("cannot handle this one")  # dead-lettered (and that fails once)
        seen.append(envelope.id)

    consumer = DeadLetterFailsOnce(
        name="errors-test",
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
        now = datetime.now(UTC)
        reports = [poison] + [uuid.uuid4() for _ in range(3)]
        records = [
            encode(
                ReportUnrouted(report_id=r, category=None, reason="test", at=now), topic=TOPIC, key="k", source="test"
            )
            for r in reports
        ]
        await ensure_topics(broker.bootstrap, [TOPIC], 1)
        await produce(broker.bootstrap, records)
        wanted = {r.event_id for r in records[1:]}
        await eventually(lambda: wanted <= set(seen), timeout=90)
        assert consumer.failures == 1 and not task.done()
        async with pool.acquire() as conn:
            claims = await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id LIKE 'deadletter:%'")
        assert claims == 1  # the poison event was dead-lettered once, after the restart
    finally:
        await consumer.shutdown(task)
        await pool.close()
