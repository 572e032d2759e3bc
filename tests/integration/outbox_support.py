"""What the outbox relay's integration tests share: a schema with only the common outbox
tables, test records, a relay with test timings, and a plain reader of the test topic."""

import uuid
from datetime import UTC, datetime

import asyncpg
from prometheus_client import CollectorRegistry

from schemas.envelope import encode
from schemas.events import ReportUnrouted
from services.common import db
from services.common.outbox import OutboxMetrics, OutboxRelay
from tests.support import read_topics

SCHEMA = "otest"
TOPIC = "e112.test-amnesia"
N = 12


def records(n: int) -> list:
    now = datetime.now(UTC)
    return [
        encode(
            ReportUnrouted(report_id=uuid.uuid4(), category=None, reason="test", at=now),
            topic=TOPIC,
            key=f"key-{i}",
            source="test",
        )
        for i in range(n)
    ]


async def outbox_ready(database_url: str, tmp_path) -> asyncpg.Pool:
    pool = await db.create_pool(database_url, schema=SCHEMA, min_size=1, max_size=2)
    await db.migrate(pool, SCHEMA, tmp_path / "no-migrations")  # the common outbox tables only
    return pool


def relay_for(database_url: str, bootstrap: str, registry: CollectorRegistry, **options) -> OutboxRelay:
    """By default a relay with no topics of its own (a topic the broker forgot is then
    recreated by the loss check) that checks for losses twice a second."""
    options = {"topics": [], "loss_check_interval": 0.5, **options}
    return OutboxRelay(
        dsn=database_url,
        schema=SCHEMA,
        bootstrap=bootstrap,
        partitions=3,
        metrics=OutboxMetrics(registry),
        poll_interval=0.2,
        **options,
    )


async def all_published(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL")


async def read_ids(bootstrap: str, wanted: set[str], timeout: float) -> dict[str, object]:
    """A plain reader (no group, from the beginning), until it saw every wanted ce_id."""
    messages = await read_topics(
        bootstrap, [TOPIC], timeout=timeout, until=lambda ms: wanted <= {m.headers.get("ce_id") for m in ms}
    )
    return {m.headers["ce_id"]: m for m in messages}
