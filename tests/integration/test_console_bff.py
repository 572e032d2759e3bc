"""The console's backend-for-frontend against the real services: intake, shifts and
notifier in-process (their own lifespans, a real PostgreSQL and broker), the console
calling them over HTTP as it does in production, with its own intake key."""

import asyncio
import contextlib
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import uvicorn

from devstack.processes import free_port
from schemas import topics
from schemas.catalog import TASK_URGENCY
from schemas.envelope import encode
from schemas.events import (
    DispatchAcknowledged,
    DispatchDelivered,
    DispatchRequested,
    EventCaller,
    EventLocation,
    ReportReceived,
    ReportRouted,
    ReportUnrouted,
    RoutedDispatch,
)
from services.console import incidents_api
from services.console.app import create_app as console_app
from services.console.settings import ConsoleSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from services.shifts.app import create_app as shifts_app
from services.shifts.settings import ShiftsSettings
from tests.conftest import API_KEY
from tests.support import eventually, produce, running

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
PIN = "482913"
CONSOLE = "http://console.test"


@dataclass
class Env:
    console: httpx.AsyncClient
    intake: httpx.AsyncClient
    shifts: httpx.AsyncClient
    notifier: httpx.AsyncClient
    app: object
    settings: ConsoleSettings
    database_url: str
    bootstrap: str


def common(database_url: str, bootstrap: str) -> dict:
    return dict(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        kafka_session_timeout_ms=2000,
    )


@contextlib.asynccontextmanager
async def services(database_url: str, bootstrap: str, **console_overrides):
    base = common(database_url, bootstrap)
    intake = intake_app(IntakeSettings(**base, outbox_poll_interval=0.2))
    shifts = shifts_app(ShiftsSettings(**base, outbox_poll_interval=0.2, check_in_early_minutes=0))
    notifier = notifier_app(NotifierSettings(**base, outbox_poll_interval=0.2, delivery_poll_interval=0.2))
    async with (
        running(intake, API_KEY) as intake_client,
        running(shifts, API_KEY) as shifts_client,
        running(notifier, API_KEY) as notifier_client,
    ):
        made = await intake_client.post(
            "/v1/admin/api-keys", json={"name": "console", "role": "console", "rate_per_minute": 6000}
        )
        settings = ConsoleSettings(**base, intake_api_key=made.json()["key"], **console_overrides)
        transports = {
            name: httpx.ASGITransport(app=app)
            for name, app in (("intake", intake), ("shifts", shifts), ("notifier", notifier))
        }
        app = console_app(settings, transports)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONSOLE) as console:
                yield Env(
                    console, intake_client, shifts_client, notifier_client, app, settings, database_url, bootstrap
                )


