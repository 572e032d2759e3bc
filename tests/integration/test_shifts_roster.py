"""The roster of the shifts service against a real PostgreSQL and broker: a month is
generated and stored, then a supervisor's swaps and take-overs are checked against the
rest rule, recorded with who and why, and published."""

from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas import topics
from services.shifts.app import create_app
from services.shifts.roster import ShiftTemplate
from services.shifts.rotation import RestRule, RosterEntry, rest_violations
from services.shifts.settings import ShiftsSettings
from tests.conftest import API_KEY
from tests.support import read_topics, running

pytestmark = pytest.mark.integration
WIB = ZoneInfo("Asia/Jakarta")
NAMES = ("Ani", "Budi", "Cici", "Dewi", "Eka", "Fajar")
TEMPLATES = [
    ShiftTemplate("pagi", time(7), time(15)),
    ShiftTemplate("siang", time(15), time(23)),
    ShiftTemplate("malam", time(23), time(7)),
]


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def app_for(database_url, broker, clock):
    settings = ShiftsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        coverage_check_interval=3600,
    )
    return create_app(settings, clock)


def kind(message) -> str:
    return message.headers["ce_type"].removeprefix("id.go.blitarkab.e112.").removesuffix(".v1")


def as_entries(public: list[dict]) -> list[RosterEntry]:
    return [RosterEntry(date.fromisoformat(e["day"]), e["shift"], e["operator_id"]) for e in public]


class Roster:
    """Look-ups in a month as the API returns it."""

    def __init__(self, body: dict):
        self.entries = body["entries"]

    def on(self, day: date, shift: str) -> list[dict]:
        return [e for e in self.entries if e["day"] == day.isoformat() and e["shift"] == shift]

    def shift_of(self, operator_id: str, day: date) -> str | None:
        found = [e["shift"] for e in self.entries if e["operator_id"] == operator_id and e["day"] == day.isoformat()]
        return found[0] if found else None

    def pick(self, day: date, shift: str, before: str | None = None, after: str | None = None) -> dict:
        """The entry of `shift` on `day` whose operator works `before` the day before / `after` the day after."""
        for e in self.on(day, shift):
            if before and self.shift_of(e["operator_id"], day - timedelta(days=1)) != before:
                continue
            if after and self.shift_of(e["operator_id"], day + timedelta(days=1)) != after:
                continue
            return e
        raise AssertionError(f"no {shift} on {day} between {before} and {after}")


