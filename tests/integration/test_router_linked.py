"""Another caller for an open incident: the agencies hear of it, nobody is dispatched
twice; an operator's unlink dispatches the report on its own."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from schemas import topics
from schemas.envelope import decode, encode
from schemas.events import EventCaller, EventLocation, ReportReceived, ReportUnlinked
from services.router import linked, store
from services.router.app import create_app
from services.router.handler import ReportHandler
from services.router.metrics import RouterMetrics
from services.router.settings import RouterSettings
from tests.conftest import API_KEY
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration

FIRE_TOPICS = [topics.dispatch_topic(a) for a in ("damkar", "pln", "polres")]


def settings(database_url: str, bootstrap: str) -> RouterSettings:
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        kafka_session_timeout_ms=2000,
    )


def fire(linked_to: uuid.UUID | None = None, phone: str = "+6281234567890") -> ReportReceived:
    return ReportReceived(
        report_id=uuid.uuid4(),
        kind="emergency",
        category="kebakaran",
        subtype="rumah",
        description="api besar",
        location=EventLocation(kecamatan="Wlingi", desa="Beru"),
        caller=EventCaller(phone=phone),
        channel="call",
        received_at=datetime.now(UTC),
        linked_to=linked_to,
    )


def record(event) -> object:
    return encode(event, topic=topics.REPORTS, key=str(event.report_id), source="e112/intake")


def of_type(messages, suffix):
    return [m for m in messages if m.headers["ce_type"].endswith(suffix)]


async def outcome(database_url: str, report_id: uuid.UUID) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT outcome FROM router.routing_decisions WHERE report_id = $1", report_id)
    finally:
        await conn.close()


async def test_a_linked_report_tells_the_incidents_agencies_and_is_not_dispatched_again(database_url, broker):
    incident = fire()
    second = fire(linked_to=incident.report_id, phone="+6285600001111")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record(incident), record(second)])
        messages = await read_topics(
            broker.bootstrap,
            FIRE_TOPICS,
            settle=1.5,
            until=lambda ms: len(of_type(ms, "dispatch.caller_added.v1")) >= 3,
        )
        assert await outcome(database_url, second.report_id) == "linked"
    requested = of_type(messages, "dispatch.requested.v1")
    added = of_type(messages, "dispatch.caller_added.v1")
    assert {m.data["report_id"] for m in requested} == {str(incident.report_id)}  # nobody dispatched twice
    assert len(requested) == 3 and len(added) == 3
    by_agency = {m.data["agency"]: m.data["dispatch_id"] for m in requested}
    for message in added:
        assert message.key == str(incident.report_id)  # ordered after the incident's dispatch
        assert message.data["dispatch_id"] == by_agency[message.data["agency"]]
        assert message.data["new_report_id"] == str(second.report_id)
        assert message.data["caller"]["phone"] == "+6285600001111"  # so the agency can call back


async def test_one_batch_decides_each_report_as_one_at_a_time_would(database_url, broker):
    """The router decides a consumer batch's reports together: a caller for an incident
    later in the same batch, the incident, a copy of it under a new ce_id, a prank, a
    report held for verification and a second fire, in one transaction."""
    incident, other = fire(), fire()
    caller = fire(linked_to=incident.report_id, phone="+6285600001111")
    prank = fire().model_copy(update={"kind": "prank", "category": None, "subtype": None})
    held = fire().model_copy(update={"verification": "before_dispatch"})
    batch = [record(caller), record(incident), record(incident), record(prank), record(held), record(other)]
    envelopes = [decode(r.headers, r.value, r.key) for r in batch]
    app = create_app(settings(database_url, broker.bootstrap))
    async with running(app, API_KEY):
        handler = ReportHandler(RouterMetrics(CollectorRegistry()))
        async with app.state.pool.acquire() as conn, conn.transaction():
            await handler.table.handle_all(conn, envelopes)
            rows = await conn.fetch("SELECT headers, value FROM outbox ORDER BY id")
        outcomes = [await outcome(database_url, r.report_id) for r in (caller, incident, prank, held, other)]
    assert outcomes == ["linked", "routed", "not_emergency", "awaiting_verification", "routed"]
    events = [(dict(json.loads(r["headers"]))["ce_type"].rsplit(".", 2)[-2], json.loads(r["value"])) for r in rows]
    requested = [data["report_id"] for kind, data in events if kind == "requested"]
    assert sorted(requested) == sorted([str(incident.report_id)] * 3 + [str(other.report_id)] * 3)  # no copy
    added = [data for kind, data in events if kind == "caller_added"]
    assert {d["new_report_id"] for d in added} == {str(caller.report_id)} and len(added) == 3
    routed = [data["report_id"] for kind, data in events if kind == "routed"]
    assert sorted(routed) == sorted([str(incident.report_id), str(other.report_id)])
    # Each incident's dispatches come before its report.routed, the caller's news after them.
    order = [(kind, data.get("report_id")) for kind, data in events]
    incident_events = [k for k, r in order if r == str(incident.report_id)]
    assert incident_events == ["requested"] * 3 + ["routed"] + ["caller_added"] * 3


async def test_a_linked_report_waits_for_an_incident_decided_later(database_url, broker):
    incident = fire()
    second = fire(linked_to=incident.report_id)
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record(second)])  # the link arrives first: parked, not blocking
        await eventually(lambda: _is(database_url, second.report_id, "awaiting_incident"))
        await produce(broker.bootstrap, [record(incident)])
        messages = await read_topics(
            broker.bootstrap, FIRE_TOPICS, until=lambda ms: len(of_type(ms, "dispatch.caller_added.v1")) >= 3
        )
    assert {m.data["report_id"] for m in of_type(messages, "dispatch.requested.v1")} == {str(incident.report_id)}
    assert await outcome(database_url, second.report_id) == "linked"


async def test_a_caller_of_a_decided_incident_does_not_wait_for_its_decision_lock(database_url, broker):
    """Callers of one incident arrive on every partition at once: one whose incident is
    decided for good links without waiting for another transaction holding the
    incident's decision lock; one whose incident is not decided yet still waits, so the
    park and the decision cannot miss each other."""
    decided, undecided = fire(), fire()
    app = create_app(settings(database_url, broker.bootstrap))
    async with running(app, API_KEY):
        handler = ReportHandler(RouterMetrics(CollectorRegistry()))
        async with app.state.pool.acquire() as conn, conn.transaction():
            await handler.route_alone(conn, "e-decided", decided)
        async with app.state.pool.acquire() as holder, app.state.pool.acquire() as conn:
            holding = holder.transaction()
            await holding.start()
            await store.lock_decision(holder, decided.report_id)
            await store.lock_decision(holder, undecided.report_id)
            async with conn.transaction():
                caller = fire(linked_to=decided.report_id, phone="+6285600001111")
                await asyncio.wait_for(linked.handle_linked(conn, "e-caller", caller, handler.metrics), 10)
                added = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE headers::text LIKE '%caller_added%' AND key = $1",
                    str(decided.report_id).encode(),
                )
            other = fire(linked_to=undecided.report_id)
            linking = conn.transaction()
            await linking.start()
            waiting = asyncio.create_task(linked.handle_linked(conn, "e-other", other, handler.metrics))
            # Waiting: PostgreSQL shows its advisory lock requested and not granted.
            blocked = await eventually(lambda: _waits_for_a_lock(holder), timeout=10) and not waiting.done()
            await holding.commit()
            await asyncio.wait_for(waiting, 10)
            await linking.commit()
        parked = await outcome(database_url, other.report_id)
    assert added == 3, "the decided incident's three agencies hear of the caller"
    assert blocked, "a caller of an undecided incident waits for the decision lock"
    assert parked == "awaiting_incident"


async def test_two_batches_each_with_the_other_s_incident_s_caller_both_finish_and_link(database_url, broker):
    """Partition A's batch decides fire X and has a caller of fire Y; partition B's
    decides Y and has a caller of X, handled side by side. Each takes every lock it
    needs at once and in order, so one waits for the other instead of both waiting for
    each other until PostgreSQL aborts one; both callers end linked."""
    x, y = fire(), fire()
    caller_of_y = fire(linked_to=y.report_id, phone="+6285600001111")
    caller_of_x = fire(linked_to=x.report_id, phone="+6285600002222")
    batch_a = [decode(*_parts_of(record(e))) for e in (x, caller_of_y)]
    batch_b = [decode(*_parts_of(record(e))) for e in (y, caller_of_x)]
    app = create_app(settings(database_url, broker.bootstrap))
    async with running(app, API_KEY):
        handler = ReportHandler(RouterMetrics(CollectorRegistry()))

        async def handle(batch):
            async with app.state.pool.acquire() as conn, conn.transaction():
                await handler.table.handle_all(conn, batch)

        results = await asyncio.gather(handle(batch_a), handle(batch_b), return_exceptions=True)
        outcomes = [await outcome(database_url, r.report_id) for r in (x, y, caller_of_y, caller_of_x)]
    assert [type(r).__name__ for r in results if r is not None] == []
    assert outcomes == ["routed", "routed", "linked", "linked"]


async def test_a_link_whose_incident_never_comes_is_routed_on_its_own(database_url, broker):
    orphan = fire(linked_to=uuid.uuid4())
    app = create_app(settings(database_url, broker.bootstrap))
    async with running(app, API_KEY):
        await produce(broker.bootstrap, [record(orphan)])
        await eventually(lambda: _is(database_url, orphan.report_id, "awaiting_incident"))
        handler = ReportHandler(RouterMetrics(CollectorRegistry()))
        assert await linked.route_overdue(app.state.pool, handler.route_alone, timedelta(0)) == 1
        messages = await read_topics(broker.bootstrap, FIRE_TOPICS, until=lambda ms: len(ms) >= 3)
    assert {m.data["report_id"] for m in messages} == {str(orphan.report_id)}
    assert await outcome(database_url, orphan.report_id) == "routed"


async def test_unlinking_dispatches_the_report_on_its_own(database_url, broker):
    incident = fire()
    second = fire(linked_to=incident.report_id)
    unlinked = ReportUnlinked(
        report_id=second.report_id,
        incident_report_id=incident.report_id,
        unlinked_by="Sari",
        unlinked_at=datetime.now(UTC),
    )
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record(incident), record(second)])
        await eventually(lambda: _is(database_url, second.report_id, "linked"))
        await produce(broker.bootstrap, [record(unlinked), record(unlinked)])  # a duplicate changes nothing
        messages = await read_topics(
            broker.bootstrap,
            FIRE_TOPICS,
            settle=1.5,
            until=lambda ms: (
                len([m for m in of_type(ms, "dispatch.requested.v1") if m.key == str(second.report_id)]) >= 3
            ),
        )
        assert await outcome(database_url, second.report_id) == "routed"
    own = [m for m in of_type(messages, "dispatch.requested.v1") if m.key == str(second.report_id)]
    assert sorted(m.data["agency"] for m in own) == ["damkar", "pln", "polres"]


async def _is(database_url, report_id, expected):
    return await outcome(database_url, report_id) == expected


def _parts_of(kafka_record):
    return kafka_record.headers, kafka_record.value, kafka_record.key


async def _waits_for_a_lock(conn) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
