"""Webhook delivery done right, against a real PostgreSQL, broker, HTTP endpoint and
SMTP server: signed requests, a circuit breaker that postpones without losing, and
e-mail when the webhook gives up."""

import json

import pytest

from services.notifier.app import create_app
from services.notifier.clock import OffsetClock
from tests.conftest import API_KEY
from tests.integration.notifier_support import (
    DELIVERED,
    FAILED,
    HELD,
    AgencyEndpoint,
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


async def test_each_request_is_signed_so_the_agency_can_verify_it(database_url, broker, endpoint):
    event = dispatch_event("damkar")
    clock = OffsetClock()
    endpoint.now = lambda: clock.now().timestamp()
    async with running(create_app(notifier_settings(database_url, broker.bootstrap), clock), API_KEY) as client:
        agency = await set_agency(client, "damkar", webhook_url=endpoint.url, channels=["webhook"])
        endpoint.secrets = [agency["webhook_secret"]]
        await produce(broker.bootstrap, [record_of(event)])
        await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
    [hit] = endpoint.hits
    assert hit.signature_ok
    assert hit.headers["idempotency-key"] == str(event.dispatch_id)
    assert json.loads(hit.body)["dispatch_id"] == str(event.dispatch_id)
    endpoint.secrets = ["whsec_someone-else"]
    assert not endpoint._verified(hit.headers, hit.body)  # the same request, judged with another secret


async def test_a_rotated_secret_keeps_signing_during_its_grace_period(database_url, broker, endpoint):
    first, second = dispatch_event("polres"), dispatch_event("polres")
    async with running(create_app(notifier_settings(database_url, broker.bootstrap)), API_KEY) as client:
        old = (await set_agency(client, "polres", webhook_url=endpoint.url))["webhook_secret"]
        await produce(broker.bootstrap, [record_of(first)])
        await eventually(lambda: len(endpoint.hits) == 1)
        rotated = (await client.post("/v1/agencies/polres/webhook/secret")).json()
        await produce(broker.bootstrap, [record_of(second)])
        await eventually(lambda: len(endpoint.hits) == 2)
        shown_again = (await client.get("/v1/agencies/polres")).json()
    assert rotated["webhook_secret"] != old and rotated["previous_secret_valid_until"]
    assert shown_again["webhook_secret"] is None and shown_again["webhook_secret_set"]
    before, after = endpoint.hits
    assert before.headers["e112-signature"].count("v1=") == 1
    assert after.headers["e112-signature"].count("v1=") == 2  # new secret first, then the old one
    for secret in (old, rotated["webhook_secret"]):
        endpoint.secrets = [secret]
        assert endpoint._verified(after.headers, after.body)
    endpoint.secrets = [rotated["webhook_secret"]]
    assert not endpoint._verified(before.headers, before.body)


async def test_an_endpoint_down_for_a_while_gets_each_dispatch_once_after_it_recovers(database_url, broker, endpoint):
    events = [dispatch_event("bpbd") for _ in range(6)]
    ids = sorted(str(e.dispatch_id) for e in events)
    endpoint.status = 503
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        delivery_max_attempts=100,
        breaker_failure_threshold=3,
        breaker_cooldown_seconds=0.5,
        breaker_cooldown_cap_seconds=1.0,
    )
    async with running(create_app(settings), API_KEY) as client:
        secret = (await set_agency(client, "bpbd", webhook_url=endpoint.url, channels=["webhook"]))["webhook_secret"]
        endpoint.secrets = [secret]
        await produce(broker.bootstrap, [record_of(e) for e in events])

        async def breaker_open_and_postponing():
            agency = (await client.get("/v1/agencies/bpbd")).json()
            metrics = (await client.get("/metrics")).text
            return agency["webhook_breaker"] != "closed" and 'e112_dispatch_postponed_total{agency="bpbd"}' in metrics

        await eventually(breaker_open_and_postponing)
        down_hits = len(endpoint.hits)
        endpoint.status = 200
        messages = await status_events(broker.bootstrap, lambda ms: len(of_type(ms, DELIVERED)) >= 6, settle=1.0)
        histories = [(await client.get(f"/v1/dispatches/{e.dispatch_id}")).json() for e in events]

    assert down_hits >= 3
    assert sorted(endpoint.accepted_keys()) == ids  # one effective delivery per dispatch
    assert all(h.signature_ok for h in endpoint.hits)
    assert sorted(m.data["dispatch_id"] for m in of_type(messages, DELIVERED)) == ids
    assert of_type(messages, FAILED) == []
    assert all(h["state"] == "delivered" and h["history"][-1]["outcome"] == "delivered" for h in histories)
    # Every attempt made is recorded, and the postponed ones are not counted as attempts.
    assert sum(len(h["history"]) for h in histories) == len(endpoint.hits)