async def operator_with_pin(env: Env, name: str = "Sari", pin: str = PIN) -> str:
    operator = (await env.shifts.post("/v1/operators", json={"name": name})).json()
    response = await env.console.put(
        f"/api/admin/operators/{operator['id']}/pin",
        json={"pin": pin, "set_by": "Hadi"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 200, response.text
    return operator["id"]


async def sign_in(client: httpx.AsyncClient, operator_id: str, pin: str = PIN) -> dict:
    response = await client.post("/api/session", json={"operator_id": operator_id, "pin": pin})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return response


async def test_sign_in_with_pin_lockout_session_cookie_csrf_and_sign_out(database_url, broker):
    async with services(database_url, broker.bootstrap, signin_max_failures=3) as env:
        admin = {"Authorization": f"Bearer {API_KEY}"}
        no_key = await env.console.put(f"/api/admin/operators/{uuid.uuid4()}/pin", json={"pin": PIN, "set_by": "x"})
        sari = await operator_with_pin(env)
        dewi = (await env.shifts.post("/v1/operators", json={"name": "Dewi"})).json()["id"]  # no PIN yet
        weak = await env.console.put(
            f"/api/admin/operators/{dewi}/pin", json={"pin": "123456", "set_by": "Hadi"}, headers=admin
        )
        unknown = await env.console.put(
            f"/api/admin/operators/{uuid.uuid4()}/pin", json={"pin": PIN, "set_by": "Hadi"}, headers=admin
        )
        listed = (await env.console.get("/api/operators")).json()

        wrong = await env.console.post("/api/session", json={"operator_id": sari, "pin": "000001"})
        for _ in range(2):
            await env.console.post("/api/session", json={"operator_id": sari, "pin": "000001"})
        locked = await env.console.post("/api/session", json={"operator_id": sari, "pin": PIN})
        # The supervisor sets the PIN again: that unlocks.
        await env.console.put(f"/api/admin/operators/{sari}/pin", json={"pin": PIN, "set_by": "Hadi"}, headers=admin)
        signed_in = await sign_in(env.console, sari)
        session = await env.console.get("/api/session")

        no_csrf = await env.console.post("/api/shift/check-in", headers={"X-CSRF-Token": ""})
        cross_site = await env.console.post("/api/shift/check-in", headers={"Origin": "http://evil.example"})
        same_site = await env.console.post("/api/shift/check-in", headers={"Origin": CONSOLE})
        token = env.console.cookies["e112_console"]
        conn = await asyncpg.connect(database_url)
        try:
            stored = await conn.fetch("SELECT token_hash FROM console.sessions")
            pins = await conn.fetch("SELECT pin_hash FROM console.credentials")
        finally:
            await conn.close()
        relisted = (await env.console.get("/api/operators")).json()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app), base_url=CONSOLE) as other:
            old_handle = await other.post("/api/session", json={"handle": listed[0]["handle"], "pin": PIN})
            handle = relisted[0]["handle"]
            both = await other.post("/api/session", json={"handle": handle, "operator_id": sari, "pin": PIN})
            by_handle = await other.post("/api/session", json={"handle": handle, "pin": PIN})
        signed_out = await env.console.delete("/api/session")
        after = await env.console.get("/api/session")
        stranger = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=env.app), base_url=CONSOLE, cookies={"e112_console": token}
        )
        replayed = await stranger.get("/api/session")

    assert no_key.status_code == 401
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "pin"
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM
    assert [o["name"] for o in listed] == ["Sari"] and sari not in json.dumps(listed)  # Dewi has no PIN; no ids
    assert relisted[0]["handle"] != listed[0]["handle"] and old_handle.status_code == 401  # a new PIN, a new handle
    assert both.status_code == 422 and by_handle.status_code == 200
    assert wrong.status_code == 401 and "e112_console" not in wrong.cookies
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    assert session.json()["operator"] == {"id": sari, "name": "Sari"} and session.json()["refresh_seconds"] == 30
    assert no_csrf.status_code == 403 and cross_site.status_code == 403
    assert same_site.status_code == 200 and same_site.json()["on_duty"] is True
    assert [r["token_hash"] for r in stored] == [hashlib.sha256(token.encode()).digest()]
    assert all(r["pin_hash"].startswith("$argon2id$") for r in pins)
    assert signed_out.status_code == 204 and after.status_code == 401 and replayed.status_code == 401


async def test_a_session_left_idle_ends_and_one_in_use_stays(database_url, broker):
    """An open console polls, which keeps its session; one without a request for
    SESSION_IDLE_MINUTES (closed, abandoned) ends, its cookie worth nothing after."""
    async with services(database_url, broker.bootstrap, session_idle_minutes=30) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE console.sessions SET last_seen_at = now() - interval '29 minutes'")
            in_use = await env.console.get("/api/session")
            seen = await conn.fetchval("SELECT now() - last_seen_at < interval '1 minute' FROM console.sessions")
            await conn.execute("UPDATE console.sessions SET last_seen_at = now() - interval '31 minutes'")
            idle = await env.console.get("/api/session")
            acting = await env.console.post("/api/shift/check-in")
        finally:
            await conn.close()
    assert in_use.status_code == 200 and seen, "a request keeps the session and counts as seen"
    assert idle.status_code == 401 and acting.status_code == 401


async def test_wrong_pins_lock_out_the_address_that_sent_them_not_the_operator(database_url, broker):
    """Five wrong PINs locked an operator for everyone: anyone could lock out every call taker."""
    async with services(database_url, broker.bootstrap, signin_max_failures=3, signin_operator_ceiling=7) as env:
        sari = await operator_with_pin(env)

        async def attempt(pin: str, address: str) -> int:
            answer = await env.console.post(
                "/api/session", json={"operator_id": sari, "pin": pin}, headers={"X-Forwarded-For": address}
            )
            return answer.status_code

        # The test client's own address, 127.0.0.1, is a trusted proxy: X-Forwarded-For names the client.
        guesses = [await attempt("000001", "203.0.113.9") for _ in range(4)]
        from_the_centre = await attempt(PIN, "10.20.0.5")
        # Spread over addresses, the guesses reach the ceiling: then the operator is locked everywhere.
        spread = [await attempt("000002", f"198.51.100.{i}") for i in range(8)]
        centre_after = await attempt(PIN, "10.20.0.5")
        metrics = (await env.console.get("/metrics")).text
    assert guesses == [401, 401, 401, 429]  # the third locks that address
    assert from_the_centre == 200
    # The count over every address starts again at a right PIN: the seventh wrong one locks.
    assert spread == [401] * 7 + [429] and centre_after == 429
    assert 'e112_console_signin_lockouts_total{scope="source"} 1.0' in metrics
    assert 'e112_console_signin_lockouts_total{scope="operator"} 1.0' in metrics


