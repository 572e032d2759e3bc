"""Reading back: listing with filters and pagination, contact statistics, repeat
pranksters flagged (never blocked), and the timeline as other services report."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas import topics
from schemas.envelope import encode
from schemas.events import (
    DispatchAcknowledged,
    DispatchDelivered,
    DispatchEscalated,
    DispatchFieldStatus,
    ReportRouted,
    RoutedDispatch,
)
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, eventually, produce, running

pytestmark = pytest.mark.integration


def intake(database_url: str, bootstrap: str, **extra) -> IntakeSettings:
    return IntakeSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        kafka_session_timeout_ms=2000,
        link_related_reports=False,
        **extra,
    )


def emergency(category: str, kecamatan: str, phone: str = "081234567890", channel: str = "call") -> dict:
    return {
        **FIRE_REPORT,
        "category": category,
        "location": {"kecamatan": kecamatan},
        "caller": {"phone": phone},
        "channel": channel,
    }


async def test_list_filters_and_pages_through_every_report_once(database_url, broker):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as client:
        posted = {}
        for category, kecamatan in [
            ("kebakaran", "Wlingi"),
            ("kecelakaan", "Talun"),
            ("kebakaran", "Talun"),
            ("penyakit", "Garum"),
            ("kebakaran", "Wlingi"),
        ]:
            r = await client.post("/v1/reports", json=emergency(category, kecamatan))
            posted[r.json()["id"]] = (category, kecamatan)
        prank = (
            await client.post(
                "/v1/reports", json={"kind": "prank", "caller": {"phone": "081299900011"}, "channel": "sms"}
            )
        ).json()["id"]
        fires = (await client.get("/v1/reports", params={"category": "kebakaran"})).json()["items"]
        in_talun = (await client.get("/v1/reports", params={"kecamatan": "TALUN"})).json()["items"]
        pranks = (await client.get("/v1/reports", params={"kind": "prank"})).json()["items"]
        recorded = (await client.get("/v1/reports", params={"status": "recorded"})).json()["items"]
        future = (await client.get("/v1/reports", params={"since": "2100-01-01T00:00:00+07:00"})).json()["items"]
        pages, cursor = [], None
        while True:
            page = await client.get("/v1/reports", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            pages.append(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        bad_status = await client.get("/v1/reports", params={"status": "lost"})
        bad_kecamatan = await client.get("/v1/reports", params={"kecamatan": "Bandung"})
        bad_cursor = await client.get("/v1/reports", params={"cursor": "!!"})
    assert sorted(i["id"] for i in fires) == sorted(k for k, v in posted.items() if v[0] == "kebakaran")
    assert {i["kecamatan"] for i in in_talun} == {"Talun"} and len(in_talun) == 2
    assert [i["id"] for i in pranks] == [prank] == [i["id"] for i in recorded]
    assert future == []
    seen = [i["id"] for page in pages for i in page]
    assert len(seen) == 6 and len(set(seen)) == 6 and all(len(p) <= 2 for p in pages)
    times = [i["received_at"] for page in pages for i in page]
    assert times == sorted(times, reverse=True)
    assert bad_status.status_code == bad_kecamatan.status_code == bad_cursor.status_code == 422


async def test_contact_statistics_per_kind_and_channel(database_url, broker):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as client:
        for body in [
            emergency("kebakaran", "Wlingi"),
            emergency("penyakit", "Doko", channel="whatsapp"),
            {"kind": "prank", "channel": "call"},
            {"kind": "prank", "channel": "call"},
            {"kind": "ghost", "channel": "call"},
            {"kind": "information", "channel": "sms"},
        ]:
            assert (await client.post("/v1/reports", json=body)).status_code == 202
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        stats = (await client.get("/v1/stats/contacts", params={"since": since})).json()
        backwards = await client.get("/v1/stats/contacts", params={"since": since, "until": "2000-01-01T00:00:00Z"})
    assert stats["total"] == 6
    assert stats["by_kind"] == {"emergency": 2, "prank": 2, "ghost": 1, "information": 1}
    assert stats["share_by_kind"]["prank"] == pytest.approx(2 / 6, abs=1e-3)
    assert stats["by_channel"] == {"call": 4, "whatsapp": 1, "sms": 1}
    assert sum(d["contacts"] for d in stats["by_day"]) == 6
    assert backwards.status_code == 422


async def test_a_repeat_prankster_is_flagged_but_still_heard(database_url, broker):
    settings = intake(database_url, broker.bootstrap, prank_flag_threshold=3)
    async with running(create_app(settings), API_KEY) as client:
        prank = {"kind": "prank", "caller": {"phone": "0856 1111 2222"}, "channel": "call"}
        answers = [(await client.post("/v1/reports", json=prank)).json() for _ in range(3)]
        real = await client.post("/v1/reports", json=emergency("kebakaran", "Bakung", phone="085611112222"))
        other = await client.post("/v1/reports", json=emergency("kebakaran", "Bakung", phone="085633334444"))
        report = (await client.get(real.headers["location"])).json()
        flagged = (await client.get("/v1/callers/flagged")).json()
    assert [a["caller_flagged"] for a in answers] == [False, False, True]
    assert real.status_code == 202 and real.json()["caller_flagged"] is True  # warned, not blocked
    assert real.json()["status"] == "received"
    assert other.json()["caller_flagged"] is False
    assert report["caller_history"] == {"contacts": 4, "pranks": 3, "period_days": 30, "flagged": True}
    assert [(f["phone"], f["pranks"]) for f in flagged] == [("+6285611112222", 3)]


async def test_the_timeline_follows_acknowledgement_field_status_and_escalation(database_url, broker):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as client:
        report_id = uuid.UUID((await client.post("/v1/reports", json=FIRE_REPORT)).json()["id"])
        damkar, pln = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        at = [now + timedelta(seconds=s) for s in range(5)]

        def status(event, at):
            return encode(event, topic=topics.DISPATCH_STATUS, key=str(report_id), source="test", time=at)

        await produce(
            broker.bootstrap,
            [
                encode(
                    ReportRouted(
                        report_id=report_id,
                        category="kebakaran",
                        rule_version=1,
                        routed_at=at[0],
                        dispatches=[
                            RoutedDispatch(dispatch_id=damkar, agency="damkar", role="primary"),
                            RoutedDispatch(dispatch_id=pln, agency="pln", role="supporting"),
                        ],
                    ),
                    topic=topics.REPORTS,
                    key=str(report_id),
                    source="test",
                ),
                status(
                    DispatchDelivered(
                        dispatch_id=damkar,
                        report_id=report_id,
                        agency="damkar",
                        channel="webhook",
                        attempts=1,
                        delivered_at=at[1],
                    ),
                    now,
                ),
                status(
                    DispatchEscalated(
                        dispatch_id=pln,
                        report_id=report_id,
                        agency="pln",
                        step="resent",
                        reason="not acknowledged in 120 s",
                        escalated_at=at[2],
                    ),
                    now,
                ),
                status(
                    DispatchAcknowledged(
                        dispatch_id=damkar, report_id=report_id, agency="damkar", via="api", acknowledged_at=at[3]
                    ),
                    now,
                ),
                status(
                    DispatchFieldStatus(
                        dispatch_id=damkar,
                        report_id=report_id,
                        agency="damkar",
                        status="on_scene",
                        at=now + timedelta(minutes=9),
                    ),
                    now,
                ),
            ],
        )
        report = await eventually(lambda: _with_events(client, report_id, 5), timeout=20)
    states = {d["agency"]: (d["state"], d["escalated"]) for d in report["dispatches"]}
    assert states == {"damkar": ("on_scene", False), "pln": ("requested", True)}
    assert report["status"] == "responding"
    assert [e["event"] for e in report["timeline"]] == [
        "received",
        "routed",
        "delivered",
        "escalated",
        "acknowledged",
        "field_status",
    ]
    listed = await _listed(database_url, broker, "responding")
    assert str(report_id) in listed


async def _with_events(client, report_id, count):
    report = (await client.get(f"/v1/reports/{report_id}")).json()
    return report if len(report["timeline"]) >= count + 1 else None


async def _listed(database_url, broker, status):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as client:
        return [i["id"] for i in (await client.get("/v1/reports", params={"status": status})).json()["items"]]


async def test_the_counts_hold_everything_the_filter_does_and_incidents_leave_out_callers(database_url, broker):
    settings = intake(database_url, broker.bootstrap).model_copy(update={"link_related_reports": True})
    async with running(create_app(settings), API_KEY) as client:
        fire = (await client.post("/v1/reports", json=FIRE_REPORT)).json()
        caller = (await client.post("/v1/reports", json=FIRE_REPORT)).json()
        await client.post("/v1/reports", json=emergency("kecelakaan", "Garum"))
        await client.post("/v1/reports", json={"kind": "prank", "channel": "call"})
        for i in range(3):
            await client.post("/v1/reports", json=emergency("penyakit", "Talun", phone=f"08123456780{i}"))
        open_incidents = {"kind": "emergency", "incident": "true", "closed": "false"}
        counts = (await client.get("/v1/stats/reports", params=open_incidents)).json()
        in_talun = (await client.get("/v1/stats/reports", params={**open_incidents, "kecamatan": "talun"})).json()
        page = (await client.get("/v1/reports", params={**open_incidents, "limit": 2})).json()
        everything = (await client.get("/v1/stats/reports")).json()
        bad = await client.get("/v1/stats/reports", params={"status": "lost"})
    assert caller["linked_to"] == fire["id"]
    assert counts == {"total": 5, "by_status": {"received": 5}}  # not the caller, not the prank
    assert in_talun["total"] == 3
    assert len(page["items"]) == 2 and page["next_cursor"]  # the page is short; the count is not
    assert everything["total"] == 7 and everything["by_status"] == {"received": 5, "linked": 1, "recorded": 1}
    assert bad.status_code == 422
