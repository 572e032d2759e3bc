"""The notifier as a real process, killed with SIGKILL while deliveries are in flight:
no dispatch is lost, and the agency sees one effective delivery of each."""

import asyncio
import signal

import httpx
import pytest

from devstack.processes import ServiceProcess, free_port
from tests.conftest import API_KEY
from tests.integration.notifier_support import (
    DELIVERED,
    dispatch_event,
    of_type,
    record_of,
    status_events,
)
from tests.support import eventually, produce

pytestmark = pytest.mark.integration


def notifier_process(database_url: str, bootstrap: str, port: int, log_file) -> ServiceProcess:
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "E112_API_KEY": API_KEY,
        "E112_ENV": "development",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "SMTP_TIMEOUT_SECONDS": "1",
        "DELIVERY_POLL_INTERVAL": "0.2",
        "OUTBOX_POLL_INTERVAL": "0.2",
        "DELIVERY_BACKOFF_BASE_SECONDS": "0.05",
        "DELIVERY_BACKOFF_CAP_SECONDS": "0.2",
    }
    return ServiceProcess("notifier", port, env, log_file)


async def test_a_notifier_killed_mid_delivery_loses_no_dispatch(database_url, broker, endpoint, tmp_path):
    events = [dispatch_event("damkar") for _ in range(5)]
    ids = sorted(str(e.dispatch_id) for e in events)
    endpoint.delay = 1.5  # slow answers: deliveries are in flight when the kill comes
    port = free_port()
    first = notifier_process(database_url, broker.bootstrap, port, tmp_path / "notifier-1.log")
    second = notifier_process(database_url, broker.bootstrap, port, tmp_path / "notifier-2.log")
    try:
        await asyncio.to_thread(first.start)
        await asyncio.to_thread(first.wait_ready)
        async with httpx.AsyncClient(base_url=first.url, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
            response = await client.put("/v1/agencies/damkar", json={"webhook_url": endpoint.url, "updated_by": "t"})
            assert response.status_code == 200, response.text
        endpoint.secrets = [response.json()["webhook_secret"]]
        await produce(broker.bootstrap, [record_of(e) for e in events])
        await eventually(lambda: endpoint.in_flight > 0, timeout=30)
        first.stop(signal.SIGKILL)
        assert first.process.returncode == -signal.SIGKILL
        answered_before_kill = len(endpoint.accepted())

        endpoint.delay = 0
        await asyncio.to_thread(second.start)
        await asyncio.to_thread(second.wait_ready)
        messages = await status_events(
            broker.bootstrap, lambda ms: len(of_type(ms, DELIVERED)) >= 5, settle=1.0, timeout=60
        )
    finally:
        first.kill()
        second.stop()
    assert answered_before_kill < len(events)  # some were cut off mid-delivery
    assert sorted(m.data["dispatch_id"] for m in of_type(messages, DELIVERED)) == ids
    assert set(endpoint.accepted_keys()) == set(ids)  # each one reached the agency
    assert all(h.signature_ok for h in endpoint.hits)
