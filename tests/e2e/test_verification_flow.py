"""A call taker's verification, across the real processes: an SMS about a brawl waits,
lands with the one operator on duty, and reaches the police only after her verdict; a
WhatsApp fire goes out at once, flagged unverified, and is called off when she finds
it a prank."""

import httpx
import pytest

from devstack.processes import Stack, free_port
from schemas.reports import OPERATOR_HEADER
from tests.conftest import API_KEY, ON_DUTY_NOW
from tests.e2e.test_pipeline import auth
from tests.support import FIRE_REPORT, WebhookReceiver, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def receiver():
    instance = WebhookReceiver()
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receiver):
    instance = Stack(
        data_dir=tmp_path_factory.mktemp("verify"),
        api_key=API_KEY,
        ephemeral=True,
        broker_port=free_port(),
        ports={name: free_port() for name in ("intake", "router", "notifier", "shifts")},
        extra_env={"KAFKA_SESSION_TIMEOUT_MS": "2000", **ON_DUTY_NOW},
    )
    try:
        instance.start_infrastructure()
        instance.start_services()
        for agency in ("polres", "satpolpp", "damkar", "pln"):
            response = httpx.put(
                f"{instance.services['notifier'].url}/v1/agencies/{agency}/webhook",
                headers=auth(),
                json={"url": f"{receiver.url}/hooks/{agency}", "updated_by": "e2e"},
            )
            assert response.status_code == 200, response.text
        yield instance
    finally:
        instance.stop()


def hooks_for(receiver, report_id: str) -> list:
    return [h for h in list(receiver.requests) if h.json.get("report_id") == report_id]


async def test_a_held_sms_reaches_the_police_only_after_the_operators_verdict(stack, receiver):
    intake, shifts = stack.services["intake"].url, stack.services["shifts"].url
    async with httpx.AsyncClient(headers=auth(), timeout=10) as client:
        sari = (await client.post(f"{shifts}/v1/operators", json={"name": "Sari"})).json()["id"]
        assert (await client.post(f"{shifts}/v1/operators/{sari}/check-in")).status_code == 200
        brawl = {
            **FIRE_REPORT,
            "category": "kerusuhan",
            "channel": "sms",
            "location": {"kecamatan": "Srengat", "desa": "Dandong"},
        }
        accepted = (await client.post(f"{intake}/v1/reports", json=brawl)).json()
        report_id = accepted["id"]

        async def task():
            tasks = (await client.get(f"{shifts}/v1/tasks", params={"report_id": report_id})).json()
            return tasks[0] if tasks and tasks[0]["state"] == "assigned" else None

        assigned = await eventually(task, timeout=30)
        shown = await eventually(lambda: _assigned_in_intake(client, intake, report_id, sari), timeout=30)
        nothing_yet = hooks_for(receiver, report_id)
        verdict = await client.post(
            f"{intake}/v1/reports/{report_id}/verification",
            json={"verdict": "genuine"},
            headers={OPERATOR_HEADER: sari},
        )
        await eventually(lambda: len(hooks_for(receiver, report_id)) == 2, timeout=30)
        closed = await eventually(lambda: _task_closed(client, shifts, report_id), timeout=30)
    assert accepted["status"] == "awaiting_verification"
    assert assigned["operator_id"] == sari and assigned["reason"] == "verify"
    assert shown["status"] == "awaiting_verification"
    assert nothing_yet == [], "nothing dispatched before the verdict"
    assert verdict.status_code == 200
    hooks = hooks_for(receiver, report_id)
    assert {h.path.rsplit("/", 1)[-1] for h in hooks} == {"polres", "satpolpp"}
    assert all(h.json["verified"] is True for h in hooks)
    assert closed["outcome"] == "verified" and closed["closed_by"] == sari


async def test_an_unverified_fire_goes_out_at_once_and_is_called_off_as_a_prank(stack, receiver):
    intake = stack.services["intake"].url
    fire = {**FIRE_REPORT, "channel": "whatsapp", "location": {"kecamatan": "Kademangan", "desa": "Plosorejo"}}
    async with httpx.AsyncClient(headers=auth(), timeout=10) as client:
        accepted = (await client.post(f"{intake}/v1/reports", json=fire)).json()
        report_id = accepted["id"]
        await eventually(lambda: len(hooks_for(receiver, report_id)) == 3, timeout=30)
        verdict = await client.post(
            f"{intake}/v1/reports/{report_id}/verification",
            json={"verdict": "prank"},
            headers={OPERATOR_HEADER: "00000000-0000-4000-8000-000000000001"},
        )
        await eventually(lambda: len(hooks_for(receiver, report_id)) == 6, timeout=30)
        report = (await client.get(f"{intake}/v1/reports/{report_id}")).json()
    assert accepted["verification"] == "after_dispatch"
    hooks = hooks_for(receiver, report_id)
    first, notices = hooks[:3], hooks[3:]
    assert all(h.json["verified"] is False for h in first)
    assert all(h.headers["ce-type"].endswith("dispatch.cancelled.v1") for h in notices)
    assert {h.json["dispatch_id"] for h in notices} == {h.json["dispatch_id"] for h in first}
    assert verdict.status_code == 200 and report["kind"] == "prank"
    assert {d["state"] for d in report["dispatches"]} == {"cancelled"}


async def _assigned_in_intake(client, intake, report_id, operator_id):
    report = (await client.get(f"{intake}/v1/reports/{report_id}")).json()
    return report if report["assigned_to"] == operator_id else None


async def _task_closed(client, shifts, report_id):
    tasks = (await client.get(f"{shifts}/v1/tasks", params={"report_id": report_id, "state": "closed"})).json()
    return tasks[0] if tasks else None
