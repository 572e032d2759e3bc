"""Router against a real PostgreSQL and broker, in-process."""

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import EventCaller, EventLocation, ReportReceived
from services.router.app import create_app
from services.router.settings import RouterSettings
from tests.conftest import API_KEY
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration

DISPATCH = "id.go.blitarkab.e112.dispatch.requested.v1"


def router(database_url: str, bootstrap: str) -> RouterSettings:
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        kafka_session_timeout_ms=2000,
    )


def received(category: str, report_id: uuid.UUID | None = None) -> ReportReceived:
    return ReportReceived(
        report_id=report_id or uuid.uuid4(),
        kind="emergency",
        category=category,
        subtype=None,
        description="uji",
        location=EventLocation(kecamatan="Talun"),
        caller=EventCaller(name="Sri", phone="+6281234567890"),
        channel="call",
        received_at=datetime.now(UTC),
    )


def record_of(event: ReportReceived, event_id: str | None = None) -> KafkaRecord:
    return encode(event, topic=topics.REPORTS, key=str(event.report_id), source="test", event_id=event_id)


async def handled(database_url: str, *event_ids: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchval("SELECT count(*) FROM router.inbox WHERE event_id = ANY($1::text[])", event_ids)
        return found == len(event_ids)
    finally:
        await conn.close()


async def test_a_redelivered_event_produces_nothing_new(database_url, broker):
    report = received("kebakaran")
    once, copy = record_of(report), record_of(report)
    async with running(create_app(router(database_url, broker.bootstrap)), API_KEY):
        # The same event twice (same ce_id), then the same report under a new ce_id.
        await produce(broker.bootstrap, [once, once, copy])
        await eventually(lambda: handled(database_url, once.event_id, copy.event_id))
        messages = await read_topics(
            broker.bootstrap,
            [topics.dispatch_topic(a) for a in ("damkar", "pln", "polres")] + [topics.REPORTS],
            until=lambda ms: sum(m.headers["ce_type"] == DISPATCH for m in ms) >= 3,
            settle=1.5,
        )
    dispatches = [m for m in messages if m.headers["ce_type"] == DISPATCH]
    assert sorted(m.topic for m in dispatches) == ["e112.dispatch.damkar", "e112.dispatch.pln", "e112.dispatch.polres"]
    routed = [m for m in messages if m.headers["ce_type"].endswith("report.routed.v1")]
    assert len(routed) == 1


async def test_an_unreadable_event_is_deadlettered_and_does_not_block_the_next(database_url, broker):
    garbage = KafkaRecord(topic=topics.REPORTS, key=b"x", headers=[("ce_id", b"junk-1")], value=b"not json")
    report = received("binatang_buas")
    async with running(create_app(router(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [garbage, record_of(report)])
        messages = await read_topics(
            broker.bootstrap,
            [topics.DEADLETTER, topics.dispatch_topic("damkar")],
            until=lambda ms: {m.topic for m in ms} == {topics.DEADLETTER, "e112.dispatch.damkar"},
        )
    dead = [m for m in messages if m.topic == topics.DEADLETTER]
    assert len(dead) == 1
    assert dead[0].raw == b"not json" and dead[0].key == "x"
    assert dead[0].headers["e112_original_topic"] == topics.REPORTS
    assert "ce_specversion" in dead[0].headers["e112_error"]
    dispatch = next(m for m in messages if m.topic == "e112.dispatch.damkar")
    assert dispatch.data["report_id"] == str(report.report_id)


async def test_a_rule_change_routes_the_next_report_without_a_restart(database_url, broker):
    async with running(create_app(router(database_url, broker.bootstrap)), API_KEY) as client:
        table = (await client.get("/v1/routing-table")).json()
        assert table["version"] == 1
        whole = table["table"]
        whole["rules"]["binatang_buas"]["supporting"] = ["satpolpp"]
        change = await client.put(
            "/v1/routing-table",
            json={"table": whole, "changed_by": "supervisor Ani", "reason": "Satpol PP handles stray dogs"},
        )
        assert change.status_code == 200, change.text
        assert change.json()["version"] == 2
        report = received("binatang_buas")
        await produce(broker.bootstrap, [record_of(report)])
        messages = await read_topics(broker.bootstrap, [topics.dispatch_topic("satpolpp")], until=lambda ms: ms)
        decision = (await client.get(f"/v1/decisions/{report.report_id}")).json()
    assert messages[0].data["report_id"] == str(report.report_id)
    assert messages[0].data["role"] == "supporting"
    assert decision["rule_version"] == 2
    assert decision["rule_changed_by"] == "supervisor Ani"
    assert {d["agency"] for d in decision["dispatches"]} == {"damkar", "satpolpp"}


async def test_a_table_missing_a_category_is_refused(database_url, broker):
    async with running(create_app(router(database_url, broker.bootstrap)), API_KEY) as client:
        whole = (await client.get("/v1/routing-table")).json()["table"]
        del whole["rules"]["penyakit"]
        response = await client.put("/v1/routing-table", json={"table": whole, "changed_by": "x", "reason": "y"})
        unchanged = (await client.get("/v1/routing-table")).json()["version"]
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "penyakit" in response.json()["detail"]
    assert unchanged == 1
