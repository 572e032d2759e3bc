"""The incident lifecycle at intake: an operator closes an incident (its callers with it)
and reopens it; an incident closes on its own when every agency is done; a closed one
is no linking candidate; wrong requests are clear 4xx."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas import topics
from schemas.envelope import encode
from schemas.events import DispatchFieldStatus, ReportRouted, RoutedDispatch
from schemas.reports import OPERATOR_HEADER
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, eventually, produce, read_topics, running

pytestmark = pytest.mark.integration
OPERATOR = str(uuid.uuid4())


def settings_for(database_url, broker) -> IntakeSettings:
    return IntakeSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        kafka_session_timeout_ms=2000,
    )


def of_type(messages, suffix: str) -> list:
    return [m for m in messages if m.headers["ce_type"].endswith(suffix)]


async def test_an_operator_closes_an_incident_with_its_callers_and_reopens_it(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        client.headers[OPERATOR_HEADER] = OPERATOR
        first = (await client.post("/v1/reports", json=FIRE_REPORT)).json()
        caller = (await client.post("/v1/reports", json=FIRE_REPORT)).json()
        closing = await client.post(
            f"/v1/reports/{first['id']}/close", json={"outcome": "false_alarm", "note": "  bakar sampah, bukan rumah "}
        )
        closed_caller = (await client.get(f"/v1/reports/{caller['id']}")).json()
        closed_again = await client.post(f"/v1/reports/{first['id']}/close", json={"outcome": "resolved"})
        close_the_caller = await client.post(f"/v1/reports/{caller['id']}/close", json={"outcome": "resolved"})
        unlink_closed = await client.post(f"/v1/reports/{caller['id']}/unlink", json={"reason": "other fire"})
        listed_closed = (await client.get("/v1/reports", params={"closed": "true"})).json()["items"]
        listed_by_status = (await client.get("/v1/reports", params={"status": "closed"})).json()["items"]
        # The same fire again once it is closed: a new incident, not a caller of the closed one.
        later = (await client.post("/v1/reports", json=FIRE_REPORT)).json()
        listed_open = (await client.get("/v1/reports", params={"closed": "false"})).json()["items"]
        reopening = await client.post(f"/v1/reports/{first['id']}/reopen", json={"reason": "api menyala lagi"})
        reopened_caller = (await client.get(f"/v1/reports/{caller['id']}")).json()
        reopen_open = await client.post(f"/v1/reports/{first['id']}/reopen", json={"reason": "again"})
        stats = (await client.get("/v1/stats/contacts", params={"since": "2020-01-01T00:00:00Z"})).json()
        messages = await read_topics(
            broker.bootstrap, [topics.REPORTS], until=lambda ms: of_type(ms, "report.reopened.v1")
        )
    assert caller["linked_to"] == first["id"]
    assert closing.status_code == 200, closing.text
    body = closing.json()
    assert body["status"] == "closed"
    assert body["closure"] == {
        "outcome": "false_alarm",
        "note": "bakar sampah, bukan rumah",
        "operator_id": OPERATOR,
        "at": body["closure"]["at"],
    }
    assert body["timeline"][-1]["event"] == "closed"
    assert body["timeline"][-1]["detail"]["callers"] == [caller["id"]]
    assert closed_caller["status"] == "closed" and closed_caller["closure"]["outcome"] == "false_alarm"
    assert closed_again.status_code == 409 and closed_again.json()["outcome"] == "false_alarm"
    assert close_the_caller.status_code == 409 and close_the_caller.json()["incident_report_id"] == first["id"]
    assert unlink_closed.status_code == 409
    assert {r["id"] for r in listed_closed} == {first["id"], caller["id"]} == {r["id"] for r in listed_by_status}
    assert {r["close_outcome"] for r in listed_closed} == {"false_alarm"}
    assert later["linked_to"] is None and later["status"] == "received"
    assert [r["id"] for r in listed_open] == [later["id"]]
    assert reopening.status_code == 200, reopening.text
    assert reopening.json()["status"] == "received" and reopening.json()["closure"] is None
    assert reopening.json()["timeline"][-1]["event"] == "reopened"
    assert reopened_caller["status"] == "linked" and reopened_caller["closure"] is None
    assert reopen_open.status_code == 409
    assert stats["incidents_closed"] == {}  # reopened: no longer closed
    (closed,) = of_type(messages, "report.closed.v1")
    assert closed.key == first["id"]
    assert closed.data["outcome"] == "false_alarm" and closed.data["operator_id"] == OPERATOR
    assert closed.data["linked_reports"] == [caller["id"]]
    (reopened,) = of_type(messages, "report.reopened.v1")
    assert reopened.data["linked_reports"] == [caller["id"]] and reopened.data["reason"] == "api menyala lagi"


async def test_an_incident_closes_on_its_own_when_every_agency_is_done(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as client:
        report_id = uuid.UUID((await client.post("/v1/reports", json=FIRE_REPORT)).json()["id"])
        damkar, pln = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)

        def field(dispatch_id, agency, status, minutes):
            event = DispatchFieldStatus(
                dispatch_id=dispatch_id,
                report_id=report_id,
                agency=agency,
                status=status,
                at=now + timedelta(minutes=minutes),
            )
            return encode(event, topic=topics.DISPATCH_STATUS, key=str(report_id), source="test")

        dispatches = [
            RoutedDispatch(dispatch_id=damkar, agency="damkar", role="primary"),
            RoutedDispatch(dispatch_id=pln, agency="pln", role="supporting"),
        ]
        routed = ReportRouted(
            report_id=report_id, category="kebakaran", rule_version=1, routed_at=now, dispatches=dispatches
        )
        await produce(
            broker.bootstrap,
            [
                encode(routed, topic=topics.REPORTS, key=str(report_id), source="test"),
                field(damkar, "damkar", "done", 20),
                field(pln, "pln", "on_scene", 21),
            ],
        )
        one_done = await eventually(lambda: _with_entries(client, report_id, 4))
        await produce(broker.bootstrap, [field(pln, "pln", "done", 30)])
        closed = await eventually(lambda: _with_entries(client, report_id, 6))
        # It closed when the last agency said done (the test's agencies report in the future).
        period = {"since": "2020-01-01T00:00:00Z", "until": (now + timedelta(hours=1)).isoformat()}
        stats = (await client.get("/v1/stats/contacts", params=period)).json()
        messages = await read_topics(
            broker.bootstrap, [topics.REPORTS], until=lambda ms: of_type(ms, "report.closed.v1")
        )
    assert one_done["status"] == "responding" and one_done["closure"] is None
    assert closed["status"] == "closed"
    assert closed["closure"]["outcome"] == "resolved" and closed["closure"]["operator_id"] is None
    assert [e["event"] for e in closed["timeline"]][-2:] == ["field_status", "closed"]
    assert closed["closure"]["at"] == closed["timeline"][-2]["at"]
    assert {d["agency"]: d["state"] for d in closed["dispatches"]} == {"damkar": "done", "pln": "done"}
    assert stats["incidents_closed"] == {"resolved": 1}
    (event,) = of_type(messages, "report.closed.v1")
    assert event.data["report_id"] == str(report_id) and event.data["operator_id"] is None


async def test_wrong_closings_are_clear_4xx(database_url, broker):
    async with running(create_app(settings_for(database_url, broker)), API_KEY) as admin:
        app_key = (await admin.post("/v1/admin/api-keys", json={"name": "web-form"})).json()["key"]
        admin.headers[OPERATOR_HEADER] = OPERATOR
        fire = (await admin.post("/v1/reports", json=FIRE_REPORT)).json()
        prank = (await admin.post("/v1/reports", json={**FIRE_REPORT, "kind": "prank"})).json()
        held = (
            await admin.post(
                "/v1/reports",
                json={**FIRE_REPORT, "channel": "sms", "category": "kerusuhan", "location": {"kecamatan": "Garum"}},
            )
        ).json()
        url = f"/v1/reports/{fire['id']}/close"
        answers = {
            "unknown outcome": await admin.post(url, json={"outcome": "finished"}),
            "extra field": await admin.post(url, json={"outcome": "resolved", "operator_id": OPERATOR}),
            "empty reason": await admin.post(f"/v1/reports/{fire['id']}/reopen", json={"reason": "  "}),
            "no such report": await admin.post(f"/v1/reports/{uuid.uuid4()}/close", json={"outcome": "resolved"}),
            "not an emergency": await admin.post(f"/v1/reports/{prank['id']}/close", json={"outcome": "resolved"}),
            "awaiting a verdict": await admin.post(f"/v1/reports/{held['id']}/close", json={"outcome": "resolved"}),
            "an app's key": await admin.post(
                url, json={"outcome": "resolved"}, headers={"Authorization": f"Bearer {app_key}"}
            ),
        }
        untouched = (await admin.get(f"/v1/reports/{fire['id']}")).json()
    codes = {why: answer.status_code for why, answer in answers.items()}
    assert codes == {
        "unknown outcome": 422,
        "extra field": 422,
        "empty reason": 422,
        "no such report": 404,
        "not an emergency": 409,
        "awaiting a verdict": 409,
        "an app's key": 403,
    }
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers.values())
    assert "outcome" in answers["unknown outcome"].text
    assert untouched["status"] == "received" and untouched["closure"] is None


async def _with_entries(client, report_id, count):
    report = (await client.get(f"/v1/reports/{report_id}")).json()
    return report if len(report["timeline"]) >= count else None
