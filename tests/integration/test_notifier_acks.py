"""Acknowledgements and field status: each agency with its own key, on its own
dispatches only, through the API and through the signed link in the e-mail; an
acknowledgement stops every further notice at once."""

import re
import uuid

import pytest

from services.notifier.app import create_app
from services.notifier.clock import OffsetClock
from tests.conftest import API_KEY
from tests.integration.notifier_support import (
    ACK,
    DELIVERED,
    ESCALATED,
    FAILED,
    FIELD,
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
PROBLEM = "application/problem+json"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_an_agency_acknowledges_its_own_dispatch_and_no_other(database_url, broker, endpoint):
    mine, theirs = dispatch_event("damkar"), dispatch_event("polres")
    async with running(create_app(notifier_settings(database_url, broker.bootstrap)), API_KEY) as client:
        for agency in ("damkar", "polres"):
            await set_agency(client, agency, webhook_url=endpoint.url)
        damkar = await agency_key(client, "damkar")
        await produce(broker.bootstrap, [record_of(mine), record_of(theirs)])
        await status_events(broker.bootstrap, lambda ms: len(of_type(ms, DELIVERED)) == 2)

        url = f"/v1/dispatches/{theirs.dispatch_id}/acknowledgement"
        other = await client.post(url, headers=bearer(damkar))
        no_key = await client.post(url, headers={"Authorization": ""})
        admin_key = await client.post(url)  # the Command Center's key is not an agency's
        unknown = await client.post(f"/v1/dispatches/{uuid.uuid4()}/acknowledgement", headers=bearer(damkar))
        first = await client.post(f"/v1/dispatches/{mine.dispatch_id}/acknowledgement", headers=bearer(damkar))
        again = await client.post(f"/v1/dispatches/{mine.dispatch_id}/acknowledgement", headers=bearer(damkar))
        messages = await status_events(broker.bootstrap, lambda ms: of_type(ms, ACK), settle=1.0)
        theirs_record = (await client.get(f"/v1/dispatches/{theirs.dispatch_id}")).json()
        read_mine = await client.get(f"/v1/agency/dispatches/{mine.dispatch_id}", headers=bearer(damkar))
        read_theirs = await client.get(f"/v1/agency/dispatches/{theirs.dispatch_id}", headers=bearer(damkar))
        read_anonymous = await client.get(f"/v1/agency/dispatches/{mine.dispatch_id}", headers={"Authorization": ""})

    # Another agency's dispatch is as absent as one that does not exist: a key learns nothing.
    assert other.status_code == 404 and other.headers["content-type"] == PROBLEM
    assert other.json()["detail"] == f"damkar has no dispatch {theirs.dispatch_id}."
    assert read_mine.status_code == 200 and read_mine.json()["state"] == "delivered"
    assert read_mine.json()["acknowledged_via"] == "api" and read_mine.json()["agency"] == "damkar"
    assert "caller" not in read_mine.text and "history" not in read_mine.json()
    assert read_theirs.status_code == 404 and read_anonymous.status_code == 401
    assert no_key.status_code == 401 and admin_key.status_code == 401
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM
    assert first.status_code == 200 and first.json()["already_acknowledged"] is False
    assert again.status_code == 200 and again.json()["already_acknowledged"] is True
    assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    [ack] = of_type(messages, ACK)  # once, however often it is sent
    assert ack.data["dispatch_id"] == str(mine.dispatch_id) and ack.data["via"] == "api"
    assert ack.key == str(mine.report_id)
    assert theirs_record["acknowledged_at"] is None


async def test_a_revoked_key_acknowledges_nothing(database_url, broker):
    app = create_app(notifier_settings(database_url, broker.bootstrap))
    async with running(app, API_KEY) as client:
        created = await client.post("/v1/agencies/pmi/api-keys", json={"created_by": "test"})
        key, key_id = created.json()["key"], created.json()["id"]
        before = await client.post(f"/v1/dispatches/{uuid.uuid4()}/acknowledgement", headers=bearer(key))
        revoked = await client.delete(f"/v1/agencies/pmi/api-keys/{key_id}")
        after = await client.post(f"/v1/dispatches/{uuid.uuid4()}/acknowledgement", headers=bearer(key))
        listed = (await client.get("/v1/agencies/pmi/api-keys")).json()
        async with app.state.pool.acquire() as conn:
            stored = await conn.fetchval("SELECT key_hash FROM agency_api_keys WHERE id = $1", uuid.UUID(key_id))
    assert before.status_code == 404  # the key worked: it got as far as looking for the dispatch
    assert revoked.status_code == 204 and after.status_code == 401
    assert listed[0]["revoked_at"] is not None and "key" not in listed[0]
    assert key not in stored and len(stored) == 64  # only its SHA-256 is kept


async def test_an_acknowledgement_stops_retries_and_escalation_at_once(database_url, broker, endpoint):
    endpoint.status = 503
    event = dispatch_event("dinkes")
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap, delivery_max_attempts=100)
    async with running(create_app(settings, clock), API_KEY) as client:
        await set_agency(client, "dinkes", webhook_url=endpoint.url, ack_deadline_seconds=60)
        key = await agency_key(client, "dinkes")
        await produce(broker.bootstrap, [record_of(event)])
        await eventually(lambda: len(endpoint.hits) >= 2)
        response = await client.post(f"/v1/dispatches/{event.dispatch_id}/acknowledgement", headers=bearer(key))
        assert response.status_code == 200
        hits_at_ack = len(endpoint.hits)
        clock.advance(3600)  # every retry and both escalation deadlines are long due
        messages = await status_events(broker.bootstrap, lambda ms: of_type(ms, ACK), settle=2.0)
        record = (await client.get(f"/v1/dispatches/{event.dispatch_id}")).json()
    assert len(endpoint.hits) <= hits_at_ack + 1  # at most the attempt already in flight
    assert record["state"] == "stopped" and record["escalation_steps"] == [] and record["escalation_due_at"] is None
    assert of_type(messages, ESCALATED) == [] and of_type(messages, DELIVERED) == [] and of_type(messages, FAILED) == []


