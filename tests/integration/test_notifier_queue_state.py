"""The delivery queue on a real PostgreSQL: a consumer batch queues each dispatch and
update once, and in what the deliverer and the escalator see as due next, nothing due at
all is None (wait for news), not 0 (due now: the loops spun at rest)."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.envelope import KafkaRecord
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

            queued = store.NewDispatch(
                dispatch_id=uuid.uuid4(),
                report_id=uuid.uuid4(),
                agency="damkar",
                event_id="ce-1",
                event_type="t",
                event_source="s",
                event_time=now,
                body=b"{}",
                received_at=now,
                ack_deadline_seconds=300,
                escalation_due_at=now + timedelta(seconds=40),
            )
            await store.enqueue(conn, [queued], now - timedelta(seconds=5))
            due = await store.queue_state(conn, now)
            assert (due.pending, due.due) == (1, 1)
            assert due.seconds_until_next_due == 0.0  # queued 5 s ago: due now, never negative
            assert 39 <= await store.seconds_until_next_timer(conn, now) <= 40
    finally:
        await pool.close()


async def test_a_batch_holds_each_dispatch_and_update_once_however_often_it_comes(database_url):
    """A consumer batch queues its dispatches and updates in one statement each; the same
    dispatch or the same update again (a copy under another ce_id) is left as it was."""
    pool = await db.create_pool(database_url, schema="notifier_batch", min_size=1, max_size=2)
    try:
        await db.migrate(pool, "notifier_batch", MIGRATIONS)
        now = datetime.now(UTC)
        report, dispatch, update = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

        def row(ce_id: str, **kind) -> store.NewDispatch:
            return store.NewDispatch(
                report_id=report,
                agency="damkar",
                event_id=ce_id,
                event_type="t",
                event_source="s",
                event_time=now,
                body=b"{}",
                received_at=now,
                **kind,
            )

        first = row("ce-1", dispatch_id=dispatch, ack_deadline_seconds=120, escalation_due_at=now)
        added = row("ce-2", dispatch_id=update, update_of=dispatch, new_report_id=uuid.uuid4())
        copy = row("ce-3", dispatch_id=dispatch, ack_deadline_seconds=999, escalation_due_at=now)
        async with pool.acquire() as conn:
            await store.enqueue(conn, [first, added, copy, added], now)
            await store.enqueue(conn, [copy], now + timedelta(seconds=1))
            rows = await conn.fetch(
                "SELECT dispatch_id, kind, update_of, event_id, ack_deadline_seconds, next_attempt_at FROM dispatches"
            )
        by_id = {r["dispatch_id"]: r for r in rows}
        assert len(rows) == 2
        assert (by_id[dispatch]["kind"], by_id[dispatch]["event_id"], by_id[dispatch]["ack_deadline_seconds"]) == (
            "dispatch",
            "ce-1",
            120,
        )
        assert by_id[dispatch]["next_attempt_at"] == now  # due at once
        assert (by_id[update]["kind"], by_id[update]["update_of"]) == ("update", dispatch)
    finally:
        await pool.close()


async def test_attempts_finished_together_end_as_finished_one_by_one(database_url):
    """finish_delivered for several attempts in one statement: each its attempt row, its
    dispatch delivered with its own channel errors, its dispatch.delivered in the outbox in
    order; one finished already (acknowledged meanwhile) gets False and no announcement."""
    pool = await db.create_pool(database_url, schema="notifier_finish", min_size=1, max_size=2)
    try:
        await db.migrate(pool, "notifier_finish", MIGRATIONS)
        now = datetime.now(UTC)
        ids = [uuid.uuid4() for _ in range(3)]
        queued = [
            store.NewDispatch(
                dispatch_id=d,
                report_id=uuid.uuid4(),
                agency="damkar",
                event_id=f"ce-{i}",
                event_type="t",
                event_source="s",
                event_time=now,
                body=b"{}",
                received_at=now,
                ack_deadline_seconds=300,
                escalation_due_at=now + timedelta(seconds=40),
            )
            for i, d in enumerate(ids)
        ]
        async with pool.acquire() as conn:
            await store.enqueue(conn, queued, now)
            await store.acknowledge(conn, ids[1], "api", now)

            def delivered(i: int, errors: list[str]) -> store.Delivered:
                announce = KafkaRecord("e112.dispatch-status", f"k{i}".encode(), [], f"v{i}".encode())
                return store.Delivered(ids[i], 2, "webhook", "https://x", errors, now, 12, 200, announce, now)

            finished = await store.finish_delivered(
                conn, [delivered(0, ["email: down"]), delivered(1, []), delivered(2, ["a", "b"])]
            )
            assert finished == [True, False, True]
            rows = {r["dispatch_id"]: r for r in await conn.fetch("SELECT * FROM dispatches")}
            assert [rows[d]["state"] for d in ids] == ["delivered", "stopped", "delivered"]
            assert rows[ids[0]]["channel_errors"] == ["email: down"] and rows[ids[2]]["channel_errors"] == ["a", "b"]
            assert rows[ids[0]]["attempts"] == 2 and rows[ids[0]]["claim_token"] is None
            attempts = await conn.fetch("SELECT dispatch_id, outcome FROM delivery_attempts ORDER BY id")
            assert [(a["dispatch_id"], a["outcome"]) for a in attempts] == [(d, "delivered") for d in ids]
            outbox = await conn.fetch("SELECT key, value FROM outbox ORDER BY id")
            assert [(r["key"], r["value"]) for r in outbox] == [(b"k0", b"v0"), (b"k2", b"v2")]
    finally:
        await pool.close()