async def test_when_the_webhook_gives_up_the_dispatch_goes_by_email(database_url, broker, endpoint, smtp):
    endpoint.status = 500
    event = dispatch_event("pmi")
    settings = notifier_settings(
        database_url, broker.bootstrap, delivery_max_attempts=2, smtp_port=smtp.port, smtp_host="127.0.0.1"
    )
    async with running(create_app(settings), API_KEY) as client:
        await set_agency(client, "pmi", webhook_url=endpoint.url, email=["ops@pmi.blitarkab.go.id"])
        await produce(broker.bootstrap, [record_of(event)])
        messages = await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
        record = (await client.get(f"/v1/dispatches/{event.dispatch_id}")).json()

    assert [m.data["channel"] for m in of_type(messages, DELIVERED)] == ["email"]
    assert [(a["channel"], a["outcome"]) for a in record["history"]] == [
        ("webhook", "retry"),
        ("webhook", "gave_up"),
        ("email", "delivered"),
    ]
    assert len(endpoint.hits) == 2
    [mail] = smtp.to("ops@pmi.blitarkab.go.id")
    text = text_of(mail)
    assert mail["Subject"].startswith("[112] kebakaran/rumah - Kec. Wlingi")
    assert "+6281234567890" in text and "Rumah terbakar dekat pasar" in text
    assert "http://127.0.0.1:8003/v1/ack/" + str(event.dispatch_id) in text
    [attachment] = list(mail.iter_attachments())
    assert json.loads(attachment.get_content()) == json.loads(record_of(event).value)


async def test_an_agency_without_a_webhook_is_reached_by_email_at_once(database_url, broker, smtp):
    event = dispatch_event("pln")
    settings = notifier_settings(database_url, broker.bootstrap, smtp_port=smtp.port, smtp_host="127.0.0.1")
    async with running(create_app(settings), API_KEY) as client:
        await set_agency(client, "pln", email=["piket@pln.co.id"])
        await produce(broker.bootstrap, [record_of(event)])
        messages = await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
        record = (await client.get(f"/v1/dispatches/{event.dispatch_id}")).json()
    assert messages[0].data["channel"] == "email" and messages[0].data["attempts"] == 1
    assert [(a["channel"], a["outcome"], a["error"]) for a in record["history"]] == [
        ("webhook", "skipped", "no webhook configured for this agency"),
        ("email", "delivered", None),
    ]
    assert len(smtp.to("piket@pln.co.id")) == 1


async def test_every_channel_failing_fails_the_dispatch_with_each_reason(database_url, broker, endpoint, smtp):
    endpoint.status = 410
    smtp.rcpt_reply = "550 no such mailbox"
    event = dispatch_event("telkom")
    settings = notifier_settings(database_url, broker.bootstrap, smtp_port=smtp.port, smtp_host="127.0.0.1")
    async with running(create_app(settings), API_KEY) as client:
        await set_agency(client, "telkom", webhook_url=endpoint.url, email=["noc@telkom.co.id"])
        await produce(broker.bootstrap, [record_of(event)])
        messages = await status_events(broker.bootstrap, lambda ms: of_type(ms, FAILED))
    [failed] = of_type(messages, FAILED)
    assert failed.data["attempts"] == 2
    assert "webhook: HTTP 410" in failed.data["reason"] and "email: every recipient refused" in failed.data["reason"]
    assert of_type(messages, DELIVERED) == []


