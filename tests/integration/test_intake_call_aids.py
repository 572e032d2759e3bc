"""What the call form asks of intake while a call is taken: open incidents the call may
be another caller of, the caller's history by number; and the call's start time."""

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, running

pytestmark = pytest.mark.integration


def settings_for(database_url, broker) -> IntakeSettings:
    return IntakeSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        kafka_session_timeout_ms=2000,
    )


def riot(kecamatan: str, desa: str, phone: str = "081234567890") -> dict:
    return {
        **FIRE_REPORT,
        "category": "kerusuhan",
        "location": {"kecamatan": kecamatan, "desa": desa},
        "caller": {"phone": phone},
    }


async def test_suggestions_are_open_incidents_of_the_category_nearby_with_the_rules_one_marked(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        garum = (await client.post("/v1/reports", json=riot("Garum", "Sumberdiren"))).json()
        garum_other_desa = (await client.post("/v1/reports", json=riot("Garum", "Tingal"))).json()
        await client.post("/v1/reports", json=riot("Srengat", "Dandong"))  # another kecamatan
        await client.post(
            "/v1/reports", json={**FIRE_REPORT, "location": {"kecamatan": "Garum", "desa": "Sumberdiren"}}
        )
        closed = (await client.post("/v1/reports", json=riot("Garum", "Karangrejo"))).json()
        await client.post(
            f"/v1/reports/{closed['id']}/close",
            json={"outcome": "false_alarm"},
            headers={"E112-Operator-Id": "0b7e7a3c-52a8-4c62-9a5e-0d3e8e7c1f11"},
        )
        draft = {"category": "kerusuhan", "kecamatan": "garum", "desa": "Sumberdiren"}
        for_call = await client.get("/v1/link-suggestions", params=draft)
        for_other = await client.get(f"/v1/reports/{garum_other_desa['id']}/link-suggestions")
        bad = await client.get("/v1/link-suggestions", params={"category": "kerusuhan", "kecamatan": "Atlantis"})
        key = (await client.post("/v1/admin/api-keys", json={"name": "sms"})).json()["key"]
        as_app = await client.get(
            "/v1/link-suggestions", params={"category": "kerusuhan"}, headers={"Authorization": f"Bearer {key}"}
        )
    assert for_call.status_code == 200, for_call.text
    ranked = for_call.json()
    assert [s["report_id"] for s in ranked] == [garum["id"], garum_other_desa["id"]]
    assert ranked[0]["rule"] == "same_desa" and ranked[0]["same_desa"]
    assert ranked[1]["rule"] is None and ranked[1]["same_kecamatan"] and not ranked[1]["same_desa"]
    assert "caller" not in ranked[0] and ranked[0]["callers"] == 0
    assert [s["report_id"] for s in for_other.json()] == [garum["id"]]  # not itself
    assert for_other.json()[0]["rule"] is None  # another desa: for the operator to judge
    assert bad.status_code == 422 and as_app.status_code == 403


async def test_the_callers_history_by_number_and_the_calls_start_time(database_url, broker):
    now = datetime.now(UTC)
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        started = (now - timedelta(minutes=3)).isoformat()
        first = await client.post(
            "/v1/reports", json={**riot("Garum", "Tingal", "0812-7777-1111"), "call_started_at": started}
        )
        await client.post(
            "/v1/reports", json={"kind": "prank", "channel": "call", "caller": {"phone": "+6281277771111"}}
        )
        history = await client.post("/v1/callers/lookup", json={"phone": "081277771111"})
        unknown = await client.post("/v1/callers/lookup", json={"phone": "085700000000"})
        bad_phone = await client.post("/v1/callers/lookup", json={"phone": "12ab"})
        in_an_hour, days_ago = (now + timedelta(hours=1)).isoformat(), (now - timedelta(days=3)).isoformat()
        future = await client.post("/v1/reports", json={**FIRE_REPORT, "call_started_at": in_an_hour})
        stale = await client.post("/v1/reports", json={**FIRE_REPORT, "call_started_at": days_ago})
        naive = await client.post("/v1/reports", json={**FIRE_REPORT, "call_started_at": "2026-12-02T08:00:00"})
        report = (await client.get(first.headers["location"])).json()
    assert first.status_code == 202
    assert datetime.fromisoformat(report["call_started_at"]) == datetime.fromisoformat(started)
    assert datetime.fromisoformat(report["received_at"]) >= now  # received_at keeps its meaning
    body = history.json()
    assert body["phone"] == "+6281277771111" and body["history"]["contacts"] == 2 and body["history"]["pranks"] == 1
    assert [c["kind"] for c in body["recent"]] == ["prank", "emergency"]
    assert unknown.json()["history"]["contacts"] == 0 and unknown.json()["recent"] == []
    assert bad_phone.status_code == 422
    for answer in (future, stale, naive):
        assert answer.status_code == 422 and "call_started_at" in answer.text, answer.text