async def test_a_month_is_generated_stored_and_published(database_url, broker):
    clock = Clock(datetime(2026, 2, 20, 10, tzinfo=WIB))
    async with running(app_for(database_url, broker, clock), API_KEY) as client:
        ids = [(await client.post("/v1/operators", json={"name": name})).json()["id"] for name in NAMES[:5]]
        too_few = await client.post("/v1/roster/2026-03", json={"changed_by": "Pak Hadi"})
        ids.append((await client.post("/v1/operators", json={"name": NAMES[5]})).json()["id"])
        march = await client.post("/v1/roster/2026-03", json={"changed_by": "Pak Hadi", "reason": "Maret"})
        again = await client.post("/v1/roster/2026-03", json={"changed_by": "Pak Hadi"})
        april = await client.post("/v1/roster/2026-04", json={"changed_by": "Pak Hadi"})
        read_back = (await client.get("/v1/roster/2026-03")).json()
        only_ani = (await client.get("/v1/roster/2026-03", params={"operator_id": ids[0]})).json()
        missing = await client.get("/v1/roster/2026-05")
        bad_month = await client.post("/v1/roster/2026-13", json={"changed_by": "Pak Hadi"})
        year_zero = [
            await client.post("/v1/roster/0000-01", json={"changed_by": "Pak Hadi"}),
            await client.get("/v1/roster/0000-01/changes"),
            await client.get("/v1/roster/٢٠٢٦-03"),
        ]
        nobody = await client.post("/v1/roster/2026-06", json={})
        changes = (await client.get("/v1/roster/2026-03/changes")).json()
        messages = await read_topics(broker.bootstrap, [topics.SHIFTS], until=lambda ms: len(ms) >= 2)

    assert too_few.status_code == 409 and too_few.headers["content-type"] == "application/problem+json"
    assert "5 operators cannot cover 6" in too_few.json()["detail"]
    assert march.status_code == 201, march.text
    body = march.json()
    assert body["cycle"] == ["pagi", "pagi", "malam", "malam", "siang", "siang"]
    assert body["rule"] == "at least 8 h between shifts and at most one shift starting per day"
    assert len(body["entries"]) == 31 * 6
    assert set(Counter((e["day"], e["shift"]) for e in body["entries"]).values()) == {2}
    assert {t["operator_name"]: sum(t["shifts"].values()) for t in body["totals"]} == dict.fromkeys(NAMES, 31)
    last_night = Roster(body).on(date(2026, 3, 31), "malam")[0]
    assert datetime.fromisoformat(last_night["starts_at"]) == datetime(2026, 3, 31, 23, tzinfo=WIB)
    assert datetime.fromisoformat(last_night["ends_at"]) == datetime(2026, 4, 1, 7, tzinfo=WIB)
    assert again.status_code == 409
    assert april.status_code == 201
    # Stored and read back the same, and the rest rule holds across the month boundary.
    assert read_back["entries"] == body["entries"]
    both = as_entries(body["entries"]) + as_entries(april.json()["entries"])
    assert rest_violations(both, TEMPLATES, RestRule()) == []
    assert len(only_ani["entries"]) == 31 and {e["operator_id"] for e in only_ani["entries"]} == {ids[0]}
    assert missing.status_code == 404
    assert bad_month.status_code == 422 and bad_month.json()["errors"][0]["field"] == "path.month"
    assert [r.status_code for r in year_zero] == [422, 422, 422]  # no date, and Arabic-Indic digits
    assert nobody.status_code == 422 and nobody.json()["errors"][0]["field"] == "changed_by"
    assert [(c["kind"], c["changed_by"], c["reason"], c["override"]) for c in changes] == [
        ("generated", "Pak Hadi", "Maret", False)
    ]
    generated = [m for m in messages if kind(m) == "roster.changed"]
    assert [(m.key, m.data["month"], m.data["kind"], len(m.data["entries"])) for m in generated] == [
        ("roster", "2026-03", "generated", 186),
        ("roster", "2026-04", "generated", 180),
    ]


