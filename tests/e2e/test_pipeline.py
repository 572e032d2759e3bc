"""The whole pipeline as it runs for real: PostgreSQL, the broker and the four services
as separate processes; reports filed over HTTP; every agency topic read with a plain
Kafka client, as an agency system would; webhooks caught by a local receiver."""

import signal
import statistics
import time
from datetime import datetime

import httpx
import pytest

from devstack.processes import Stack, free_port
from schemas import topics
from schemas.catalog import AGENCIES
from tests.conftest import API_KEY, ON_DUTY_NOW
from tests.support import FIRE_REPORT, WebhookReceiver, eventually, read_topics

pytestmark = pytest.mark.e2e

# The contract's table, written out here rather than imported from the router, so the
# test checks the code against the contract and not against itself.
CONTRACT_AGENCIES = {
    "kebakaran": ("damkar", {"pln", "polres"}),
    "bencana_alam": ("bpbd", {"pmi", "dinkes"}),
    "kerusuhan": ("polres", {"satpolpp"}),
    "kecelakaan": ("polres", {"dinkes"}),
    "penyakit": ("dinkes", {"pmi"}),
    "binatang_buas": ("damkar", set()),
}
KECAMATAN_FOR = {
    "kebakaran": "Wlingi",
    "bencana_alam": "Nglegok",
    "kerusuhan": "srengat",
    "kecelakaan": "KANIGORO",
    "penyakit": "Sutojayan",
    "binatang_buas": "Wonotirto",
}
PHONES = ["081234567890", "+6285645678901", "6281345678902", "(0342) 801234", "0813-3456-7890", "082145678905"]
E164 = ["+6281234567890", "+6285645678901", "+6281345678902", "+62342801234", "+6281334567890", "+6282145678905"]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def receiver():
    instance = WebhookReceiver()
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receiver):
    instance = Stack(
        data_dir=tmp_path_factory.mktemp("stack"),
        api_key=API_KEY,
        ephemeral=True,
        broker_port=free_port(),
        ports={name: free_port() for name in ("intake", "router", "notifier", "shifts")},
        extra_env={"KAFKA_SESSION_TIMEOUT_MS": "2000", **ON_DUTY_NOW},
    )
    try:
        instance.start_infrastructure()
        instance.start_services()
        notifier = instance.services["notifier"].url
        for agency in AGENCIES:
            response = httpx.put(
                f"{notifier}/v1/agencies/{agency}/webhook",
                headers=auth(),
                json={"url": f"{receiver.url}/hooks/{agency}", "updated_by": "e2e"},
            )
            assert response.status_code == 200, response.text
        yield instance
    finally:
        instance.stop()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def report_for(index: int, category: str) -> dict:
    return {
        **FIRE_REPORT,
        "category": category,
        "description": f"Laporan uji {category}",
        "location": {"kecamatan": KECAMATAN_FOR[category], "desa": "Desa Uji"},
        "caller": {"name": f"Penelepon {index}", "phone": PHONES[index]},
    }


