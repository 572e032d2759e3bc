"""Verification at intake: which public reports wait, the operator's verdict and what it
does to the report's kind, link, status and events; the versioned policy."""

import uuid

import pytest

from schemas import topics
from schemas.reports import OPERATOR_HEADER
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, read_topics, running

pytestmark = pytest.mark.integration
OPERATOR = str(uuid.uuid4())


def report(channel: str, category: str, desa: str = "Beru") -> dict:
    return {**FIRE_REPORT, "channel": channel, "category": category, "location": {"kecamatan": "Wlingi", "desa": desa}}


def settings_for(database_url, broker) -> IntakeSettings:
    return IntakeSettings(database_url=database_url, kafka_bootstrap_servers=broker.bootstrap, e112_api_key=API_KEY)


def of_type(messages, suffix: str) -> list:
    return [m for m in messages if m.headers["ce_type"].endswith(suffix)]


async def test_public_reports_wait_or_go_out_flagged_and_calls_go_at_once(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        client.headers[OPERATOR_HEADER] = OPERATOR
        riot_sms = (await client.post("/v1/reports", json=report("sms", "kerusuhan"))).json()
        fire_wa = (await client.post("/v1/reports", json=report("whatsapp", "kebakaran", "Tangkil"))).json()
        riot_call = (await client.post("/v1/reports", json=report("call", "kerusuhan", "Klemunan"))).json()
        held = (await client.get(f"/v1/reports/{riot_sms['id']}")).json()
        pending = (await client.get("/v1/reports", params={"verification": "pending"})).json()["items"]
        held_only = (await client.get("/v1/reports", params={"status": "awaiting_verification"})).json()["items"]
        messages = await read_topics(broker.bootstrap, [topics.REPORTS], until=lambda ms: len(ms) >= 3)
    assert (riot_sms["status"], riot_sms["verification"]) == ("awaiting_verification", "before_dispatch")
    assert (fire_wa["status"], fire_wa["verification"]) == ("received", "after_dispatch")
    assert (riot_call["status"], riot_call["verification"]) == ("received", "not_required")
    assert held["verification"] == {
        "required": "before_dispatch",
        "state": "pending",
        "verdict": None,
        "operator_id": None,
        "at": None,
    }
    assert {r["id"] for r in pending} == {riot_sms["id"], fire_wa["id"]}
    assert [r["id"] for r in held_only] == [riot_sms["id"]]
    by_key = {m.key: m.data["verification"] for m in messages}
    assert by_key == {
        riot_sms["id"]: "before_dispatch",
        fire_wa["id"]: "after_dispatch",
        riot_call["id"]: "not_required",
    }


async def test_a_prank_verdict_makes_the_report_a_prank_once(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        client.headers[OPERATOR_HEADER] = OPERATOR
        sms = (await client.post("/v1/reports", json=report("sms", "binatang_buas"))).json()
        verdict = await client.post(
            f"/v1/reports/{sms['id']}/verification", json={"verdict": "prank", "note": "laughing"}
        )
        again = await client.post(f"/v1/reports/{sms['id']}/verification", json={"verdict": "genuine"})
        stats = (await client.get("/v1/stats/contacts", params={"since": "2020-01-01T00:00:00Z"})).json()
        messages = await read_topics(
            broker.bootstrap, [topics.REPORTS], until=lambda ms: of_type(ms, "report.verified.v1")
        )
    assert verdict.status_code == 200
    body = verdict.json()
    assert body["kind"] == "prank" and body["status"] == "recorded"
    assert body["verification"]["state"] == "verified" and body["verification"]["verdict"] == "prank"
    assert body["verification"]["operator_id"] == OPERATOR
    assert [e["event"] for e in body["timeline"]] == ["received", "verified"]
    assert body["timeline"][1]["detail"]["note"] == "laughing"
    assert again.status_code == 409 and again.json()["verdict"] == "prank"
    assert stats["by_kind"] == {"prank": 1}
    (event,) = of_type(messages, "report.verified.v1")
    assert event.key == sms["id"]
    assert event.data["verdict"] == "prank" and event.data["verification"] == "before_dispatch"


async def test_a_duplicate_joins_the_first_report_of_its_incident(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        client.headers[OPERATOR_HEADER] = OPERATOR
        first = (await client.post("/v1/reports", json=report("call", "kerusuhan"))).json()
        linked = (await client.post("/v1/reports", json=report("call", "kerusuhan"))).json()
        sms = (await client.post("/v1/reports", json=report("web", "kerusuhan", "Tangkil"))).json()
        # Named as a duplicate of the second caller: it joins the incident's first report.
        verdict = await client.post(
            f"/v1/reports/{sms['id']}/verification", json={"verdict": "duplicate", "duplicate_of": linked["id"]}
        )
        incident = (await client.get(f"/v1/reports/{first['id']}")).json()
        messages = await read_topics(
            broker.bootstrap, [topics.REPORTS], until=lambda ms: of_type(ms, "report.verified.v1")
        )
    assert linked["linked_to"] == first["id"]
    assert verdict.status_code == 200
    body = verdict.json()
    assert body["status"] == "linked" and body["linked_to"] == first["id"] and body["kind"] == "emergency"
    assert sms["id"] in incident["linked_reports"]
    (event,) = of_type(messages, "report.verified.v1")
    assert event.data["duplicate_of"] == first["id"]


async def test_wrong_verdicts_are_clear_4xx(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        client.headers[OPERATOR_HEADER] = OPERATOR
        call = (await client.post("/v1/reports", json=report("call", "kerusuhan"))).json()
        sms = (await client.post("/v1/reports", json=report("sms", "kerusuhan", "Tangkil"))).json()
        prank = (await client.post("/v1/reports", json={"kind": "prank", "channel": "call"})).json()
        answers = {
            "not required": await client.post(f"/v1/reports/{call['id']}/verification", json={"verdict": "genuine"}),
            "unknown report": await client.post(
                f"/v1/reports/{uuid.uuid4()}/verification", json={"verdict": "genuine"}
            ),
            "no duplicate_of": await client.post(
                f"/v1/reports/{sms['id']}/verification", json={"verdict": "duplicate"}
            ),
            "itself": await client.post(
                f"/v1/reports/{sms['id']}/verification", json={"verdict": "duplicate", "duplicate_of": sms["id"]}
            ),
            "of a prank": await client.post(
                f"/v1/reports/{sms['id']}/verification", json={"verdict": "duplicate", "duplicate_of": prank["id"]}
            ),
            "bad verdict": await client.post(f"/v1/reports/{sms['id']}/verification", json={"verdict": "maybe"}),
        }
        still = (await client.get(f"/v1/reports/{sms['id']}")).json()
    statuses = {name: a.status_code for name, a in answers.items()}
    assert statuses == {
        "not required": 409,
        "unknown report": 404,
        "no duplicate_of": 422,
        "itself": 422,
        "of a prank": 422,
        "bad verdict": 422,
    }
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers.values())
    assert "not an emergency" in answers["of a prank"].json()["detail"]
    assert still["verification"]["state"] == "pending" and still["status"] == "awaiting_verification"


async def test_the_policy_is_versioned_and_live_at_the_next_report(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        client.headers[OPERATOR_HEADER] = OPERATOR
        shipped = (await client.get("/v1/verification-policy")).json()
        before = (await client.post("/v1/reports", json=report("app", "kerusuhan"))).json()
        change = await client.put(
            "/v1/verification-policy",
            json={
                "rules": [{"channel": "app", "category": None, "verification": "not_required"}],
                "changed_by": "Kepala 112",
                "reason": "the citizen app now verifies callers by OTP",
            },
        )
        after = (await client.post("/v1/reports", json=report("app", "kerusuhan", "Tangkil"))).json()
        sms = (await client.post("/v1/reports", json=report("sms", "kerusuhan", "Klemunan"))).json()
        versions = (await client.get("/v1/verification-policy/versions")).json()
        key = (await client.post("/v1/admin/api-keys", json={"name": "sms-gateway"})).json()["key"]
        refused = await client.put(
            "/v1/verification-policy",
            headers={"Authorization": f"Bearer {key}"},
            json={"rules": [], "changed_by": "x", "reason": "y"},
        )
        bad = await client.put(
            "/v1/verification-policy",
            json={"rules": [{"channel": "call", "verification": "before_dispatch"}], "changed_by": "x", "reason": "y"},
        )
    assert shipped["version"] == 1 and shipped["changed_by"] == "system"
    assert before["verification"] == "before_dispatch"
    assert change.status_code == 200 and change.json()["version"] == 2
    assert after["verification"] == "not_required"
    # sms has no rule left: held, the safe side of a gap.
    assert sms["verification"] == "before_dispatch"
    assert [(v["version"], v["changed_by"]) for v in versions] == [(2, "Kepala 112"), (1, "system")]
    assert refused.status_code == 403
    assert bad.status_code == 422 and "channel" in bad.text


async def test_only_the_console_gives_verdicts_and_the_operator_comes_from_its_header(database_url, broker):
    """App B's key could call off app A's SMS fire as a prank, naming any operator in the body."""
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as admin:
        app_a = (await admin.post("/v1/admin/api-keys", json={"name": "sms-gateway"})).json()["key"]
        app_b = (await admin.post("/v1/admin/api-keys", json={"name": "web-form"})).json()["key"]
        console = (await admin.post("/v1/admin/api-keys", json={"name": "console", "role": "console"})).json()
        fire = await admin.post(
            "/v1/reports", json=report("sms", "kerusuhan"), headers={"Authorization": f"Bearer {app_a}"}
        )
        url = f"/v1/reports/{fire.json()['id']}/verification"
        as_app_b = {"Authorization": f"Bearer {app_b}", OPERATOR_HEADER: OPERATOR}
        as_app_b = await admin.post(url, json={"verdict": "prank"}, headers=as_app_b)
        as_console = {"Authorization": f"Bearer {console['key']}"}
        without_operator = await admin.post(url, json={"verdict": "prank"}, headers=as_console)
        operator_in_body = await admin.post(
            url, json={"verdict": "prank", "operator_id": OPERATOR}, headers={**as_console, OPERATOR_HEADER: OPERATOR}
        )
        untouched = (await admin.get(fire.headers["location"])).json()
        given = await admin.post(url, json={"verdict": "genuine"}, headers={**as_console, OPERATOR_HEADER: OPERATOR})
    assert console["role"] == "console" and not console["is_admin"]
    assert as_app_b.status_code == 403 and as_app_b.headers["content-type"] == "application/problem+json"
    assert without_operator.status_code == 422 and OPERATOR_HEADER in without_operator.json()["detail"]
    assert operator_in_body.status_code == 422  # the body names no one any more
    assert untouched["verification"]["state"] == "pending" and untouched["kind"] == "emergency"
    assert given.status_code == 200, given.text
    assert given.json()["verification"]["operator_id"] == OPERATOR