async def test_swaps_and_take_overs_are_checked_recorded_and_published(database_url, broker):
    clock = Clock(datetime(2026, 2, 28, 12, tzinfo=WIB))
    async with running(app_for(database_url, broker, clock), API_KEY) as client:
        for name in NAMES:
            await client.post("/v1/operators", json={"name": name})
        roster = Roster((await client.post("/v1/roster/2026-03", json={"changed_by": "Pak Hadi"})).json())
        who = {"changed_by": "Pak Hadi", "reason": "permintaan operator"}

        # On the 10th: one on pagi with malam next, one on malam who had pagi the day before.
        # Exchanging them keeps everybody's rest: pagi→malam→malam and pagi→pagi→malam.
        day = date(2026, 3, 10)
        x = roster.pick(day, "pagi", after="malam")
        y = roster.pick(day, "malam", before="pagi")
        good = await client.post("/v1/roster/swaps", json={"entry_ids": [x["id"], y["id"]], **who})
        after_good = Roster((await client.get("/v1/roster/2026-03")).json())

        # On the 20th: the one on siang worked malam the night before; putting them on pagi
        # would start them at 07:00 straight after a night ending at 07:00.
        day2 = date(2026, 3, 20)
        p = roster.pick(day2, "pagi", before="siang")
        s = roster.pick(day2, "siang", before="malam")
        refused = await client.post("/v1/roster/swaps", json={"entry_ids": [p["id"], s["id"]], **who})
        unchanged = Roster((await client.get("/v1/roster/2026-03")).json())
        overridden = await client.post(
            "/v1/roster/swaps",
            json={"entry_ids": [p["id"], s["id"]], "changed_by": "Pak Hadi", "reason": "Eka sakit", "override": True},
        )

        # Take-overs: everyone rostered already works every day; a reserve can take one.
        day3 = date(2026, 3, 15)
        pagi = roster.on(day3, "pagi")[0]
        busy = roster.on(day3, "siang")[0]["operator_id"]
        refused_take = await client.post(
            "/v1/roster/take-overs", json={"entry_id": pagi["id"], "operator_id": busy, **who}
        )
        rina = (await client.post("/v1/operators", json={"name": "Rina"})).json()["id"]
        taken = await client.post("/v1/roster/take-overs", json={"entry_id": pagi["id"], "operator_id": rina, **who})
        twice = await client.post("/v1/roster/take-overs", json={"entry_id": pagi["id"], "operator_id": rina, **who})
        other_pagi = roster.on(day3, "pagi")[1]
        double_booked = await client.post(
            "/v1/roster/take-overs", json={"entry_id": other_pagi["id"], "operator_id": rina, **who, "override": True}
        )
        same_entry = await client.post("/v1/roster/swaps", json={"entry_ids": [x["id"], x["id"]], **who})
        mine = [e["id"] for e in roster.entries if e["operator_id"] == x["operator_id"]][20:22]
        same_operator = await client.post("/v1/roster/swaps", json={"entry_ids": mine, **who})
        unknown = await client.post("/v1/roster/swaps", json={"entry_ids": [x["id"], 999999], **who})
        clock.now = datetime(2026, 3, 2, 12, tzinfo=WIB)
        over = await client.post(
            "/v1/roster/take-overs",
            json={"entry_id": roster.on(date(2026, 3, 1), "pagi")[0]["id"], "operator_id": rina, **who},
        )
        changes = (await client.get("/v1/roster/2026-03/changes")).json()
        messages = await read_topics(
            broker.bootstrap, [topics.SHIFTS], until=lambda ms: sum(kind(m) == "roster.changed" for m in ms) >= 4
        )

    assert good.status_code == 201, good.text
    change = good.json()
    assert (change["kind"], change["changed_by"], change["reason"], change["override"]) == (
        "swap",
        "Pak Hadi",
        "permintaan operator",
        False,
    )
    assert change["violations"] == []
    assert after_good.shift_of(x["operator_id"], day) == "malam"
    assert after_good.shift_of(y["operator_id"], day) == "pagi"
    assert {(e["entry_id"], e["from_operator_id"], e["to_operator_id"]) for e in change["entries"]} == {
        (x["id"], x["operator_id"], y["operator_id"]),
        (y["id"], y["operator_id"], x["operator_id"]),
    }

    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["title"] == "Breaks the rest rule"
    assert "override" in problem["detail"]
    assert {
        "operator_id": s["operator_id"],
        "rule": "min_rest",
        "first": {"day": "2026-03-19", "shift": "malam"},
        "second": {"day": "2026-03-20", "shift": "pagi"},
        "rest_hours": 0.0,
    } in problem["violations"]
    assert (
        unchanged.shift_of(p["operator_id"], day2) == "pagi" and unchanged.shift_of(s["operator_id"], day2) == "siang"
    )

    assert overridden.status_code == 201
    assert overridden.json()["override"] is True and overridden.json()["reason"] == "Eka sakit"
    assert overridden.json()["violations"] == problem["violations"]

    assert refused_take.status_code == 409
    assert "one_per_day" in {v["rule"] for v in refused_take.json()["violations"]}
    assert taken.status_code == 201 and taken.json()["kind"] == "take_over"
    assert taken.json()["entries"][0]["from_operator_id"] == pagi["operator_id"]
    assert taken.json()["entries"][0]["to_operator_id"] == rina
    assert twice.status_code == 422
    assert double_booked.status_code == 409 and double_booked.json()["title"] == "Already on that shift"
    assert same_entry.status_code == 422 and same_operator.status_code == 422
    assert "same operator" in same_operator.json()["detail"]
    assert unknown.status_code == 404
    assert over.status_code == 409 and over.json()["title"] == "Shift is over"

    assert [(c["kind"], c["override"], len(c["violations"])) for c in changes] == [
        ("generated", False, 0),
        ("swap", False, 0),
        ("swap", True, len(problem["violations"])),
        ("take_over", False, 0),
    ]
    published = [m.data for m in messages if kind(m) == "roster.changed"]
    assert [(d["kind"], d["override"], d["changed_by"]) for d in published] == [
        ("generated", False, "Pak Hadi"),
        ("swap", False, "Pak Hadi"),
        ("swap", True, "Pak Hadi"),
        ("take_over", False, "Pak Hadi"),
    ]