async def test_a_call_is_filed_for_the_signed_in_operator_with_the_console_s_own_key(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        call = {
            "category": "kebakaran",
            "subtype": "rumah",
            "kecamatan": "wlingi",
            "desa": "Beru",
            "casualties": None,
            "phone": "0812-3456-7890",
            "caller_name": "",
            "description": "Rumah terbakar",
        }
        key = {"Idempotency-Key": "form-1"}
        first = await env.console.post("/api/calls", json=call, headers=key)
        again = await env.console.post("/api/calls", json=call, headers=key)  # Enter pressed twice
        prank = await env.console.post("/api/calls", json={"kind": "prank", "phone": "081299990000"})
        bad = await env.console.post("/api/calls", json={**call, "kecamatan": "Atlantis", "phone": "12"})
        not_signed_in = await httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app), base_url=CONSOLE).post(
            "/api/calls", json=call
        )
        report = (await env.intake.get(f"/v1/reports/{first.json()['id']}")).json()
        noise = (await env.intake.get(f"/v1/reports/{prank.json()['id']}")).json()
        metrics = (await env.console.get("/metrics")).text

    assert first.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert report["channel"] == "call" and report["operator_id"] == sari and report["via"] == "console"
    assert report["location"]["kecamatan"] == "Wlingi" and report["caller"]["phone"] == "+6281234567890"
    assert report["verification"]["state"] == "not_required"
    assert noise["kind"] == "prank" and noise["status"] == "recorded" and noise["operator_id"] == sari
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert {e["field"] for e in bad.json()["errors"]} == {"kecamatan", "phone"}
    assert not_signed_in.status_code == 401
    # Both presses count as actions; intake made one report of them.
    assert 'e112_console_actions_total{action="call",outcome="emergency"} 2.0' in metrics
    labels = " ".join(re.findall(r"\{[^}]*\}", metrics))
    assert "3456" not in labels and "99990000" not in labels  # no caller's number in any label


async def test_the_call_s_start_reaches_intake_and_intake_s_refusal_names_the_field(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        await sign_in(env.console, await operator_with_pin(env))
        call = {"category": "kecelakaan", "kecamatan": "Talun", "phone": "081234567890", "description": "Tabrakan"}
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=95)
        taken = await env.console.post("/api/calls", json={**call, "call_started_at": started.isoformat()})
        future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        ahead = await env.console.post("/api/calls", json={**call, "call_started_at": future})
        no_zone = await env.console.post("/api/calls", json={**call, "call_started_at": "2026-12-03T08:15:02"})
        report = (await env.intake.get(f"/v1/reports/{taken.json()['id']}")).json()

    assert taken.status_code == 202
    assert datetime.fromisoformat(report["call_started_at"]) == started
    assert datetime.fromisoformat(report["call_started_at"]) < datetime.fromisoformat(report["received_at"])
    assert ahead.status_code == 422 and ahead.json()["service"] == "intake"
    assert ahead.json()["errors"] == [{"field": "call_started_at", "message": "in the future"}]
    assert no_zone.status_code == 422 and no_zone.json()["errors"][0]["field"] == "call_started_at"


