"""Coverage alerts of the shifts service against a real PostgreSQL and broker, with an
injected clock: the check runs at the times the test sets, never after a sleep."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from schemas import topics
from services.shifts.app import create_app
from services.shifts.settings import ShiftsSettings
from tests.conftest import API_KEY
from tests.support import eventually, read_topics, running

pytestmark = pytest.mark.integration
WIB = ZoneInfo("Asia/Jakarta")


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def wib(*args) -> datetime:
    return datetime(*args, tzinfo=WIB)


def settings(database_url, broker, **overrides) -> ShiftsSettings:
    # A long interval: the loop ticks once at start, the test ticks when it wants.
    values = {"outbox_poll_interval": 0.2, "coverage_check_interval": 3600, **overrides}
    return ShiftsSettings(
        database_url=database_url, kafka_bootstrap_servers=broker.bootstrap, e112_api_key=API_KEY, **values
    )


def kind(message) -> str:
    return message.headers["ce_type"].removeprefix("id.go.blitarkab.e112.").removesuffix(".v1")


async def test_alerts_fire_at_the_right_moments_once_per_shortage_and_end_with_restored(database_url, broker):
    clock = Clock(wib(2026, 3, 31, 23, 0))  # the month's last night begins, nobody here
    app = create_app(settings(database_url, broker), clock)
    async with running(app, API_KEY) as client:
        ids = {}
        for name in ("Ani", "Budi", "Cici", "Dewi", "Eka"):
            ids[name] = (await client.post("/v1/operators", json={"name": name})).json()["id"]

        async def tick(*when):
            clock.now = wib(*when)
            return await app.state.coverage.tick()

        async def check(action, name, *when):
            clock.now = wib(*when)
            response = await client.post(f"/v1/operators/{ids[name]}/{action}")
            assert response.status_code == 200, response.text

        in_grace = [await tick(2026, 3, 31, 23, 0), await tick(2026, 3, 31, 23, 9, 59)]
        nobody = await tick(2026, 3, 31, 23, 10)
        repeated = [await tick(2026, 3, 31, 23, 11), await tick(2026, 3, 31, 23, 19)]
        await check("check-in", "Ani", 2026, 3, 31, 23, 20)  # one of two: the same shortage goes on
        still_short = (await client.get("/v1/on-duty")).json()
        await check("check-in", "Budi", 2026, 3, 31, 23, 30)  # staffed: restored at once
        staffed = (await client.get("/v1/on-duty")).json()
        await check("check-out", "Ani", 2026, 4, 1, 2, 0)  # into the next month, one leaves: a new episode
        after_midnight = await tick(2026, 4, 1, 2, 1)
        await check("check-in", "Cici", 2026, 4, 1, 2, 30)
        await check("check-in", "Dewi", 2026, 4, 1, 6, 45)  # early: for pagi, not for malam
        before_seven = (await client.get("/v1/on-duty")).json()
        pagi_grace = await tick(2026, 4, 1, 7, 5)
        pagi_short = await tick(2026, 4, 1, 7, 10)  # Dewi alone; Budi and Cici still in from malam
        morning = (await client.get("/v1/on-duty")).json()
        await check("check-in", "Eka", 2026, 4, 1, 7, 12)
        await check("check-out", "Budi", 2026, 4, 1, 7, 15)
        await check("check-out", "Cici", 2026, 4, 1, 7, 16)
        await check("check-out", "Eka", 2026, 4, 1, 14, 0)  # pagi short again until its end
        shift_change = await tick(2026, 4, 1, 15, 1)  # pagi's episode ends with pagi; siang in its grace
        siang_nobody = await tick(2026, 4, 1, 15, 10)
        metrics = (await client.get("/metrics")).text
        messages = await read_topics(
            broker.bootstrap,
            [topics.SHIFTS],
            until=lambda ms: sum(m.key == "coverage" for m in ms) >= 9 and sum(m.key == ids["Dewi"] for m in ms) >= 2,
            settle=1.0,
        )

    assert [o.alerts for o in in_grace] == [[], []]
    assert [(a.shift.code, a.reason) for a in nobody.alerts] == [("malam", "nobody")]
    assert all(not o.alerts and not o.restored for o in repeated)
    assert still_short["coverage_alert"]["reason"] == "nobody" and still_short["understaffed"] is True
    assert staffed["coverage_alert"] is None and staffed["understaffed"] is False
    assert not after_midnight.alerts
    assert before_seven["shift"]["code"] == "malam" and before_seven["checked_in_for_shift"] == 2
    assert not pagi_grace.alerts
    assert [(a.shift.code, a.reason, a.present) for a in pagi_short.alerts] == [("pagi", "short", 1)]
    assert pagi_short.still_checked_in == 2
    assert [o["name"] for o in morning["leaving"]] == ["Budi", "Cici"]
    assert [o["name"] for o in morning["free"]] == ["Dewi"]
    assert shift_change.restored == ["shift_ended"] and not shift_change.alerts
    assert [(a.shift.code, a.reason) for a in siang_nobody.alerts] == [("siang", "nobody")]

    coverage = [m for m in messages if m.key == "coverage"]
    assert [(kind(m), m.data["shift"], m.data.get("reason") or m.data["how"]) for m in coverage] == [
        ("shift.coverage_alert", "malam", "nobody"),
        ("shift.coverage_restored", "malam", "staffed"),
        ("shift.coverage_alert", "malam", "short"),
        ("shift.coverage_restored", "malam", "staffed"),
        ("shift.coverage_alert", "pagi", "short"),
        ("shift.coverage_restored", "pagi", "staffed"),
        ("shift.coverage_alert", "pagi", "short"),
        ("shift.coverage_restored", "pagi", "shift_ended"),
        ("shift.coverage_alert", "siang", "nobody"),
    ]
    first = coverage[0]
    assert datetime.fromisoformat(first.data["shift_starts_at"]) == wib(2026, 3, 31, 23)
    assert datetime.fromisoformat(first.data["shift_ends_at"]) == wib(2026, 4, 1, 7)
    assert datetime.fromisoformat(first.headers["ce_time"]) == wib(2026, 3, 31, 23, 10)
    assert (first.data["needed"], first.data["checked_in"]) == (2, 0)
    assert datetime.fromisoformat(coverage[1].data["at"]) == wib(2026, 3, 31, 23, 30)
    assert datetime.fromisoformat(coverage[7].data["at"]) == wib(2026, 4, 1, 15, 0)  # when pagi ended

    still = [m for m in messages if kind(m) == "operator.still_checked_in"]
    assert sorted((m.key, m.data["shift"]) for m in still) == sorted(
        [(ids["Budi"], "malam"), (ids["Cici"], "malam"), (ids["Dewi"], "pagi")]
    )
    assert 'e112_coverage_alerts_total{reason="nobody",shift="malam"} 1.0' in metrics
    assert 'e112_coverage_alerts_total{reason="short",shift="malam"} 1.0' in metrics
    assert 'e112_coverage_alerts_total{reason="short",shift="pagi"} 2.0' in metrics
    assert 'e112_coverage_alerts_total{reason="nobody",shift="siang"} 1.0' in metrics
    assert "e112_shift_coverage_short 1.0" in metrics
    assert 'e112_operators_on_duty{shift="pagi"} 1.0' in metrics  # Dewi, leaving now
    assert 'e112_operators_on_duty{shift="siang"} 0.0' in metrics


async def test_nobody_ten_minutes_into_a_rostered_shift_names_who_is_missing(database_url, broker):
    clock = Clock(wib(2026, 3, 31, 23, 0))  # a shift's first minutes: no alert at start
    app = create_app(settings(database_url, broker), clock)
    async with running(app, API_KEY) as client:
        for name in ("Ani", "Budi", "Cici", "Dewi", "Eka", "Fajar"):
            await client.post("/v1/operators", json={"name": name})
        roster = await client.post("/v1/roster/2026-04", json={"changed_by": "Pak Hadi"})
        assert roster.status_code == 201, roster.text
        first_pagi = [e for e in roster.json()["entries"] if e["day"] == "2026-04-01" and e["shift"] == "pagi"]
        one = first_pagi[0]["operator_id"]
        clock.now = wib(2026, 4, 1, 7, 2)
        assert (await client.post(f"/v1/operators/{one}/check-in")).status_code == 200
        clock.now = wib(2026, 4, 1, 7, 10)
        outcome = await app.state.coverage.tick()
        on_duty = (await client.get("/v1/on-duty")).json()
        messages = await read_topics(
            broker.bootstrap, [topics.SHIFTS], until=lambda ms: any(kind(m) == "shift.coverage_alert" for m in ms)
        )

    assert [a.reason for a in outcome.alerts] == ["short"]
    (alert,) = [m for m in messages if kind(m) == "shift.coverage_alert" and m.data["shift"] == "pagi"]
    assert alert.data["missing_operator_ids"] == [first_pagi[1]["operator_id"]]
    assert [r["operator_id"] for r in on_duty["missing"]] == [first_pagi[1]["operator_id"]]
    assert {r["operator_id"] for r in on_duty["rostered"]} == {e["operator_id"] for e in first_pagi}


async def test_the_background_loop_alerts_once_however_often_it_runs(database_url, broker):
    clock = Clock(wib(2026, 3, 4, 23, 0))
    app = create_app(settings(database_url, broker, coverage_check_interval=0.05), clock)
    async with running(app, API_KEY) as client:
        # The night shift has its two, so nothing to say before pagi begins.
        for name in ("Ani", "Budi"):
            operator = (await client.post("/v1/operators", json={"name": name})).json()
            await client.post(f"/v1/operators/{operator['id']}/check-in")
        clock.now = wib(2026, 3, 5, 7, 10)  # ten minutes into pagi with nobody for it

        async def alerted():
            return (await client.get("/v1/on-duty")).json()["coverage_alert"]

        alert = await eventually(alerted, timeout=10)
        messages = await read_topics(
            broker.bootstrap,
            [topics.SHIFTS],
            until=lambda ms: any(kind(m) == "shift.coverage_alert" for m in ms),
            settle=1.0,  # the loop keeps running meanwhile: any repeat would arrive
        )

    assert alert["reason"] == "nobody"
    assert [m.data["shift"] for m in messages if kind(m) == "shift.coverage_alert"] == ["pagi"]
