"""Updates to a dispatch (`dispatch.caller_added`: another caller reported the
incident) against a real PostgreSQL, broker, HTTP endpoint and SMTP server: delivered
like a dispatch, under their own type and idempotency key, once, with retries, and
without touching the dispatch's acknowledgement deadline or escalation."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import DispatchCallerAdded, DispatchRequested, EventCaller, EventLocation
from services.notifier.app import create_app
from services.notifier.clock import OffsetClock
from services.notifier.handler import update_id
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
CALLER_ADDED = "id.go.blitarkab.e112.dispatch.caller_added.v1"
UPDATE_DELIVERED = "id.go.blitarkab.e112.dispatch.update_delivered.v1"


def caller_added(dispatch: DispatchRequested, new_report_id: uuid.UUID | None = None) -> DispatchCallerAdded:
    return DispatchCallerAdded(
        dispatch_id=dispatch.dispatch_id,
        report_id=dispatch.report_id,
        agency=dispatch.agency,
        new_report_id=new_report_id or uuid.uuid4(),
        description="Api menjalar ke rumah sebelah",
        location=EventLocation(kecamatan="Wlingi"),
        caller=EventCaller(name="Siti", phone="+6281111111111"),
        channel="call",
        casualties=2,
        received_at=datetime.now(UTC),
    )


def update_record(event: DispatchCallerAdded) -> KafkaRecord:
    # Keyed like the dispatch (the incident's report id), as the router does: same partition, in order.
    return encode(event, topic=topics.dispatch_topic(event.agency), key=str(event.report_id), source="e112/router")


async def dispatch_record(client, dispatch_id) -> dict:
    response = await client.get(f"/v1/dispatches/{dispatch_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_update_is_delivered_once_signed_under_its_own_type_and_key(database_url, broker, endpoint):
    dispatch = dispatch_event("damkar")
    first = caller_added(dispatch)
    first_record = update_record(first)
    # The same caller under a new ce_id (a router replay), then a genuinely new caller.
    replayed = update_record(caller_added(dispatch, first.new_report_id))
    second = caller_added(dispatch)
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap)
    async with running(create_app(settings, clock), API_KEY) as client:
        secret = (
            await set_agency(client, "damkar", webhook_url=endpoint.url, channels=["webhook"], ack_deadline_seconds=600)
        )["webhook_secret"]
        endpoint.secrets = [secret]
        await produce(broker.bootstrap, [record_of(dispatch)])
        await eventually(lambda: len(endpoint.accepted()) == 1)
        # The webhook has it; the notifier records the delivery just after: wait for that.
        before = await eventually(lambda: delivered_record(client, dispatch.dispatch_id))
        # The exact same message twice (same ce_id), the replay, then the second caller:
        # the second caller's update is the sign the ones before it were consumed.
        await produce(broker.bootstrap, [first_record, first_record, replayed, update_record(second)])
        await eventually(lambda: len(endpoint.accepted()) == 3)
        messages = await status_events(
            broker.bootstrap, lambda ms: of_type(ms, DELIVERED) and len(of_type(ms, UPDATE_DELIVERED)) == 2, settle=1.0
        )
        after = await dispatch_record(client, dispatch.dispatch_id)
        # An update is not a dispatch of its own: it is not looked up (or acknowledged) by its id.
        lookup = await client.get(f"/v1/dispatches/{update_id(dispatch.dispatch_id, first.new_report_id)}")

    assert lookup.status_code == 404
    hits = endpoint.hits
    assert len(hits) == 3 and all(h.signature_ok for h in hits)
    assert hits[0].headers["ce-type"] == "id.go.blitarkab.e112.dispatch.requested.v1"
    assert hits[0].headers["idempotency-key"] == str(dispatch.dispatch_id)
    # The two updates are delivered side by side: found by their keys, in either order.
    by_key = {h.headers["idempotency-key"]: h for h in hits[1:]}
    assert set(by_key) == {str(update_id(dispatch.dispatch_id, u.new_report_id)) for u in (first, second)}
    update_hit = by_key[str(update_id(dispatch.dispatch_id, first.new_report_id))]
    assert update_hit.headers["ce-type"] == CALLER_ADDED
    assert update_hit.headers["ce-id"] == dict(first_record.headers)["ce_id"].decode()
    assert update_hit.body == first_record.value
    assert json.loads(update_hit.body)["new_report_id"] == str(first.new_report_id)
    assert len({h.headers["idempotency-key"] for h in hits}) == 3
    # Each update's outcome is published (intake's watchdog reads it), once, keyed like the
    # dispatch; two updates are delivered side by side, so their outcomes come in either order.
    outcomes = of_type(messages, UPDATE_DELIVERED)
    assert sorted((m.data["new_report_id"], m.data["update_id"]) for m in outcomes) == sorted(
        (str(u.new_report_id), str(update_id(dispatch.dispatch_id, u.new_report_id))) for u in (first, second)
    )
    assert {(m.key, m.data["dispatch_id"], m.data["update_type"], m.data["agency"]) for m in outcomes} == {
        (str(dispatch.report_id), str(dispatch.dispatch_id), "caller_added", "damkar")
    }
    assert "6281111111111" not in str([m.data for m in outcomes])  # no caller's phone on the status topic
    # Still one dispatch, with its deadline and timer as they were; the updates are under it.
    assert [m.data["dispatch_id"] for m in of_type(messages, DELIVERED)] == [str(dispatch.dispatch_id)]
    for field in ("escalation_due_at", "ack_deadline_seconds", "escalation_steps", "round", "state", "history"):
        assert after[field] == before[field], field
    assert [u["new_report_id"] for u in after["updates"]] == [str(first.new_report_id), str(second.new_report_id)]
    assert all(u["state"] == "delivered" for u in after["updates"])


async def test_an_update_to_a_failing_endpoint_is_retried_recorded_and_never_escalated(database_url, broker, endpoint):
    dispatch = dispatch_event("bpbd")
    update = caller_added(dispatch)
    clock = OffsetClock()
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        delivery_max_attempts=100,
        breaker_cooldown_seconds=0.2,
        breaker_cooldown_cap_seconds=0.5,
    )
    async with running(create_app(settings, clock), API_KEY) as client:
        secret = (
            await set_agency(
                client,
                "bpbd",
                webhook_url=endpoint.url,
                channels=["webhook"],
                ack_deadline_seconds=30,
                escalation_contacts=["kalaksa@bpbd.blitarkab.go.id"],
            )
        )["webhook_secret"]
        endpoint.secrets, endpoint.now = [secret], lambda: clock.now().timestamp()
        key = await agency_key(client, "bpbd")
        await produce(broker.bootstrap, [record_of(dispatch)])
        await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
        # Acknowledged already: the update is new information, so it is still delivered.
        ack = await client.post(
            f"/v1/dispatches/{dispatch.dispatch_id}/acknowledgement", headers={"Authorization": f"Bearer {key}"}
        )
        assert ack.status_code == 200, ack.text
        acknowledged = await dispatch_record(client, dispatch.dispatch_id)
        endpoint.status = 503
        await produce(broker.bootstrap, [update_record(update)])

        async def retried():
            updates = (await dispatch_record(client, dispatch.dispatch_id))["updates"]
            return updates and sum(a["outcome"] == "retry" for a in updates[0]["history"]) >= 2

        await eventually(retried)
        endpoint.status = 200
        await eventually(lambda: [h for h in endpoint.accepted() if h.headers["ce-type"] == CALLER_ADDED])
        clock.advance(3600)  # long past any deadline: nothing may escalate
        messages = await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED), settle=2.0)
        record = await dispatch_record(client, dispatch.dispatch_id)

    [u] = record["updates"]
    assert u["state"] == "delivered" and u["update_id"] == str(update_id(dispatch.dispatch_id, update.new_report_id))
    outcomes = [a["outcome"] for a in u["history"]]
    assert outcomes[-1] == "delivered" and outcomes.count("retry") >= 2
    update_hits = [h for h in endpoint.hits if h.headers["ce-type"] == CALLER_ADDED]
    assert len(update_hits) == len(u["history"])  # every attempt recorded
    assert {(h.headers["idempotency-key"], h.signature_ok) for h in update_hits} == {(u["update_id"], True)}
    assert of_type(messages, ESCALATED) == []
    assert record["escalation_steps"] == [] and record["escalation_due_at"] is None
    assert record["acknowledged_at"] == acknowledged["acknowledged_at"]
    assert record["history"] == acknowledged["history"]


async def test_an_agency_on_email_is_told_another_caller_reported_the_incident(database_url, broker, smtp):
    dispatch = dispatch_event("pln")
    update = caller_added(dispatch)
    settings = notifier_settings(database_url, broker.bootstrap, smtp_host="127.0.0.1", smtp_port=smtp.port)
    async with running(create_app(settings, OffsetClock()), API_KEY) as client:
        await set_agency(client, "pln", email=["piket@pln.co.id"], channels=["email"])
        await produce(broker.bootstrap, [record_of(dispatch), update_record(update)])
        await eventually(lambda: len(smtp.messages) == 2)
        record = await eventually(lambda: _delivered_update(client, dispatch.dispatch_id))

    # Both are queued at once and may go in either order: pick the update by its Message-ID.
    [mail] = [m for _, m in smtp.messages if ".update@" in m["Message-ID"]]
    text = text_of(mail)
    assert "another caller" in mail["Subject"]
    assert "another caller reported the incident already dispatched to PLN" in text
    assert str(update.new_report_id) in text and str(dispatch.dispatch_id) in text
    assert "/v1/ack/" in text
    assert record["updates"][0]["history"][-1]["channel"] == "email"


async def _delivered_update(client, dispatch_id):
    record = await dispatch_record(client, dispatch_id)
    return record if record["updates"] and record["updates"][0]["state"] == "delivered" else None


async def delivered_record(client, dispatch_id) -> dict | None:
    record = await dispatch_record(client, dispatch_id)
    return record if record["state"] == "delivered" else None
