"""Another caller for an open incident is linked to it, visible in both timelines."""

import pytest

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, running

pytestmark = pytest.mark.integration


def fire(desa: str | None, lat: float | None = None, lon: float | None = None, category: str = "kebakaran") -> dict:
    location = {"kecamatan": "Wlingi", **({"desa": desa} if desa else {}),
                **({"lat": lat, "lon": lon} if lat is not None else {})}  # fmt: skip
    return {**FIRE_REPORT, "category": category, "location": location}


async def test_a_second_caller_for_the_same_fire_is_linked(database_url, broker):
    settings = IntakeSettings(database_url=database_url, kafka_bootstrap_servers=broker.bootstrap,
                              e112_api_key=API_KEY, link_related_reports=True, link_distance_m=500)  # fmt: skip
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