async def test_a_dispatch_not_deliverable_in_time_is_announced_held_once_then_delivered(database_url, broker, endpoint):
    event = dispatch_event("pmi")
    endpoint.status = 503
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        delivery_max_attempts=100,
        breaker_failure_threshold=1000,
        held_notice_seconds=0.3,
    )
    async with running(create_app(settings), API_KEY) as client:
        endpoint.secrets = [(await set_agency(client, "pmi", webhook_url=endpoint.url))["webhook_secret"]]
        await produce(broker.bootstrap, [record_of(event)])
        held = await status_events(broker.bootstrap, lambda ms: of_type(ms, HELD, event.dispatch_id))
        hits_when_held = len(endpoint.hits)
        await eventually(lambda: len(endpoint.hits) >= hits_when_held + 3)  # still failing, still trying
        endpoint.status = 200
        messages = await status_events(
            broker.bootstrap, lambda ms: of_type(ms, DELIVERED, event.dispatch_id), settle=1.0
        )
    [announced] = of_type(messages, HELD, event.dispatch_id)  # once, however many attempts failed after it
    assert announced.data["dispatch_id"] == str(event.dispatch_id) and announced.data["agency"] == "pmi"
    assert "503" in announced.data["reason"] and announced.data["next_attempt_at"]
    assert of_type(held, HELD, event.dispatch_id)[0].data == announced.data
    assert endpoint.accepted_keys() == [str(event.dispatch_id)]


async def test_one_dispatch_the_endpoint_keeps_refusing_does_not_hold_back_the_agency_s_others(
    database_url, broker, endpoint
):
    bad, others = dispatch_event("dinkes"), [dispatch_event("dinkes") for _ in range(4)]
    endpoint.refused_keys[str(bad.dispatch_id)] = 503
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        delivery_max_attempts=100,
        breaker_failure_threshold=3,
        breaker_cooldown_seconds=60,
    )
    async with running(create_app(settings), API_KEY) as client:
        endpoint.secrets = [(await set_agency(client, "dinkes", webhook_url=endpoint.url))["webhook_secret"]]
        await produce(broker.bootstrap, [record_of(bad)])
        await eventually(lambda: sum(h.headers["idempotency-key"] == str(bad.dispatch_id) for h in endpoint.hits) >= 5)
        await produce(broker.bootstrap, [record_of(e) for e in others])
        await eventually(lambda: len(endpoint.accepted()) == 4)
        breaker = (await client.get("/v1/agencies/dinkes")).json()["webhook_breaker"]
        metrics = (await client.get("/metrics")).text
    assert breaker == "closed"  # five refusals of one dispatch say nothing about the endpoint
    assert sorted(endpoint.accepted_keys()) == sorted(str(e.dispatch_id) for e in others)
    assert 'e112_dispatch_postponed_total{agency="dinkes"}' not in metrics


async def test_an_agency_answering_slowly_holds_only_its_share_of_the_delivery_slots(database_url, broker):
    """Six fire dispatches to an endpoint that takes 4 s to answer, then three to PLN's
    quick one, with four slots and two per agency: PLN's go at once, beside the fire
    brigade's two in flight, instead of waiting for them."""
    slow, quick = AgencyEndpoint(delay=4.0), AgencyEndpoint()
    fires = [dispatch_event("damkar") for _ in range(6)]
    outages = [dispatch_event("pln") for _ in range(3)]
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        delivery_concurrency=4,
        delivery_concurrency_per_agency=2,
        webhook_timeout_seconds=10,
    )
    try:
        async with running(create_app(settings), API_KEY) as client:
            await set_agency(client, "damkar", webhook_url=slow.url, channels=["webhook"])
            await set_agency(client, "pln", webhook_url=quick.url, channels=["webhook"])
            await produce(broker.bootstrap, [record_of(e) for e in fires])
            await eventually(lambda: slow.in_flight == 2)
            await produce(broker.bootstrap, [record_of(e) for e in outages])
            await eventually(lambda: len(quick.accepted()) == 3)
            slow_answered_by_then = len(slow.hits)
            await eventually(lambda: len(slow.accepted()) == 6, timeout=60)
    finally:
        slow.close()
        quick.close()
    assert slow_answered_by_then == 0, "PLN's dispatches did not wait for the fire brigade's slow answers"
    assert slow.most_in_flight == 2, "the slow endpoint held its share of the slots, not all four"
