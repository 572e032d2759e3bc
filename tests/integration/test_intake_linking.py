"""Another caller for an open incident is linked to it, visible in both timelines."""

import uuid

import pytest

from schemas import topics
from schemas.reports import OPERATOR_HEADER
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, read_topics, running

pytestmark = pytest.mark.integration


def fire(desa: str | None, lat: float | None = None, lon: float | None = None, category: str = "kebakaran") -> dict:
    location = {
        "kecamatan": "Wlingi",
        **({"desa": desa} if desa else {}),
        **({"lat": lat, "lon": lon} if lat is not None else {}),
    }
    return {**FIRE_REPORT, "category": category, "location": location}


def linking(database_url, broker) -> IntakeSettings:
    return IntakeSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        link_related_reports=True,
        link_distance_m=500,
    )


async def test_a_second_caller_for_the_same_fire_is_linked(database_url, broker):
    settings = linking(database_url, broker)
    async with running(create_app(settings), API_KEY) as client:
        first = (await client.post("/v1/reports", json=fire("Beru", -8.0780, 112.3180))).json()
        same_desa = (await client.post("/v1/reports", json=fire("beru"))).json()
        near = (await client.post("/v1/reports", json=fire(None, -8.0785, 112.3182))).json()
        far = (await client.post("/v1/reports", json=fire(None, -8.0960, 112.3180))).json()
        accident = (await client.post("/v1/reports", json=fire("Beru", category="kecelakaan"))).json()
        incident = (await client.get(f"/v1/reports/{first['id']}")).json()
        linked = (await client.get(f"/v1/reports/{near['id']}")).json()
    assert first["status"] == "received" and first["linked_to"] is None
    assert same_desa["status"] == near["status"] == "linked"
    assert same_desa["linked_to"] == near["linked_to"] == first["id"]
    assert far["linked_to"] is None and accident["linked_to"] is None
    assert incident["linked_reports"] == [same_desa["id"], near["id"]]
    assert [e["event"] for e in incident["timeline"]] == ["received", "caller_added", "caller_added"]
    assert linked["status"] == "linked"
    assert [e["event"] for e in linked["timeline"]] == ["received", "linked"]
    assert linked["timeline"][1]["detail"]["reason"] == "within_distance"


async def test_the_same_desa_links_only_where_one_side_has_no_coordinates(database_url, broker):
    settings = linking(database_url, broker)
    async with running(create_app(settings), API_KEY) as client:
        typed = (await client.post("/v1/reports", json=fire("Tangkil"))).json()  # a call, no coordinates
        located = (await client.post("/v1/reports", json=fire("Tangkil", -8.0700, 112.3000))).json()
        # Same desa, both with coordinates 3 km apart: two fires, distance decides.
        other_fire = (await client.post("/v1/reports", json=fire("Sumberejo", -8.0500, 112.3000))).json()
        same_desa_far = (await client.post("/v1/reports", json=fire("Sumberejo", -8.0770, 112.3000))).json()
    assert located["linked_to"] == typed["id"]
    assert other_fire["linked_to"] is None and same_desa_far["linked_to"] is None


async def test_an_operator_can_undo_a_link(database_url, broker):
    settings = IntakeSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        link_related_reports=True,
    )
    sari = str(uuid.uuid4())
    async with running(create_app(settings), API_KEY) as client:
        first = (await client.post("/v1/reports", json=fire("Beru"))).json()
        second = (await client.post("/v1/reports", json=fire("Beru"))).json()
        app_key = (await client.post("/v1/admin/api-keys", json={"name": "sms-gateway"})).json()["key"]
        unlink = f"/v1/reports/{second['id']}/unlink"
        as_app = {"Authorization": f"Bearer {app_key}", OPERATOR_HEADER: sari}
        by_an_app = await client.post(unlink, json={"reason": "x"}, headers=as_app)
        no_operator = await client.post(unlink, json={"reason": "x"})
        named_in_body = await client.post(
            unlink, json={"operator": "Sari", "reason": "x"}, headers={OPERATOR_HEADER: sari}
        )
        client.headers[OPERATOR_HEADER] = sari
        undo = await client.post(
            f"/v1/reports/{second['id']}/unlink", json={"reason": "a different house, across the river"}
        )
        again = await client.post(f"/v1/reports/{second['id']}/unlink", json={"reason": "x"})
        unknown = await client.post(f"/v1/reports/{uuid.uuid4()}/unlink", json={"reason": "x"})
        report = (await client.get(f"/v1/reports/{second['id']}")).json()
        incident = (await client.get(f"/v1/reports/{first['id']}")).json()
        events = await read_topics(
            broker.bootstrap,
            [topics.REPORTS],
            until=lambda ms: any(m.headers["ce_type"].endswith("report.unlinked.v1") for m in ms),
        )
    assert second["linked_to"] == first["id"]
    assert by_an_app.status_code == 403 and no_operator.status_code == 422 and named_in_body.status_code == 422
    assert undo.status_code == 200 and undo.json()["status"] == "received"
    assert again.status_code == 409 and unknown.status_code == 404
    assert report["linked_to"] is None and report["status"] == "received"
    assert [e["event"] for e in report["timeline"]] == ["received", "linked", "unlinked"]
    assert incident["linked_reports"] == []
    unlinked = next(m for m in events if m.headers["ce_type"].endswith("report.unlinked.v1"))
    assert unlinked.key == second["id"] and unlinked.data["unlinked_by"] == sari
