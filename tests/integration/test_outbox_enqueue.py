"""`enqueue` writes a transaction's events in one statement: every field kept, ids in
the order given (the relay publishes in id order, so per-key order depends on it)."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from schemas.envelope import encode
from schemas.events import ReportUnrouted
from services.common import db
from services.common.outbox import enqueue

pytestmark = pytest.mark.integration


async def test_enqueue_keeps_order_and_every_field(database_url, tmp_path):
    now = datetime.now(UTC)
    records = [
        encode(
            ReportUnrouted(report_id=uuid.uuid4(), category=None, reason=f"r{i}", at=now),
            topic=f"e112.t{i % 3}",
            key=f"key-{i % 4}",
            source="test",
        )
        for i in range(40)
    ]
    pool = await db.create_pool(database_url, schema="otest", min_size=1, max_size=2)
    try:
        await db.migrate(pool, "otest", tmp_path / "no-migrations")
        async with pool.acquire() as conn:
            async with conn.transaction():
                await enqueue(conn, records[:1])
                await enqueue(conn, records[1:])
                await enqueue(conn, [])
            rows = await conn.fetch("SELECT topic, key, headers, value FROM outbox ORDER BY id")
    finally:
        await pool.close()
    assert [(r["topic"], r["key"], r["value"]) for r in rows] == [(r.topic, r.key, r.value) for r in records]
    assert [json.loads(r["headers"]) for r in rows] == [[[n, v.decode()] for n, v in r.headers] for r in records]
