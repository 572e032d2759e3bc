"""Assignment against a real PostgreSQL and broker, with an injected clock: reports that
need a person reach free on-duty operators (balanced), wait in a queue when nobody is
free and drain when someone is, move when their holder leaves or the shift ends."""

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas import topics
from schemas.envelope import encode
from schemas.events import (
    DispatchAcknowledged,
    DispatchDelivered,
    DispatchEscalated,
    DispatchFailed,
    DispatchHeld,
    EventLocation,
    ReportReceived,
    ReportUnrouted,
    ReportVerified,
)
from services.shifts.app import create_app
from tests.conftest import API_KEY
from tests.integration.test_shifts_coverage import Clock, kind, settings, wib
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration


def sms(category: str = "kerusuhan") -> ReportReceived:
    return ReportReceived(
        report_id=uuid.uuid4(),
        kind="emergency",
        category=category,
        subtype=None,
        description="via SMS",
        location=EventLocation(kecamatan="Talun"),
        caller=None,
        channel="sms",
        received_at=datetime.now(UTC),
        verification="before_dispatch",
    )


def on_reports(event):
    return encode(event, topic=topics.REPORTS, key=str(event.report_id), source="e112/intake")


async def add_operators(client, *names) -> list[str]:
    return [(await client.post("/v1/operators", json={"name": n})).json()["id"] for n in names]


async def open_tasks(client, **params) -> list[dict]:
    return [t for t in (await client.get("/v1/tasks", params=params)).json() if t["state"] != "closed"]


async def test_assigned_to_free_operators_balanced_queued_when_full_and_drained(database_url, broker):
    clock = Clock(wib(2026, 3, 5, 9, 0))
    app = create_app(settings(database_url, broker, assign_capacity=2), clock)
    reports = [sms() for _ in range(5)]
    async with running(app, API_KEY) as client:
        ani, budi, citra = await add_operators(client, "Ani", "Budi", "Citra")
        await client.post(f"/v1/operators/{ani}/check-in")
        await client.post(f"/v1/operators/{budi}/check-in")
        # Not a public report, nor a report without verification: no task.
        call = sms().model_copy(update={"channel": "call", "verification": "not_required"})
        await produce(broker.bootstrap, [on_reports(call), *(on_reports(r) for r in reports[:5])])
        await eventually(lambda: _count(client, "queued", 1))
        assigned = await open_tasks(client, state="assigned")
        queue = (await client.get("/v1/queue")).json()
        budi_status = (await client.get(f"/v1/operators/{budi}")).json()["status"]
        metrics = (await client.get("/metrics")).text
        # Citra checks in: the queue drains to her at once.
        await client.post(f"/v1/operators/{citra}/check-in")
        after_check_in = {t["report_id"]: t["operator_id"] for t in await open_tasks(client, state="assigned")}
        # A verdict closes its verify task.
        first = next(t for t in assigned if t["operator_id"] == ani)
        await produce(
            broker.bootstrap,
            [
                on_reports(
                    ReportVerified(
                        report_id=first["report_id"],
                        verdict="genuine",
                        operator_id=ani,
                        verification="before_dispatch",
                        verified_at=datetime.now(UTC),
                    )
                )
            ],
        )
        await eventually(lambda: _count(client, "closed", 1))
        closed = (await client.get("/v1/tasks", params={"state": "closed"})).json()
        messages = await read_topics(
            broker.bootstrap, [topics.REPORTS, topics.SHIFTS], until=lambda ms: len(_of(ms, "report.task_closed")) == 1
        )
    assert {t["report_id"] for t in assigned} | {t["report_id"] for t in queue} == {
        str(r.report_id) for r in reports[:5]
    }
    holders = [t["operator_id"] for t in assigned]
    assert sorted(holders) == sorted([ani, ani, budi, budi]), "two each: balanced, no one over capacity"
    (waiting,) = queue
    assert budi_status == "handling_report"
    assert "e112_tasks_queued 1.0" in metrics
    oldest = min(datetime.fromisoformat(t["created_at"]) for t in [*assigned, *queue]).timestamp()
    oldest_open = {
        s.labels["reason"]: s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "e112_tasks_oldest_open_timestamp_seconds"
    }
    assert oldest_open["verify"] == oldest and oldest_open["phone_agency"] == 0
    assert after_check_in[waiting["report_id"]] == citra
    assert closed[0]["outcome"] == "verified" and closed[0]["closed_by"] == ani
    assigned_events = _of(messages, "report.assigned")
    assert len(assigned_events) == 5
    assert {m.key for m in assigned_events} == {str(r.report_id) for r in reports[:5]}
    assert [m.data["why"] for m in assigned_events if m.key == waiting["report_id"]] == ["from_queue"]
    alerts = [m.data for m in _of(messages, "shift.coverage_alert") if m.data["reason"] == "nobody_free"]
    restored = [m.data for m in _of(messages, "shift.coverage_restored") if m.data["how"] == "queue_drained"]
    assert len(alerts) == 1 and alerts[0]["queued"] == 1 and len(restored) == 1