async def test_the_queue_lists_public_reports_and_takes_verdicts_in_one_action(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        riot = {"category": "kerusuhan", "kecamatan": "Srengat", "phone": "081234567890", "description": "Tawuran"}
        incident = (await env.console.post("/api/calls", json=riot)).json()
        public = {
            "category": "kerusuhan",
            "description": "Tawuran pelajar",
            "location": {"kecamatan": "Srengat"},
            "caller": {"phone": "081255554444"},
            "channel": "sms",
        }
        prank = (await env.intake.post("/v1/reports", json=public)).json()
        repeat = (await env.intake.post("/v1/reports", json={**public, "channel": "whatsapp"})).json()
        queue = (await env.console.get("/api/queue")).json()
        marked = await env.console.post(f"/api/reports/{prank['id']}/verification", json={"verdict": "prank"})
        linked = await env.console.post(
            f"/api/reports/{repeat['id']}/verification", json={"verdict": "duplicate", "duplicate_of": incident["id"]}
        )
        no_target = await env.console.post(f"/api/reports/{repeat['id']}/verification", json={"verdict": "duplicate"})
        not_needed = await env.console.post(f"/api/reports/{incident['id']}/verification", json={"verdict": "genuine"})
        after = (await env.console.get("/api/queue")).json()
        detail = (await env.console.get(f"/api/reports/{prank['id']}")).json()

    pending = [i["report_id"] for i in queue["items"] if i["needs_verdict"]]
    assert pending == [prank["id"], repeat["id"]]  # oldest first
    assert queue["items"][0]["channel"] == "sms" and queue["items"][0]["kecamatan"] == "Srengat"
    assert marked.status_code == 200 and marked.json()["kind"] == "prank"
    assert marked.json()["verification"]["verdict"] == "prank" and marked.json()["verification"]["operator_id"] == sari
    assert linked.status_code == 200 and linked.json()["linked_to"] == incident["id"]
    assert no_target.status_code == 422 and no_target.json()["errors"][0]["field"] == "duplicate_of"
    assert not_needed.status_code == 409 and not_needed.headers["content-type"] == PROBLEM
    assert not any(i["needs_verdict"] for i in after["items"])
    assert detail["caller"]["phone"] == "+6281255554444"  # the operator may call back


async def test_tasks_assigned_to_me_come_first_and_an_unrouted_one_is_closed_by_me(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        assert (await env.console.post("/api/shift/check-in")).status_code == 200
        public = {
            "category": "kerusuhan",
            "description": "Tawuran",
            "location": {"kecamatan": "Srengat"},
            "caller": {"phone": "081255554444"},
            "channel": "sms",
        }
        held = (await env.intake.post("/v1/reports", json=public)).json()
        call = {"category": "kecelakaan", "kecamatan": "Talun", "phone": "081234567890", "description": "Tabrakan"}
        taken = (await env.console.post("/api/calls", json=call)).json()
        unrouted = ReportUnrouted(report_id=taken["id"], category="kecelakaan", reason="no rule", at=datetime.now(UTC))
        await produce(env.bootstrap, [encode(unrouted, topic=topics.REPORTS, key=taken["id"], source="test")])

        async def both_mine():
            items = (await env.console.get("/api/queue")).json()["items"]
            mine = {i["report_id"]: i for i in items if i["mine"] and i["task"] and i["task"]["task_id"]}
            return mine if {held["id"], taken["id"]} <= mine.keys() else None

        mine = await eventually(both_mine, timeout=30)
        queue = (await env.console.get("/api/queue")).json()
        task_id = mine[taken["id"]]["task"]["task_id"]
        closed = await env.console.post(f"/api/tasks/{task_id}/close", json={"note": "dikirim lewat telepon"})
        verify_task = await env.console.post(f"/api/tasks/{mine[held['id']]['task']['task_id']}/close", json={})
        in_shifts = (await env.shifts.get("/v1/tasks", params={"report_id": taken["id"]})).json()

    assert queue["tasks_available"] is True
    # Most urgent first: the call's agencies have no channel here, so phoning them comes
    # first, then the verification, then the unrouted report.
    reasons = [i["reason"] for i in queue["items"] if i["mine"]]
    assert reasons == sorted(reasons, key=TASK_URGENCY.get) and reasons.index("verify") < reasons.index("unrouted")
    assert mine[held["id"]]["reason"] == "verify" and mine[held["id"]]["needs_verdict"] is True
    assert mine[taken["id"]]["reason"] == "unrouted" and mine[taken["id"]]["category"] == "kecelakaan"
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert in_shifts[0]["closed_by"] == sari and in_shifts[0]["note"] == "dikirim lewat telepon"
    assert verify_task.status_code == 409  # a verify task closes with the verdict


async def test_an_agency_the_system_cannot_reach_is_my_task_to_phone_with_its_numbers_and_i_record_the_call(
    database_url, broker
):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        assert (await env.console.post("/api/shift/check-in")).status_code == 200
        # No channel the notifier can use (a webhook without a URL): each dispatch fails at once.
        for agency, phones in (("damkar", ["(0342) 801234", "+6281234500001"]), ("pmi", [])):
            configured = await env.notifier.put(
                f"/v1/agencies/{agency}", json={"channels": ["webhook"], "phones": phones, "updated_by": "test"}
            )
            assert configured.status_code == 200, configured.text
        bad_number = await env.notifier.put("/v1/agencies/pln", json={"phones": ["12"], "updated_by": "test"})
        call = {
            "category": "kebakaran",
            "subtype": "rumah",
            "kecamatan": "Wlingi",
            "phone": "081234567890",
            "description": "Rumah terbakar",
        }
        report = (await env.console.post("/api/calls", json=call)).json()
        fire, pmi = dispatch_to("damkar", report["id"]), dispatch_to("pmi", report["id"])
        await produce(env.bootstrap, [dispatch_record(fire), dispatch_record(pmi)])

        async def phone_tasks():
            items = (await env.console.get("/api/queue")).json()["items"]
            phone = {i["task"]["detail"]["agency"]: i for i in items if i["reason"] == "phone_agency" and i["mine"]}
            return phone if len(phone) == 2 else None

        tasks = await eventually(phone_tasks, timeout=30)
        waiting = (await env.console.get("/api/queue")).json()["waiting"]
        refused = await env.console.post(f"/api/tasks/{tasks['damkar']['task']['task_id']}/close", json={})
        reached = await env.console.post(
            f"/api/tasks/{tasks['damkar']['task']['task_id']}/phone-call",
            json={"outcome": "reached", "note": "diterima Pak Joko"},
        )
        not_reached = await env.console.post(
            f"/api/tasks/{tasks['pmi']['task']['task_id']}/phone-call", json={"outcome": "not_reached"}
        )
        again = await env.console.post(
            f"/api/tasks/{tasks['damkar']['task']['task_id']}/phone-call", json={"outcome": "reached"}
        )
        fire_now = (await env.notifier.get(f"/v1/dispatches/{fire.dispatch_id}")).json()
        pmi_now = (await env.notifier.get(f"/v1/dispatches/{pmi.dispatch_id}")).json()

        async def acknowledged_on_the_timeline():
            timeline = (await env.intake.get(f"/v1/reports/{report['id']}")).json()["timeline"]
            return next((e for e in timeline if e["event"] == "acknowledged"), None)

        acknowledged = await eventually(acknowledged_on_the_timeline, timeout=30)
        closed = {
            t["detail"]["agency"]: t
            for t in (await env.shifts.get("/v1/tasks", params={"report_id": report["id"], "state": "closed"})).json()
        }

    assert bad_number.status_code == 422 and "phones" in bad_number.text
    assert tasks["damkar"]["phones"] == ["+62342801234", "+6281234500001"] and tasks["pmi"]["phones"] == []
    assert tasks["damkar"]["task"]["detail"]["failed"] is True
    assert waiting["mine"] == 2 and waiting["open"] >= waiting["mine"] + waiting["for_nobody"]
    assert refused.status_code == 422  # a phone task closes with the call's outcome
    assert reached.status_code == 200 and reached.json()["outcome"] == "reached"
    assert not_reached.status_code == 200 and again.status_code == 404  # closed: no longer mine
    assert fire_now["acknowledged_via"] == "phone" and fire_now["escalation_due_at"] is None
    assert pmi_now["acknowledged_at"] is None and pmi_now["escalation_due_at"] is not None
    assert datetime.fromisoformat(pmi_now["escalation_due_at"]) <= datetime.now(UTC)  # escalation goes on now
    assert acknowledged["agency"] == "damkar" and acknowledged["detail"]["dispatch_id"] == str(fire.dispatch_id)
    assert acknowledged["detail"]["via"] == "phone" and acknowledged["detail"]["operator_id"] == sari
    assert closed["damkar"]["outcome"] == "reached" and closed["damkar"]["closed_by"] == sari
    assert closed["damkar"]["note"] == "diterima Pak Joko" and closed["pmi"]["outcome"] == "not_reached"


def dispatch_to(agency: str, report_id: str) -> DispatchRequested:
    now = datetime.now(UTC)
    return DispatchRequested(
        dispatch_id=uuid.uuid4(),
        report_id=uuid.UUID(report_id),
        agency=agency,
        role="primary",
        category="kebakaran",
        subtype="rumah",
        description="Rumah terbakar",
        location=EventLocation(kecamatan="Wlingi"),
        caller=EventCaller(phone="+6281234567890"),
        channel="call",
        received_at=now,
        requested_at=now,
    )


def dispatch_record(event: DispatchRequested):
    return encode(event, topic=topics.dispatch_topic(event.agency), key=str(event.report_id), source="e112/router")


async def test_the_board_shows_each_agency_s_state_its_steps_and_its_deadline(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        await env.notifier.put(
            "/v1/agencies/pln", json={"channels": ["webhook"], "ack_deadline_seconds": 60, "updated_by": "test"}
        )
        report = (
            await env.console.post(
                "/api/calls",
                json={
                    "category": "kebakaran",
                    "subtype": "rumah",
                    "kecamatan": "Wlingi",
                    "phone": "081234567890",
                    "description": "Rumah terbakar",
                },
            )
        ).json()
        waiting = (await env.console.get("/api/board")).json()
        damkar, pln = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        routed = [
            RoutedDispatch(dispatch_id=damkar, agency="damkar", role="primary"),
            RoutedDispatch(dispatch_id=pln, agency="pln", role="supporting"),
        ]
        events = [
            (
                topics.REPORTS,
                ReportRouted(
                    report_id=report["id"], category="kebakaran", rule_version=1, routed_at=now, dispatches=routed
                ),
            ),
            (
                topics.DISPATCH_STATUS,
                DispatchDelivered(
                    dispatch_id=damkar,
                    report_id=report["id"],
                    agency="damkar",
                    channel="webhook",
                    attempts=1,
                    delivered_at=now,
                ),
            ),
            (
                topics.DISPATCH_STATUS,
                DispatchAcknowledged(
                    dispatch_id=damkar, report_id=report["id"], agency="damkar", via="api", acknowledged_at=now
                ),
            ),
        ]
        await produce(env.bootstrap, [encode(e, topic=t, key=report["id"], source="test") for t, e in events])

        async def acknowledged():
            rows = (await env.console.get("/api/board")).json()["rows"]
            row = next((r for r in rows if r["report_id"] == report["id"]), None)
            return row if row and row["agencies"] and row["agencies"][0]["state"] == "acknowledged" else None

        row = await eventually(acknowledged, timeout=30)
        board = (await env.console.get("/api/board")).json()

    assert [r["report_id"] for r in waiting["rows"]] == [report["id"]] and waiting["rows"][0]["agencies"] == []
    first, second = row["agencies"]
    assert (first["agency"], first["role"], first["state"]) == ("damkar", "primary", "acknowledged")
    assert set(first["steps"]) == {"requested", "delivered", "acknowledged"}
    assert (second["agency"], second["state"], second["late"]) == ("pln", "requested", False)
    due = datetime.fromisoformat(second["ack_due_at"]) - datetime.fromisoformat(second["steps"]["requested"])
    assert due.total_seconds() == 60
    assert board["deadlines"]["pln"] == 60 and board["deadlines_known"] is True
    assert "081234567890" not in json.dumps(board) and "+6281234567890" not in json.dumps(board)


async def test_the_board_pages_newest_first_with_filters_and_totals_that_count_everything(database_url, broker):
    async with services(database_url, broker.bootstrap, board_page_size=3) as env:
        await sign_in(env.console, await operator_with_pin(env))
        filed = []
        for i, (category, kecamatan) in enumerate(
            [
                ("kebakaran", "Wlingi"),
                ("kecelakaan", "Garum"),
                ("kebakaran", "Talun"),
                ("penyakit", "Garum"),
                ("kebakaran", "Garum"),
            ]
        ):
            call = {
                "category": category,
                "kecamatan": kecamatan,
                "desa": f"Desa {i}",
                "phone": f"08123456789{i}",
                "description": "Uji papan",
            }
            filed.append((await env.console.post("/api/calls", json=call)).json()["id"])
        first = (await env.console.get("/api/board")).json()
        second = (await env.console.get("/api/board", params={"cursor": first["next_cursor"]})).json()
        fires = (await env.console.get("/api/board", params={"category": "kebakaran"})).json()
        in_garum = (await env.console.get("/api/board", params={"kecamatan": "garum", "state": "received"})).json()
        late = (await env.console.get("/api/board", params={"state": "late"})).json()
        wrong = await env.console.get("/api/board", params={"state": "lost"})
    newest_first = list(reversed(filed))
    assert [r["report_id"] for r in first["rows"]] == newest_first[:3] and first["next_cursor"]
    assert [r["report_id"] for r in second["rows"]] == newest_first[3:] and second["next_cursor"] is None
    assert first["totals"]["open"] == 5 and first["totals"]["by_status"] == {"received": 5}
    assert first["totals"]["late"] == 0
    assert [r["report_id"] for r in fires["rows"]] == [filed[4], filed[2], filed[0]] and fires["totals"]["open"] == 3
    assert {r["report_id"] for r in in_garum["rows"]} == {filed[1], filed[3], filed[4]}
    assert late["rows"] == [] and late["next_cursor"] is None
    assert wrong.status_code == 422


async def test_the_call_form_hears_of_a_likely_incident_and_of_the_caller_before_sending(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        await sign_in(env.console, await operator_with_pin(env))
        call = {
            "category": "kerusuhan",
            "kecamatan": "Garum",
            "desa": "Sumberdiren",
            "phone": "081277770000",
            "description": "Tawuran",
        }
        first = (await env.console.post("/api/calls", json=call)).json()
        draft = {"category": "kerusuhan", "kecamatan": "Garum", "desa": "sumberdiren"}
        suggested = (await env.console.get("/api/link-suggestions", params=draft)).json()
        elsewhere = (await env.console.get("/api/link-suggestions", params={**draft, "kecamatan": "Srengat"})).json()
        caller = (await env.console.post("/api/callers/lookup", json={"phone": "0812-7777-0000"})).json()
    assert [(s["report_id"], s["rule"]) for s in suggested] == [(first["id"], "same_desa")]
    assert elsewhere == []
    assert caller["history"]["contacts"] == 1 and caller["recent"][0]["id"] == first["id"]


async def test_an_incident_is_closed_from_the_board_found_in_the_history_and_reopened_by_me(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        riot = {
            "category": "kerusuhan",
            "kecamatan": "Srengat",
            "desa": "Togogan",
            "phone": "081234567890",
            "description": "Tawuran",
        }
        incident = (await env.console.post("/api/calls", json=riot)).json()
        public = {
            "category": "kerusuhan",
            "description": "Tawuran pelajar",
            "location": {"kecamatan": "Srengat"},
            "caller": {"phone": "081255554444"},
            "channel": "sms",
        }
        caller = (await env.intake.post("/v1/reports", json=public)).json()
        await env.console.post(
            f"/api/reports/{caller['id']}/verification", json={"verdict": "duplicate", "duplicate_of": incident["id"]}
        )
        held = (await env.intake.post("/v1/reports", json=public)).json()

        wrong_outcome = await env.console.post(f"/api/reports/{incident['id']}/close", json={"outcome": "done"})
        the_caller = await env.console.post(f"/api/reports/{caller['id']}/close", json={"outcome": "false_alarm"})
        waiting = await env.console.post(f"/api/reports/{held['id']}/close", json={"outcome": "false_alarm"})
        closed = await env.console.post(
            f"/api/reports/{incident['id']}/close",
            json={"outcome": "false_alarm", "note": " Salah paham, bukan tawuran "},
        )
        twice = await env.console.post(f"/api/reports/{incident['id']}/close", json={"outcome": "resolved"})
        board = (await env.console.get("/api/board")).json()
        history = (await env.console.get("/api/history")).json()
        no_reason = await env.console.post(f"/api/reports/{incident['id']}/reopen", json={"reason": "  "})
        reopened = await env.console.post(f"/api/reports/{incident['id']}/reopen", json={"reason": "Ribut lagi"})
        again = await env.console.post(f"/api/reports/{incident['id']}/reopen", json={"reason": "Ribut lagi"})
        board_after = (await env.console.get("/api/board")).json()
        history_after = (await env.console.get("/api/history")).json()
        metrics = (await env.console.get("/metrics")).text

    assert wrong_outcome.status_code == 422
    assert the_caller.status_code == 409 and the_caller.headers["content-type"] == PROBLEM
    assert the_caller.json()["incident_report_id"] == incident["id"]  # the page names the incident to close
    assert waiting.status_code == 409 and "verdict" in waiting.json()["detail"]
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    closure = closed.json()["closure"]
    assert closure["outcome"] == "false_alarm" and closure["note"] == "Salah paham, bukan tawuran"
    assert closure["operator_id"] == sari
    assert twice.status_code == 409 and twice.json()["detail"].startswith("Closed as false_alarm")
    assert incident["id"] not in [r["report_id"] for r in board["rows"]]
    # The incident once: its caller closed with it but is not listed on its own.
    [item] = history["items"]
    assert item["report_id"] == incident["id"] and item["close_outcome"] == "false_alarm" and item["closed_at"]
    assert (item["category"], item["kecamatan"], item["desa"]) == ("kerusuhan", "Srengat", "Togogan")
    assert history["next_cursor"] is None
    assert "081234567890" not in json.dumps(history) and "Salah paham" not in json.dumps(history)
    assert no_reason.status_code == 422
    assert reopened.status_code == 200 and reopened.json()["closure"] is None and reopened.json()["status"] != "closed"
    assert again.status_code == 409
    assert incident["id"] in [r["report_id"] for r in board_after["rows"]] and history_after["items"] == []
    assert 'e112_console_actions_total{action="close",outcome="false_alarm"} 1.0' in metrics
    assert 'e112_console_actions_total{action="close",outcome="refused"} 3.0' in metrics
    assert 'e112_console_actions_total{action="reopen",outcome="done"} 1.0' in metrics


async def test_the_history_reads_past_a_page_of_linked_callers_only(database_url, broker, monkeypatch):
    monkeypatch.setattr(incidents_api, "HISTORY_PAGE", 1)
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        riot = {"category": "kerusuhan", "kecamatan": "Wlingi", "description": "Tawuran"}
        older = (await env.console.post("/api/calls", json={**riot, "phone": "081234567890"})).json()["id"]
        newer = (await env.console.post("/api/calls", json={**riot, "phone": "081234567891"})).json()["id"]
        public = {
            "category": "kerusuhan",
            "description": "Tawuran",
            "channel": "sms",
            "location": {"kecamatan": "Wlingi"},
            "caller": {"phone": "081255554444"},
        }
        caller = (await env.intake.post("/v1/reports", json=public)).json()["id"]  # the newest
        await env.console.post(
            f"/api/reports/{caller}/verification", json={"verdict": "duplicate", "duplicate_of": older}
        )
        for report_id in (older, newer):
            closed = await env.console.post(f"/api/reports/{report_id}/close", json={"outcome": "resolved"})
            assert closed.status_code == 200, closed.text
        first = (await env.console.get("/api/history")).json()
        second = (await env.console.get("/api/history", params={"cursor": first["next_cursor"]})).json()

    # The first read held only the linked caller: the page read on to the next incident.
    assert [i["report_id"] for i in first["items"]] == [newer] and first["next_cursor"]
    assert [i["report_id"] for i in second["items"]] == [older] and second["next_cursor"] is None


async def test_check_in_break_and_check_out_are_the_signed_in_operator_s(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        await sign_in(env.console, sari)
        checked_in = await env.console.post("/api/shift/check-in")
        on_break = await env.console.put("/api/shift/status", json={"status": "break"})
        shift = (await env.console.get("/api/shift")).json()
        back = await env.console.put("/api/shift/status", json={"status": "available"})
        offline = await env.console.put("/api/shift/status", json={"status": "offline"})
        out = await env.console.post("/api/shift/check-out")
        twice = await env.console.post("/api/shift/check-out")
        in_shifts = (await env.shifts.get(f"/v1/operators/{sari}")).json()

    assert checked_in.json()["on_duty"] is True and on_break.json()["status"] == "break"
    assert shift["me"]["id"] == sari and [o["id"] for o in shift["operators"]] == [sari]
    assert shift["free"] == [] and "coverage_alert" in shift and shift["shift"]["code"] in ("pagi", "siang", "malam")
    assert back.json()["status"] == "available"
    assert offline.status_code == 422  # check-out is its own action
    assert out.json()["on_duty"] is False and twice.status_code == 409 and in_shifts["on_duty"] is False


async def test_an_unreachable_service_is_a_clear_503_naming_it(database_url, broker):
    settings = ConsoleSettings(
        **common(database_url, broker.bootstrap),
        shifts_url=f"http://127.0.0.1:{free_port()}",
        upstream_timeout_seconds=2,
    )
    app = console_app(settings)
    async with running(app, API_KEY) as client:
        response = await client.get("/api/operators")
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM
    assert response.json()["service"] == "shifts" and "shifts" in response.json()["detail"]


async def test_live_updates_reach_a_signed_in_browser_without_personal_data(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        sari = await operator_with_pin(env)
        # A real server: an event stream cannot go through an in-memory transport.
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(env.app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
        serving = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started, timeout=20)
            await eventually(lambda: env.app.state.live.assigned.is_set(), timeout=30)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
                unauthorised = await browser.get("/api/events")
                await sign_in(browser, sari)
                lines: list[str] = []
                async with browser.stream("GET", "/api/events") as stream:
                    content_type = stream.headers["content-type"]
                    reader = stream.aiter_lines()
                    while "event: hello" not in lines:
                        lines.append(await anext(reader))
                    report_id, dispatch_id = uuid.uuid4(), uuid.uuid4()
                    now = datetime.now(UTC)
                    received = ReportReceived(
                        report_id=report_id,
                        kind="emergency",
                        category="kebakaran",
                        subtype=None,
                        channel="sms",
                        description="Rumah Pak Budi terbakar",
                        location=None,
                        received_at=now,
                        caller={"name": "Budi", "phone": "+6281234567890"},
                    )
                    ack = DispatchAcknowledged(
                        dispatch_id=dispatch_id, report_id=report_id, agency="damkar", via="api", acknowledged_at=now
                    )
                    await produce(
                        env.bootstrap,
                        [
                            encode(received, topic=topics.REPORTS, key=str(report_id), source="test"),
                            encode(ack, topic=topics.DISPATCH_STATUS, key=str(report_id), source="test"),
                        ],
                    )
                    while not (any('"acknowledged"' in x for x in lines) and any('"received"' in x for x in lines)):
                        lines.append(await asyncio.wait_for(anext(reader), 30))
                    env.app.state.broadcaster.close()  # what SIGTERM does first: every stream ends
                    rest = [line async for line in reader]
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 30)

    assert unauthorised.status_code == 401
    assert content_type.startswith("text/event-stream")
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    mine = [m for m in data if m.get("report_id") == str(report_id)]
    steps = {(m["type"], m.get("event") or m.get("step")) for m in mine}
    assert steps == {("report", "received"), ("dispatch", "acknowledged")}
    ack_message = next(m for m in mine if m["type"] == "dispatch")
    assert ack_message["agency"] == "damkar" and ack_message["dispatch_id"] == str(dispatch_id)
    text = "\n".join(lines + rest)
    assert "Budi" not in text and "6281234567890" not in text
    assert "event: dispatch" in text


async def test_the_pipeline_banner_says_what_the_services_report(database_url, broker):
    async with services(database_url, broker.bootstrap) as env:
        await sign_in(env.console, await operator_with_pin(env))
        # Until their consumers have joined, the notifier and shifts are not ready either.
        well = await eventually(lambda: _pipeline(env.console, lambda answer: answer["ok"]), timeout=30)
        broker.stop()  # the notifier and shifts need the broker to do their job
        trouble = await eventually(lambda: _pipeline(env.console, lambda answer: answer["items"]), timeout=30)
    assert well == {"ok": True, "items": [], "backlog_bound": 100}
    assert trouble["ok"] is False
    not_ready = {i["service"]: i["checks"] for i in trouble["items"] if i["code"] == "service_not_ready"}
    assert "broker" in not_ready.get("notifier", []), trouble


async def _pipeline(console: httpx.AsyncClient, wanted):
    answer = (await console.get("/api/pipeline")).json()
    return answer if wanted(answer) else None
