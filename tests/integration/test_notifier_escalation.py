"""Escalation of silence, with the deadlines stored in PostgreSQL and time moved by an
injected clock: re-sent, then escalated, each exactly once, across a restart and two
replicas; never after an acknowledgement."""

import asyncio
import contextlib
import json
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from schemas.envelope import decode
from services.common import db
from services.notifier import acks, store
from services.notifier import app as notifier_app
from services.notifier.app import create_app
from services.notifier.channels import AckLinks, Mailer
from services.notifier.clock import OffsetClock
from services.notifier.escalator import EscalationMetrics, Escalator
from services.notifier.handler import handler_table
from services.notifier.policy import RetryPolicy
from tests.conftest import API_KEY
from tests.integration.notifier_support import (
    DELIVERED,
    ESCALATED,
    agency_key,
    dispatch_event,
    notifier_settings,
    of_type,
    record_of,
    set_agency,
    status_events,
    text_of,
)
from tests.support import eventually, produce, running

pytestmark = pytest.mark.integration
CONTACTS = ["kepala@damkar.blitarkab.go.id", "wakil@damkar.blitarkab.go.id"]


def steps(messages, dispatch_id) -> list[str]:
    return [m.data["step"] for m in of_type(messages, ESCALATED, dispatch_id)]


async def test_an_unacknowledged_dispatch_is_resent_then_escalated_exactly_once(database_url, broker, endpoint, smtp):
    event = dispatch_event("damkar")
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap, smtp_host="127.0.0.1", smtp_port=smtp.port)
    async with running(create_app(settings, clock), API_KEY) as client:
        await set_agency(
            client,
            "damkar",
            webhook_url=endpoint.url,
            email=["ops@damkar.blitarkab.go.id"],
            ack_deadline_seconds=60,
            escalation_contacts=CONTACTS,
        )
        await produce(broker.bootstrap, [record_of(event)])
        await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
    # The notifier is down when the deadline passes; the stored timer is still there
    # when it comes back, now as two replicas racing for it.
    clock.advance(61)
    async with contextlib.AsyncExitStack() as replicas:
        client = await replicas.enter_async_context(running(create_app(settings, clock), API_KEY))
        await replicas.enter_async_context(running(create_app(settings, clock), API_KEY))
        await status_events(broker.bootstrap, lambda ms: steps(ms, event.dispatch_id) == ["resent"])
        await eventually(lambda: len(endpoint.hits) == 2)
        clock.advance(61)
        await eventually(lambda: len(smtp.messages) == 1)
        clock.advance(3600)  # nothing is left to fire
        messages = await status_events(broker.bootstrap, lambda ms: len(steps(ms, event.dispatch_id)) >= 2, settle=2.0)
        record = (await client.get(f"/v1/dispatches/{event.dispatch_id}")).json()

    assert steps(messages, event.dispatch_id) == ["resent", "escalated"]
    resent, escalated = of_type(messages, ESCALATED)
    assert "sent again" in resent.data["reason"]
    assert "2 escalation contact(s)" in escalated.data["reason"]
    # The re-send went the same way, marked as round 2, under the same idempotency key.
    first, second = endpoint.hits
    assert second.headers["e112-round"] == "2"
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == str(event.dispatch_id)
    assert [m.data["channel"] for m in of_type(messages, DELIVERED)] == ["webhook", "webhook"]
    [(recipients, mail)] = smtp.messages  # one e-mail, to both contacts; the agency's own inbox got none
    assert sorted(recipients) == sorted(CONTACTS)
    assert mail["Subject"].startswith("[112 ESKALASI] DAMKAR")
    assert "120 detik" in text_of(mail) and "/v1/ack/" in text_of(mail)
    assert record["escalation_steps"] == ["resent", "escalated"] and record["escalation_due_at"] is None
    assert [a["channel"] for a in record["history"]] == ["webhook", "webhook", "escalation_email"]