async def test_check_out_and_break_hand_tasks_to_colleagues_or_the_queue(database_url, broker):
    clock = Clock(wib(2026, 3, 5, 16, 0))
    app = create_app(settings(database_url, broker), clock)
    unrouted = ReportUnrouted(report_id=uuid.uuid4(), category=None, reason="no rule routes it", at=datetime.now(UTC))
    escalated = DispatchEscalated(
        dispatch_id=uuid.uuid4(),
        report_id=uuid.uuid4(),
        agency="pln",
        step="escalated",
        reason="not acknowledged within 120 s",
        escalated_at=datetime.now(UTC),
    )
    resent = escalated.model_copy(update={"report_id": uuid.uuid4(), "step": "resent"})
    async with running(app, API_KEY) as client:
        (ani, budi) = await add_operators(client, "Ani", "Budi")
        await client.post(f"/v1/operators/{ani}/check-in")
        status_records = [
            encode(e, topic=topics.DISPATCH_STATUS, key=str(e.report_id), source="e112/notifier")
            for e in (escalated, resent)
        ]
        await produce(broker.bootstrap, [on_reports(unrouted), *status_records])
        await eventually(lambda: _count(client, "assigned", 2))
        await client.post(f"/v1/operators/{budi}/check-in")
        await client.post(f"/v1/operators/{ani}/check-out")
        with_budi = await open_tasks(client, operator_id=budi)
        # Budi needs a break: nobody else is here, so the tasks wait in the queue.
        to_break = await client.put(f"/v1/operators/{budi}/status", json={"status": "break"})
        queued = (await client.get("/v1/queue")).json()
        closing = await client.post(f"/v1/tasks/{queued[0]['id']}/close", json={"operator_id": budi, "note": "x"})
    reasons = {t["reason"] for t in with_budi}
    assert reasons == {"unrouted", "escalated"}, "a re-send is not an operator's task; an escalation is"
    assert to_break.status_code == 200
    assert len(queued) == 2 and all(t["operator_id"] is None for t in queued)
    assert closing.status_code == 200 and closing.json()["outcome"] == "done"


async def test_at_shift_change_open_tasks_pass_to_the_incoming_operators_with_the_note(database_url, broker):
    clock = Clock(wib(2026, 3, 5, 14, 0))
    app = create_app(settings(database_url, broker), clock)
    reports = [sms() for _ in range(3)]
    async with running(app, API_KEY) as client:
        eko, ani, budi = await add_operators(client, "Eko", "Ani", "Budi")
        await client.post(f"/v1/operators/{eko}/check-in")  # pagi
        await produce(broker.bootstrap, [on_reports(r) for r in reports])
        await eventually(lambda: _count(client, "assigned", 3))
        note = await client.post(
            "/v1/handover-notes", json={"operator_id": eko, "note": "SMS dari Talun: penelepon tidak menjawab"}
        )
        clock.now = wib(2026, 3, 5, 14, 45)
        await client.post(f"/v1/operators/{ani}/check-in")  # early, for siang
        await client.post(f"/v1/operators/{budi}/check-in")
        before_end = await open_tasks(client, operator_id=eko)
        clock.now = wib(2026, 3, 5, 15, 0, 5)  # siang has begun; Eko is still here
        await app.state.assigner.tick()
        after = await open_tasks(client)
        messages = await read_topics(
            broker.bootstrap,
            [topics.REPORTS],
            until=lambda ms: len([m for m in _of(ms, "report.assigned") if m.data["why"] == "handover"]) == 3,
        )
    assert note.status_code == 201
    assert len(before_end) == 3, "not before the shift ends"
    assert {t["operator_id"] for t in after} == {ani, budi}
    assert all(t["handover_note"] == "SMS dari Talun: penelepon tidak menjawab" for t in after)
    handovers = [m.data for m in _of(messages, "report.assigned") if m.data["why"] == "handover"]
    assert {h["previous_operator_id"] for h in handovers} == {eko}


