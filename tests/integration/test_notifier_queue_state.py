"""The deliverer's and the escalator's look at what is due next, on a real PostgreSQL:
nothing due at all is None (wait for news), not 0 (due now: the loops spun at rest)."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common import db
from services.notifier import store

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parents[2] / "services" / "notifier" / "migrations"


async def test_nothing_due_is_none_and_a_passed_time_is_now(database_url):
    pool = await db.create_pool(database_url, schema="notifier", min_size=1, max_size=2)
    try:
        await db.migrate(pool, "notifier", MIGRATIONS)
        now = datetime.now(UTC)
        async with pool.acquire() as conn:
            empty = await store.queue_state(conn, now)
            assert (empty.pending, empty.due, empty.seconds_until_next_due) == (0, 0, None)
            assert await store.seconds_until_next_timer(conn, now) is None

            await store.enqueue_dispatch(
                conn, dispatch_id=uuid.uuid4(), report_id=uuid.uuid4(), agency="damkar",
                event_id="ce-1", event_type="t", event_source="s", event_time=now, body=b"{}", received_at=now,
                now=now - timedelta(seconds=5), ack_deadline_seconds=300, escalation_due_at=now + timedelta(seconds=40),
            )  # fmt: skip
            due = await store.queue_state(conn, now)
            assert (due.pending, due.due) == (1, 1)
            assert due.seconds_until_next_due == 0.0  # queued 5 s ago: due now, never negative
            assert 39 <= await store.seconds_until_next_timer(conn, now) <= 40
    finally:
        await pool.close()
