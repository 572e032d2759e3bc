"""Intake against a real PostgreSQL and broker, in-process."""

import asyncio

import asyncpg
import pytest

from devstack.broker import TansuBroker
from devstack.processes import free_port
from schemas import topics
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, eventually, read_topics, running

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def intake(database_url: str, bootstrap: str) -> IntakeSettings:
    return IntakeSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        kafka_session_timeout_ms=2000,
    )


async def outbox_size(database_url: str) -> int:
    """Events waiting in the outbox (published ones are kept a while, for replay)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM intake.outbox WHERE published_at IS NULL")
    finally:
        await conn.close()


async def test_reports_accepted_while_the_broker_is_down_are_published_when_it_is_back(database_url, tmp_path):
    port = free_port()
    app = create_app(intake(database_url, f"127.0.0.1:{port}"))
    async with running(app, API_KEY) as client:
        assert (await client.get("/readyz")).status_code == 200  # ready without a broker
        ids = []
        for _ in range(3):
            response = await client.post("/v1/reports", json=FIRE_REPORT)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        assert await outbox_size(database_url) == 3  # held, not lost

        broker = TansuBroker(port, log_file=tmp_path / "broker.log")
        broker.start()
        try:
            messages = await read_topics(
                broker.bootstrap, [topics.REPORTS], timeout=40, until=lambda ms: len(ms) >= 3, settle=0.5
            )
        finally:
            broker.stop()
    received = [m for m in messages if m.headers["ce_type"] == "id.go.blitarkab.e112.report.received.v1"]
    assert sorted(m.data["report_id"] for m in received) == sorted(ids)
    assert all(m.key == m.data["report_id"] for m in received)
    assert await outbox_size(database_url) == 0


async def test_same_idempotency_key_and_body_returns_the_first_report(database_url, broker):
    app = create_app(intake(database_url, broker.bootstrap))
    async with running(app, API_KEY) as client:
        first = await client.post("/v1/reports", json=FIRE_REPORT, headers={"Idempotency-Key": "call-77"})
        # The same report, phone written another way: the same request.
        same = {**FIRE_REPORT, "caller": {"name": "Budi", "phone": "+6281234567890"}}
        again = await client.post("/v1/reports", json=same, headers={"Idempotency-Key": "call-77"})
        other = await client.post(
            "/v1/reports", json={**FIRE_REPORT, "description": "Lain"}, headers={"Idempotency-Key": "call-77"}
        )
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert other.status_code == 409
    assert other.headers["content-type"].startswith(PROBLEM)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake.reports") == 1
        # One "received" entry: the replay wrote nothing.
        assert await conn.fetchval("SELECT count(*) FROM intake.report_timeline WHERE event = 'received'") == 1
    finally:
        await conn.close()


async def test_one_report_when_the_same_request_races_twenty_times(database_url, broker):
    app = create_app(intake(database_url, broker.bootstrap))
    async with running(app, API_KEY) as client:
        responses = await asyncio.gather(
            *[client.post("/v1/reports", json=FIRE_REPORT, headers={"Idempotency-Key": "race-1"}) for _ in range(20)]
        )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake.reports") == 1
        assert await conn.fetchval("SELECT count(*) FROM intake.report_timeline") == 1
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"category": "banjir"}, 422, "category"),
        ({"location": {"kecamatan": "Kota Blitar"}}, 422, "location.kecamatan"),
        ({"caller": {"phone": "12-34"}}, 422, "caller.phone"),
        ({"location": {"kecamatan": "Wlingi", "lat": False, "lon": 112.3}}, 422, "location.lat"),
        ({"location": {"kecamatan": "Wlingi", "lat": -6.2, "lon": 106.8}}, 422, "location.lat"),  # Jakarta
        ({"channel": "pigeon"}, 422, "channel"),
        ({"colour": "red"}, 422, "colour"),
        ({"description": None}, 422, "description"),  # required for an emergency
        # PostgreSQL refuses NUL in text; it used to reach the store and answer 503 "retry".
        ({"description": "a\u0000b"}, 422, "description"),
        ({"location": {"kecamatan": "Wlingi", "address": "Jl.\u0007 Beru"}}, 422, "location.address"),
        ({"caller": {"name": "Budi\u0085", "phone": "081234567890"}}, 422, "caller.name"),
    ],
)
async def test_bad_input_is_a_4xx_problem_naming_the_field(database_url, broker, change, status, field):
    app = create_app(intake(database_url, broker.bootstrap))
    async with running(app, API_KEY) as client:
        response = await client.post("/v1/reports", json={**FIRE_REPORT, **change})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["detail"]
    assert field in [e["field"] for e in body["errors"]]
    assert "081234567890" not in response.text  # the caller's number is not echoed back


async def test_refused_input_stores_nothing_and_an_oversized_body_is_413_before_the_key_is_checked(
    database_url, broker
):
    app = create_app(intake(database_url, broker.bootstrap))
    async with running(app, API_KEY) as client:
        nul = await client.post("/v1/reports", json={**FIRE_REPORT, "description": "a\u0000b"})
        huge = await client.post(
            "/v1/reports",
            content=b'{"description": "' + b"x" * (2 * 1024 * 1024) + b'"}',
            headers={"content-type": "application/json", "Authorization": ""},
        )
        nul_in_path = await client.get("/v1/reports/a%00b")
        nul_in_query = await client.get("/v1/reports", params={"kecamatan": "Wl\x00ingi"})
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "description"
    assert huge.status_code == 413 and huge.headers["content-type"].startswith(PROBLEM), huge.text
    assert nul_in_path.status_code == 422 and nul_in_query.status_code == 422
    assert [e["field"] for e in nul_in_query.json()["errors"]] == ["query.kecamatan"]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake.reports") == 0
    finally:
        await conn.close()


async def test_malformed_json_and_missing_key_are_problems(database_url, broker):
    app = create_app(intake(database_url, broker.bootstrap))
    async with running(app, API_KEY) as client:
        malformed = await client.post(
            "/v1/reports", content=b'{"category": ', headers={"content-type": "application/json"}
        )
        no_key = await client.post("/v1/reports", json=FIRE_REPORT, headers={"Authorization": ""})
        wrong_key = await client.post("/v1/reports", json=FIRE_REPORT, headers={"Authorization": "Bearer nope"})
        unknown = await client.get("/v1/reports/00000000-0000-0000-0000-000000000000")
        not_uuid = await client.get("/v1/reports/abc")
    assert malformed.status_code == 400 and malformed.headers["content-type"].startswith(PROBLEM)
    assert no_key.status_code == wrong_key.status_code == 401
    assert no_key.headers["content-type"].startswith(PROBLEM)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(PROBLEM)
    assert not_uuid.status_code == 422


async def test_a_prank_is_recorded_but_not_an_emergency(database_url, broker):
    app = create_app(intake(database_url, broker.bootstrap))
    async with running(app, API_KEY) as client:
        response = await client.post(
            "/v1/reports", json={"kind": "prank", "caller": {"phone": "0812 3456 7890"}, "channel": "call"}
        )
        assert response.status_code == 202, response.text
        report = (await client.get(response.headers["location"])).json()
    assert report["kind"] == "prank"
    assert report["status"] == "recorded"
    assert report["caller"]["phone"] == "+6281234567890"


async def test_database_outage_is_a_503_with_retry_after_and_nothing_half_written(database_url, broker, pg_admin_uri):
    app = create_app(intake(database_url, broker.bootstrap))
    name = database_url.split("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_admin_uri)
    try:
        async with running(app, API_KEY) as client:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            down = await client.post("/v1/reports", json=FIRE_REPORT)
            ready_down = await client.get("/readyz")
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            up = await eventually(lambda: _accepted(client), timeout=15)
    finally:
        await admin.close()
    assert down.status_code == 503, down.text
    assert down.headers["content-type"].startswith(PROBLEM)
    assert int(down.headers["retry-after"]) > 0
    assert ready_down.status_code == 503
    assert up.status_code == 202
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake.reports") == 1  # only the accepted one
    finally:
        await conn.close()


async def _accepted(client):
    response = await client.post("/v1/reports", json=FIRE_REPORT)
    return response if response.status_code == 202 else None


async def test_two_intake_replicas_publish_each_report_once(database_url, broker):
    first = create_app(intake(database_url, broker.bootstrap))
    second = create_app(intake(database_url, broker.bootstrap))
    async with running(first, API_KEY) as one, running(second, API_KEY) as two:
        ids = []
        for index in range(30):
            client = one if index % 2 else two
            response = await client.post("/v1/reports", json=FIRE_REPORT)
            assert response.status_code == 202
            ids.append(response.json()["id"])
        messages = await read_topics(
            broker.bootstrap, [topics.REPORTS], timeout=30, settle=2.0, until=lambda ms: len(ms) >= len(ids)
        )
    published = [m.data["report_id"] for m in messages if m.headers["ce_type"].endswith("report.received.v1")]
    assert sorted(published) == sorted(ids)  # each once: one relay publishes at a time