async def test_an_agency_not_reached_is_a_phone_task_first_even_past_capacity_and_ends_when_delivered(
    database_url, broker
):
    clock = Clock(wib(2026, 3, 5, 9, 0))
    app = create_app(settings(database_url, broker, assign_capacity=1), clock)
    busy, fire = sms(), uuid.uuid4()
    now = datetime.now(UTC)
    held = DispatchHeld(
        dispatch_id=uuid.uuid4(),
        report_id=fire,
        agency="damkar",
        reason="webhook: HTTP 503",
        attempts=3,
        held_at=now,
        next_attempt_at=now,
    )
    failed = DispatchFailed(
        dispatch_id=uuid.uuid4(), report_id=fire, agency="pmi", reason="webhook: no URL", attempts=0, failed_at=now
    )
    delivered = DispatchDelivered(
        dispatch_id=held.dispatch_id, report_id=fire, agency="damkar", channel="webhook", attempts=4, delivered_at=now
    )
    async with running(app, API_KEY) as client:
        (ani,) = await add_operators(client, "Ani")
        await client.post(f"/v1/operators/{ani}/check-in")
        await produce(broker.bootstrap, [on_reports(busy)])
        await eventually(lambda: _count(client, "assigned", 1))  # Ani is at her capacity of one
        await produce(broker.bootstrap, [on_status(held), on_status(failed)])
        await eventually(lambda: _count(client, "assigned", 3))
        phone_tasks = [t for t in await open_tasks(client) if t["reason"] == "phone_agency"]
        await produce(broker.bootstrap, [on_status(delivered)])
        await eventually(lambda: _count(client, "closed", 1))
        closed = (await client.get("/v1/tasks", params={"state": "closed"})).json()
        # The operator reached the Red Cross by phone: her own close of the task (reached,
        # with her note) follows through the console; the acknowledgement must not beat it.
        by_phone = DispatchAcknowledged(
            dispatch_id=failed.dispatch_id,
            report_id=fire,
            agency="pmi",
            via="phone",
            operator_id=uuid.UUID(ani),
            acknowledged_at=now,
        )
        record = on_status(by_phone)
        await produce(broker.bootstrap, [record])
        await eventually(lambda: _handled(database_url, record.event_id))
        still_open = [t for t in await open_tasks(client) if t["reason"] == "phone_agency"]
    assert sorted(t["detail"]["agency"] for t in phone_tasks) == ["damkar", "pmi"]  # one call per agency
    assert all(t["operator_id"] == ani and t["state"] == "assigned" for t in phone_tasks)
    assert {t["detail"]["failed"] for t in phone_tasks} == {True, False}
    assert [(t["reason"], t["detail"]["agency"], t["outcome"]) for t in closed] == [
        ("phone_agency", "damkar", "superseded")
    ]
    assert [t["detail"]["agency"] for t in still_open] == ["pmi"]


async def _handled(database_url: str, ce_id: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM shifts.inbox WHERE event_id = $1", ce_id))
    finally:
        await conn.close()


def on_status(event):
    return encode(event, topic=topics.DISPATCH_STATUS, key=str(event.report_id), source="e112/notifier")


async def _count(client, state: str, n: int) -> bool:
    return len((await client.get("/v1/tasks", params={"state": state})).json()) == n


def _of(messages, name: str) -> list:
    return [m for m in messages if kind(m) == name]