async def test_field_status_moves_forward_and_acknowledges(database_url, broker, endpoint):
    event = dispatch_event("damkar")
    async with running(create_app(notifier_settings(database_url, broker.bootstrap)), API_KEY) as client:
        await set_agency(client, "damkar", webhook_url=endpoint.url)
        key = await agency_key(client, "damkar")
        await produce(broker.bootstrap, [record_of(event)])
        await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
        url = f"/v1/dispatches/{event.dispatch_id}/field-status"
        answers = [
            await client.post(url, headers=bearer(key), json=body)
            for body in (
                {"status": "on_the_way", "note": "Unit 2 dari pos Wlingi"},
                {"status": "on_the_way"},
                {"status": "done"},
                {"status": "on_scene"},
                {"status": "arrived"},
            )
        ]
        messages = await status_events(broker.bootstrap, lambda ms: len(of_type(ms, FIELD)) >= 2, settle=1.0)
        record = (await client.get(f"/v1/dispatches/{event.dispatch_id}")).json()
    codes = [a.status_code for a in answers]
    assert codes == [200, 200, 200, 409, 422]
    assert [a.json()["changed"] for a in answers[:3]] == [True, False, True]
    assert answers[3].headers["content-type"] == PROBLEM and "cannot go back" in answers[3].json()["detail"]
    assert [(m.data["status"], m.data["note"]) for m in of_type(messages, FIELD)] == [
        ("on_the_way", "Unit 2 dari pos Wlingi"),
        ("done", None),
    ]
    [ack] = of_type(messages, ACK)  # a unit on its way has the dispatch
    assert ack.data["via"] == "api"
    assert record["field_status"] == "done"
    assert [s["status"] for s in record["field_statuses"]] == ["on_the_way", "done"]


async def test_the_link_in_the_email_acknowledges_after_a_confirmation(database_url, broker, smtp):
    event = dispatch_event("satpolpp")
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap, smtp_host="127.0.0.1", smtp_port=smtp.port)
    async with running(create_app(settings, clock), API_KEY) as client:
        await set_agency(client, "satpolpp", email=["piket@satpolpp.blitarkab.go.id"], ack_deadline_seconds=60)
        await produce(broker.bootstrap, [record_of(event)])
        await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
        [mail] = smtp.to("piket@satpolpp.blitarkab.go.id")
        link = re.search(r"http://\S+/v1/ack/(\S+)", text_of(mail))
        path = f"/v1/ack/{link.group(1)}"
        tampered = await client.post(path.replace(str(event.dispatch_id)[:8], "00000000"))
        page = await client.get(path)
        unacknowledged = (await client.get(f"/v1/dispatches/{event.dispatch_id}")).json()["acknowledged_at"]
        confirmed = await client.post(path)
        clock.advance(600)
        messages = await status_events(broker.bootstrap, lambda ms: of_type(ms, ACK), settle=1.5)
        again = await client.get(path)
        clock.advance(2 * 86_400)
        expired = await client.post(path)
    assert tampered.status_code == 400 and "altered" in tampered.text
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert unacknowledged is None  # opening the link (a mail scanner does) acknowledges nothing
    assert confirmed.status_code == 200 and "acknowledged" in confirmed.text
    [ack] = of_type(messages, ACK)
    assert ack.data["via"] == "email_link"
    assert of_type(messages, ESCALATED) == []
    assert "Already acknowledged" in again.text
    assert expired.status_code == 400 and "expired" in expired.text
