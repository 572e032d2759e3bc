"""Nothing accepted is lost: intake keeps taking reports through a broker outage and a
SIGKILL between its commit and its publish; every one reaches its agencies after."""

import collections
import signal

import httpx
import pytest

from devstack.processes import Stack, free_port
from schemas import topics
from schemas.catalog import AGENCIES, KECAMATAN
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, WebhookReceiver, eventually, read_topics

pytestmark = pytest.mark.e2e

AGENCIES_OF = {"kebakaran": 3, "bencana_alam": 3, "kerusuhan": 2, "kecelakaan": 2, "penyakit": 2, "binatang_buas": 1}


@pytest.fixture
def receiver():
    instance = WebhookReceiver()
    yield instance
    instance.close()


@pytest.fixture
def stack(tmp_path, receiver):
    instance = Stack(
        data_dir=tmp_path / "stack",
        api_key=API_KEY,
        ephemeral=True,
        broker_port=free_port(),
        ports={name: free_port() for name in ("intake", "router", "notifier", "shifts")},
        extra_env={"KAFKA_SESSION_TIMEOUT_MS": "2000", "OUTBOX_POLL_INTERVAL": "0.5"},
    )
    try:
        instance.start_infrastructure()
        instance.start_services()
        for agency in AGENCIES:
            httpx.put(
                f"{instance.services['notifier'].url}/v1/agencies/{agency}/webhook",
                headers=AUTH,
                json={"url": f"{receiver.url}/{agency}", "updated_by": "e2e"},
            ).raise_for_status()
        yield instance
    finally:
        instance.stop()


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def report(index: int) -> dict:
    category = list(AGENCIES_OF)[index % len(AGENCIES_OF)]
    return {
        **FIRE_REPORT,
        "category": category,
        "description": f"laporan {index}",
        "location": {"kecamatan": KECAMATAN[index % len(KECAMATAN)]},
    }


def post_reports(stack: Stack, count: int) -> dict[str, str]:
    """File `count` reports; return their ids and categories (every one must be a 202)."""
    accepted = {}
    for index in range(count):
        response = httpx.post(f"{stack.services['intake'].url}/v1/reports", json=report(index), headers=AUTH)
        assert response.status_code == 202, response.text
        accepted[response.json()["id"]] = report(index)["category"]
    return accepted


async def all_delivered(stack: Stack, accepted: dict[str, str]) -> bool:
    async with httpx.AsyncClient(headers=AUTH) as client:
        for report_id in accepted:
            body = (await client.get(f"{stack.services['intake'].url}/v1/reports/{report_id}")).json()
            if body["status"] != "delivered":
                return False
    return True


def effective_deliveries(receiver: WebhookReceiver, accepted: dict[str, str]) -> collections.Counter:
    """Deliveries per report, after the agency's deduplication by Idempotency-Key."""
    unique = {r.headers["idempotency-key"]: r.json["report_id"] for r in receiver.requests}
    return collections.Counter(report_id for report_id in unique.values() if report_id in accepted)


async def test_reports_posted_while_the_broker_is_down_reach_every_agency_when_it_is_back(stack, receiver):
    stack.stop_broker()
    accepted = post_reports(stack, 24)  # intake stays up: the outbox holds them
    assert httpx.get(f"{stack.services['intake'].url}/readyz").status_code == 200
    stack.start_broker()

    await eventually(lambda: all_delivered(stack, accepted), timeout=120, interval=0.5)
    deliveries = effective_deliveries(receiver, accepted)
    assert deliveries == {rid: AGENCIES_OF[category] for rid, category in accepted.items()}
    print(
        f"\nbroker outage: {len(accepted)} reports posted during it, "
        f"{sum(deliveries.values())} dispatches delivered after it "
        f"({len(receiver.requests)} webhook requests, duplicates removed by Idempotency-Key)"
    )


async def test_intake_killed_between_commit_and_publish_publishes_after_restart_once(stack, receiver):
    intake = stack.services["intake"]
    stack.stop_broker()  # the relay cannot publish: the reports wait in the outbox
    accepted = post_reports(stack, 6)
    intake.stop(signal.SIGKILL)
    stack.start_broker()
    intake.start()
    intake.wait_ready()

    await eventually(lambda: all_delivered(stack, accepted), timeout=120, interval=0.5)
    received = await read_topics(
        stack.bootstrap,
        [topics.REPORTS],
        settle=2.0,
        until=lambda ms: (
            len({m.key for m in ms if m.headers["ce_type"].endswith("report.received.v1")}) >= len(accepted)
        ),
    )
    published = collections.Counter(m.key for m in received if m.headers["ce_type"].endswith("report.received.v1"))
    assert published == {report_id: 1 for report_id in accepted}
    assert effective_deliveries(receiver, accepted) == {rid: AGENCIES_OF[c] for rid, c in accepted.items()}