async def test_each_category_reaches_exactly_the_contract_agencies(stack, receiver):
    intake = stack.services["intake"].url
    posted: dict[str, dict] = {}
    async with httpx.AsyncClient(headers=auth()) as client:
        for index, category in enumerate(CONTRACT_AGENCIES):
            started = time.monotonic()
            response = await client.post(f"{intake}/v1/reports", json=report_for(index, category))
            assert response.status_code == 202, response.text
            body = response.json()
            assert response.headers["location"] == f"/v1/reports/{body['id']}"
            assert body["status"] == "received"
            posted[body["id"]] = {"category": category, "posted_at": started, "phone": E164[index]}

    expected_total = sum(1 + len(s) for _, s in CONTRACT_AGENCIES.values())
    messages = await read_topics(
        stack.bootstrap,
        [topics.dispatch_topic(a) for a in AGENCIES],
        until=lambda ms: len(ms) >= expected_total,
        settle=2.0,
        timeout=30,
    )
    assert len(messages) == expected_total  # nothing extra, no duplicate

    latencies = []
    for report_id, sent in posted.items():
        got = [m for m in messages if m.key == report_id]
        primary, supporting = CONTRACT_AGENCIES[sent["category"]]
        assert {m.topic for m in got} == {topics.dispatch_topic(a) for a in {primary, *supporting}}
        for message in got:
            agency = message.topic.removeprefix("e112.dispatch.")
            headers = message.headers
            assert headers["ce_specversion"] == "1.0"
            assert headers["ce_type"] == "id.go.blitarkab.e112.dispatch.requested.v1"
            assert headers["ce_source"] and headers["ce_id"]
            assert headers["content-type"] == "application/json"
            datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00"))
            data = message.data
            assert data["report_id"] == report_id and data["agency"] == agency
            assert data["role"] == ("primary" if agency == primary else "supporting")
            assert data["category"] == sent["category"]
            assert data["description"] == f"Laporan uji {sent['category']}"
            assert data["location"]["kecamatan"] == KECAMATAN_FOR[sent["category"]].capitalize()
            assert data["caller"]["phone"] == sent["phone"]
            for field in ("dispatch_id", "subtype", "received_at"):
                assert field in data
            latencies.append(message.seen_at - sent["posted_at"])
    assert len({m.headers["ce_id"] for m in messages}) == expected_total

    # Every dispatch reached its agency's webhook, once.
    await eventually(lambda: len(receiver.requests) >= expected_total, timeout=20)
    dispatch_ids = {m.data["dispatch_id"] for m in messages}
    assert sorted(r.headers["idempotency-key"] for r in receiver.requests) == sorted(dispatch_ids)
    for request in receiver.requests:
        assert request.path == f"/hooks/{request.json['agency']}"

    # The caller's app sees the report routed and delivered.
    async with httpx.AsyncClient(headers=auth()) as client:
        for report_id, sent in posted.items():
            report = await eventually(lambda rid=report_id: _delivered(client, intake, rid), timeout=20)
            events = [e["event"] for e in report["timeline"]]
            assert events[0] == "received" and events[1] == "routed"
            primary, supporting = CONTRACT_AGENCIES[sent["category"]]
            assert sorted(e["agency"] for e in report["timeline"] if e["event"] == "delivered") == sorted(
                [primary, *supporting]
            )
            assert {d["agency"]: d["state"] for d in report["dispatches"]} == {
                a: "delivered" for a in [primary, *supporting]
            }
    print(
        f"\nPOST -> agency topic: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} dispatches"
    )