async def test_an_acknowledgement_stops_the_escalation(database_url, broker, endpoint, smtp):
    acked, silent = dispatch_event("bpbd"), dispatch_event("bpbd")
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap, smtp_host="127.0.0.1", smtp_port=smtp.port)
    async with running(create_app(settings, clock), API_KEY) as client:
        await set_agency(
            client,
            "bpbd",
            webhook_url=endpoint.url,
            ack_deadline_seconds=30,
            escalation_contacts=["kalaksa@bpbd.blitarkab.go.id"],
        )
        key = await agency_key(client, "bpbd")
        await produce(broker.bootstrap, [record_of(acked), record_of(silent)])
        await status_events(broker.bootstrap, lambda ms: len(of_type(ms, DELIVERED)) == 2)
        clock.advance(31)
        # Acknowledged after the re-send: the escalation that was still to come never comes.
        await status_events(broker.bootstrap, lambda ms: len(of_type(ms, ESCALATED)) == 2)
        response = await client.post(
            f"/v1/dispatches/{acked.dispatch_id}/acknowledgement", headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200
        clock.advance(31)
        await eventually(lambda: len(smtp.messages) == 1)
        clock.advance(3600)
        messages = await status_events(broker.bootstrap, lambda ms: len(of_type(ms, ESCALATED)) >= 3, settle=2.0)
    assert steps(messages, acked.dispatch_id) == ["resent"]
    assert steps(messages, silent.dispatch_id) == ["resent", "escalated"]
    assert len(smtp.messages) == 1
    [(recipients, mail)] = smtp.messages
    assert str(silent.dispatch_id) in text_of(mail) and str(acked.dispatch_id) not in text_of(mail)


async def _queued(database_url: str, clock: OffsetClock, count: int):
    """A migrated notifier schema with `count` dispatches queued by the real handler."""
    pool = await db.create_pool(database_url, schema="notifier")
    await db.migrate(pool, "notifier", Path(notifier_app.__file__).parent / "migrations")
    handler = handler_table(clock, 60)
    events = [dispatch_event("pmi") for _ in range(count)]
    for event in events:
        record = record_of(event)
        async with pool.acquire() as conn, conn.transaction():
            await handler(conn, decode(record.headers, record.value, record.key))
    return pool, events


def _escalator(pool, clock):
    return Escalator(
        pool=pool,
        clock=clock,
        mailer=Mailer(host=None, port=25, sender="x@blitarkab.go.id"),
        links=AckLinks("http://x", "s" * 32, 3600),
        policy=RetryPolicy(),
        metrics=EscalationMetrics(CollectorRegistry()),
        on_resend=lambda: None,
    )


async def _escalations_in_outbox(conn) -> list[tuple[str, dict]]:
    """(ce_id, data) of every dispatch.escalated event waiting in the outbox."""
    rows = await conn.fetch("SELECT headers, value FROM outbox WHERE published_at IS NULL")
    return [
        (dict(json.loads(r["headers"]))["ce_id"], json.loads(r["value"]))
        for r in rows
        if "dispatch.escalated" in r["headers"]
    ]


async def test_the_late_count_is_every_unacknowledged_dispatch_past_its_deadline(database_url, broker, endpoint):
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap)
    async with running(create_app(settings, clock), API_KEY) as client:
        await set_agency(client, "damkar", webhook_url=endpoint.url, ack_deadline_seconds=60)
        await set_agency(client, "pln", webhook_url=endpoint.url, ack_deadline_seconds=600)
        acked, silent, slow_deadline = dispatch_event("damkar"), dispatch_event("damkar"), dispatch_event("pln")
        await produce(broker.bootstrap, [record_of(e) for e in (acked, silent, slow_deadline)])
        await status_events(broker.bootstrap, lambda ms: len(of_type(ms, DELIVERED)) == 3)
        before = (await client.get("/v1/dispatches/late")).json()
        key = await agency_key(client, "damkar")
        await client.post(
            f"/v1/dispatches/{acked.dispatch_id}/acknowledgement", headers={"Authorization": f"Bearer {key}"}
        )
        clock.advance(61)
        past_one_minute = (await client.get("/v1/dispatches/late")).json()
        clock.advance(600)
        past_eleven = (await client.get("/v1/dispatches/late")).json()
    assert before == {"late": 0, "by_agency": {}, "report_ids": []}
    assert past_one_minute == {"late": 1, "by_agency": {"damkar": 1}, "report_ids": [str(silent.report_id)]}
    assert past_eleven["late"] == 2 and past_eleven["by_agency"] == {"damkar": 1, "pln": 1}
    assert set(past_eleven["report_ids"]) == {str(silent.report_id), str(slow_deadline.report_id)}


async def test_a_timer_that_fires_after_the_acknowledgement_does_nothing(database_url):
    clock = OffsetClock()
    pool, [event] = await _queued(database_url, clock, 1)
    escalator = _escalator(pool, clock)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await store.dispatch_row(conn, event.dispatch_id, for_update=True)
            await acks.acknowledge(conn, row, "api", clock.now(), acks.AckMetrics(CollectorRegistry()))
        clock.advance(3600)
        assert await escalator.fire_due() == 0
        async with pool.acquire() as conn:
            assert await _escalations_in_outbox(conn) == []
            # A stale timer (one that read step 0 before the acknowledgement) is refused too.
            assert not await store.advance_timer(conn, event.dispatch_id, 0, None)
    finally:
        await pool.close()


async def test_timers_racing_acknowledgements_never_escalate_an_acknowledged_dispatch(database_url):
    """Escalator passes and acknowledgements interleave on twenty due dispatches: each
    dispatch is either escalated before its acknowledgement or not at all, and no step
    is taken twice."""
    clock = OffsetClock()
    pool, events = await _queued(database_url, clock, 20)
    escalators = [_escalator(pool, clock), _escalator(pool, clock)]
    metrics = acks.AckMetrics(CollectorRegistry())
    clock.advance(61)

    async def fire():
        for _ in range(30):
            for e in escalators:
                await e.fire_due()
            await asyncio.sleep(0)
            clock.advance(5)

    async def acknowledge_all():
        for event in events:
            async with pool.acquire() as conn, conn.transaction():
                row = await store.dispatch_row(conn, event.dispatch_id, for_update=True)
                await acks.acknowledge(conn, row, "api", clock.now(), metrics)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(fire(), acknowledge_all(), fire())
        async with pool.acquire() as conn:
            escalated = await _escalations_in_outbox(conn)
            rows = await conn.fetch(
                "SELECT dispatch_id, escalation_step, escalation_due_at, acknowledged_at FROM dispatches "
                "WHERE dispatch_id = ANY($1)",
                [e.dispatch_id for e in events],
            )
    finally:
        await pool.close()
    ce_ids = [ce_id for ce_id, _ in escalated]
    assert len(ce_ids) == len(set(ce_ids))  # no step announced twice
    assert len(ce_ids) == sum(r["escalation_step"] for r in rows)
    acknowledged_at = {str(r["dispatch_id"]): r["acknowledged_at"] for r in rows}
    for _, data in escalated:  # every step was taken before its dispatch's acknowledgement
        assert datetime.fromisoformat(data["escalated_at"]) <= acknowledged_at[data["dispatch_id"]]
    assert all(r["acknowledged_at"] is not None and r["escalation_due_at"] is None for r in rows)
