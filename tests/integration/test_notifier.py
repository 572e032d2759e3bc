"""Notifier against a real PostgreSQL and broker and a local webhook receiver."""

import uuid

import pytest

from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import DispatchRequested
from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from tests.conftest import API_KEY
from tests.integration.notifier_support import dispatch_event
from tests.support import WebhookReceiver, produce, read_topics, running

pytestmark = pytest.mark.integration


def notifier(database_url: str, bootstrap: str) -> NotifierSettings:
    return NotifierSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        kafka_session_timeout_ms=2000,
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_cap_seconds=0.2,
        delivery_max_attempts=4,
        webhook_timeout_seconds=2,
    )


def record_of(event: DispatchRequested, event_id: str | None = None) -> KafkaRecord:
    return encode(
        event,
        topic=topics.dispatch_topic(event.agency),
        key=str(event.report_id),
        source="e112/router",
        event_id=event_id,
    )


@pytest.fixture
def receiver():
    instance = WebhookReceiver()
    yield instance
    instance.close()


async def configure(client, agency: str, url: str) -> None:
    response = await client.put(f"/v1/agencies/{agency}/webhook", json={"url": url, "updated_by": "test"})
    assert response.status_code == 200, response.text


async def test_retries_a_failing_endpoint_then_delivers_once(database_url, broker, receiver):
    receiver.responses = [503, 503, 200]
    event = dispatch_event()
    async with running(create_app(notifier(database_url, broker.bootstrap)), API_KEY) as client:
        await configure(client, "damkar", f"{receiver.url}/112")
        await produce(broker.bootstrap, [record_of(event)])
        status = await read_topics(broker.bootstrap, [topics.DISPATCH_STATUS], until=lambda ms: ms, settle=0.5)
        record = (await client.get(f"/v1/dispatches/{event.dispatch_id}")).json()
    assert [m.headers["ce_type"] for m in status] == ["id.go.blitarkab.e112.dispatch.delivered.v1"]
    assert status[0].data["dispatch_id"] == str(event.dispatch_id)
    assert status[0].data["attempts"] == 3
    assert [a["outcome"] for a in record["history"]] == ["retry", "retry", "delivered"]
    assert [a["status_code"] for a in record["history"]] == [503, 503, 200]
    assert len(receiver.requests) == 3
    request = receiver.requests[-1]
    assert request.path == "/112"
    assert request.headers["idempotency-key"] == str(event.dispatch_id)
    assert request.headers["ce-type"] == event.ce_type
    assert request.json["caller"]["phone"] == "+6281234567890"


async def test_a_client_error_is_not_retried_and_is_reported_failed(database_url, broker, receiver):
    receiver.responses = [404]
    event = dispatch_event("pmi")
    async with running(create_app(notifier(database_url, broker.bootstrap)), API_KEY) as client:
        await configure(client, "pmi", receiver.url)
        await produce(broker.bootstrap, [record_of(event)])
        status = await read_topics(broker.bootstrap, [topics.DISPATCH_STATUS], until=lambda ms: ms, settle=0.5)
    assert [m.headers["ce_type"] for m in status] == ["id.go.blitarkab.e112.dispatch.failed.v1"]
    assert status[0].data["attempts"] == 1
    assert "404" in status[0].data["reason"]
    assert len(receiver.requests) == 1


async def test_retries_are_bounded(database_url, broker, receiver):
    receiver.responses = [500]
    event = dispatch_event("bpbd")
    async with running(create_app(notifier(database_url, broker.bootstrap)), API_KEY) as client:
        await configure(client, "bpbd", receiver.url)
        await produce(broker.bootstrap, [record_of(event)])
        status = await read_topics(broker.bootstrap, [topics.DISPATCH_STATUS], until=lambda ms: ms, settle=0.5)
    assert status[0].headers["ce_type"].endswith("dispatch.failed.v1")
    assert status[0].data["attempts"] == 4  # delivery_max_attempts
    assert len(receiver.requests) == 4


async def test_a_duplicated_dispatch_is_delivered_once(database_url, broker, receiver):
    event = dispatch_event("polres")
    once = record_of(event)
    async with running(create_app(notifier(database_url, broker.bootstrap)), API_KEY) as client:
        await configure(client, "polres", receiver.url)
        # The same event twice, and the same dispatch under another ce_id.
        await produce(broker.bootstrap, [once, once, record_of(event)])
        await read_topics(broker.bootstrap, [topics.DISPATCH_STATUS], until=lambda ms: ms, settle=1.5)
    assert len(receiver.requests) == 1


async def test_an_agency_without_a_webhook_gets_a_failed_status_not_silence(database_url, broker):
    event = dispatch_event("telkom")
    async with running(create_app(notifier(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record_of(event)])
        status = await read_topics(broker.bootstrap, [topics.DISPATCH_STATUS], until=lambda ms: ms)
    assert status[0].headers["ce_type"].endswith("dispatch.failed.v1")
    assert "no webhook" in status[0].data["reason"]


async def test_webhook_api_validates_agency_and_url(database_url, broker):
    async with running(create_app(notifier(database_url, broker.bootstrap)), API_KEY) as client:
        unknown = await client.put("/v1/agencies/nasa/webhook", json={"url": "http://x.example", "updated_by": "t"})
        bad_url = await client.put("/v1/agencies/pln/webhook", json={"url": "ftp://x", "updated_by": "t"})
        listed = (await client.get("/v1/agencies")).json()
        missing = await client.get(f"/v1/dispatches/{uuid.uuid4()}")
    assert unknown.status_code == 422 and bad_url.status_code == 422
    assert sorted(a["agency"] for a in listed) == sorted(
        ["damkar", "bpbd", "polres", "dinkes", "pmi", "pln", "telkom", "satpolpp"]
    )
    assert missing.status_code == 404