async def _delivered(client: httpx.AsyncClient, intake: str, report_id: str):
    report = (await client.get(f"{intake}/v1/reports/{report_id}")).json()
    return report if report["status"] == "delivered" else None


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"json": {**FIRE_REPORT, "category": "gempa"}}, 422),
        ({"json": {**FIRE_REPORT, "location": {"kecamatan": "Sukorejo"}}}, 422),
        ({"json": {**FIRE_REPORT, "caller": {"phone": "0812"}}}, 422),
        ({"content": b"{not json", "headers": {**auth(), "content-type": "application/json"}}, 400),
        ({"json": FIRE_REPORT, "headers": {}}, 401),
    ],
    ids=["unknown-category", "unknown-kecamatan", "malformed-phone", "malformed-json", "no-api-key"],
)
def test_bad_input_gets_a_problem(stack, request_kwargs, status):
    kwargs = {"headers": auth(), **request_kwargs}
    response = httpx.post(f"{stack.services['intake'].url}/v1/reports", **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == status and response.json()["detail"]


def test_every_service_answers_health_readiness_metrics_and_openapi(stack):
    for name, service in stack.services.items():
        assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{service.url}/readyz")
        assert ready.status_code == 200, (name, ready.text)
        metrics = httpx.get(f"{service.url}/metrics")
        assert metrics.headers["content-type"].startswith("text/plain") and "e112_" in metrics.text
        assert "081234567890" not in metrics.text and "+6281234567890" not in metrics.text
        spec = httpx.get(f"{service.url}/openapi.json").json()
        assert spec["openapi"].startswith("3.") and "/healthz" in spec["paths"]


async def test_no_personal_data_in_the_logs(stack):
    intake = stack.services["intake"].url
    caller = {"name": "Rahasia Sekali", "phone": "0857-1234-9876"}
    async with httpx.AsyncClient(headers=auth()) as client:
        response = await client.post(f"{intake}/v1/reports", json={**FIRE_REPORT, "caller": caller})
        await eventually(lambda: _delivered(client, intake, response.json()["id"]), timeout=20)
    logs = {path.name: path.read_text() for path in stack.log_dir.glob("*.log")}
    assert "report routed" in logs["router.log"]  # the logs do speak of this report...
    for name, text in logs.items():  # ...but never of who called
        for secret in ("Rahasia Sekali", "085712349876", "+6285712349876", "0857-1234-9876"):
            assert secret not in text, f"{secret} in {name}"


async def test_a_second_caller_for_the_same_fire_reaches_the_agencies_as_an_update(stack):
    intake = stack.services["intake"].url
    fire = {**FIRE_REPORT, "location": {"kecamatan": "Garum", "desa": "Sumberdiren"}}
    async with httpx.AsyncClient(headers=auth()) as client:
        first = (await client.post(f"{intake}/v1/reports", json=fire)).json()
        second = (await client.post(f"{intake}/v1/reports", json={**fire, "caller": {"phone": "085799998888"}})).json()
    assert first["status"] == "received" and second["status"] == "linked" and second["linked_to"] == first["id"]
    fire_topics = [topics.dispatch_topic(a) for a in ("damkar", "pln", "polres")]

    def updates(messages):
        return [m for m in messages if m.data.get("new_report_id") == second["id"]]

    messages = await read_topics(stack.bootstrap, fire_topics, until=lambda ms: len(updates(ms)) >= 3, settle=1.0)
    assert {m.topic for m in updates(messages)} == set(fire_topics)
    assert all(m.key == first["id"] and m.data["caller"]["phone"] == "+6285799998888" for m in updates(messages))
    assert not [m for m in messages if m.key == second["id"]]  # no second dispatch


async def test_a_closed_incident_reaches_its_agencies_as_a_closing_notice(stack, receiver):
    """Closed by an operator: each agency that had the dispatch gets dispatch.closed on its
    topic and a closing notice at its webhook, and the report's timeline records each
    notice delivered."""
    intake = stack.services["intake"].url
    fire = {**FIRE_REPORT, "location": {"kecamatan": "Kademangan", "desa": "Plosorejo"}}
    operator = {"E112-Operator-Id": "7d5d7f7e-2c2c-4c7a-9d55-3a1f0c8a6b01"}
    async with httpx.AsyncClient(headers=auth()) as client:
        report_id = (await client.post(f"{intake}/v1/reports", json=fire)).json()["id"]
        await eventually(lambda: _delivered(client, intake, report_id), timeout=20)
        closing = await client.post(
            f"{intake}/v1/reports/{report_id}/close",
            headers=operator,
            json={"outcome": "handed_over", "note": "diserahkan ke Polres"},
        )
        assert closing.status_code == 200, closing.text

        async def notices_recorded():
            report = (await client.get(f"{intake}/v1/reports/{report_id}")).json()
            done = [
                e
                for e in report["timeline"]
                if e["event"] == "update_delivered" and e["detail"]["update_type"] == "closed"
            ]
            return report if len(done) == 3 else None

        report = await eventually(notices_recorded, timeout=30)
    fire_topics = [topics.dispatch_topic(a) for a in ("damkar", "pln", "polres")]

    def closed(messages):
        return [m for m in messages if m.key == report_id and m.headers["ce_type"].endswith(".dispatch.closed.v1")]

    messages = await read_topics(stack.bootstrap, fire_topics, until=lambda ms: len(closed(ms)) >= 3)
    assert {m.topic for m in closed(messages)} == set(fire_topics)
    assert {m.data["outcome"] for m in closed(messages)} == {"handed_over"}
    dispatches = {d["agency"]: d["dispatch_id"] for d in report["dispatches"]}
    assert {m.data["dispatch_id"] for m in closed(messages)} == set(dispatches.values())
    closing_type = "id.go.blitarkab.e112.dispatch.closed.v1"
    hooks = [r for r in receiver.requests if r.headers.get("ce-type") == closing_type and report_id.encode() in r.body]
    assert {r.path.rsplit("/", 1)[-1] for r in hooks} == {"damkar", "pln", "polres"}
    assert report["status"] == "closed" and report["closure"]["outcome"] == "handed_over"


def test_services_stop_cleanly_on_sigterm(stack):
    # Last in this module: it stops the stack's services.
    for name, service in stack.services.items():
        code = service.stop(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so a clean
        # stop ends "killed by SIGTERM" after the lifespan's exit has run.
        assert code in (0, -signal.SIGTERM), f"{name} exited with {code}; see {service.log_file}"
        log = service.log_file.read_text()
        assert "Application shutdown complete" in log and "Finished server process" in log
        assert "Traceback" not in log, f"{name} logged a traceback"
