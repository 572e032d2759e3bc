"""Router rules as data against a real PostgreSQL and broker: extra rules (subtype,
casualties, kecamatan), local units in the dispatch, changes through the admin API that
route the next report differently without a restart, and the record of why."""

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import EventCaller, EventLocation, ReportReceived
from services.router.app import create_app
from services.router.settings import RouterSettings
from tests.conftest import API_KEY
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration

DISPATCH = "id.go.blitarkab.e112.dispatch.requested.v1"
UNROUTED = "id.go.blitarkab.e112.report.unrouted.v1"


def settings(database_url: str, bootstrap: str) -> RouterSettings:
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        kafka_session_timeout_ms=2000,
    )


def report(category: str, kecamatan: str, *, casualties: int | None = None, subtype: str | None = None) -> KafkaRecord:
    event = ReportReceived(
        report_id=uuid.uuid4(),
        kind="emergency",
        category=category,
        subtype=subtype,
        description="uji",
        location=EventLocation(kecamatan=kecamatan),
        caller=EventCaller(name="Sri", phone="+6281234567890"),
        channel="call",
        casualties=casualties,
        received_at=datetime.now(UTC),
    )
    return encode(event, topic=topics.REPORTS, key=str(event.report_id), source="test")


def report_id(record: KafkaRecord) -> str:
    return record.key.decode()


async def dispatches_of(bootstrap: str, record: KafkaRecord, count: int) -> dict[str, dict]:
    """The dispatches of one report, by agency, once `count` of them have arrived."""
    agencies = ("damkar", "bpbd", "polres", "dinkes", "pmi", "pln", "telkom", "satpolpp")
    key = report_id(record)
    messages = await read_topics(
        bootstrap,
        [topics.dispatch_topic(a) for a in agencies],
        until=lambda ms: len({m.headers["ce_id"] for m in ms if m.key == key}) >= count,
        settle=1.0,
    )
    mine = [m for m in messages if m.key == key]
    assert all(m.headers["ce_type"] == DISPATCH for m in mine)
    # Delivery is at least once: a relay interrupted mid-batch (the topics still being
    # created) publishes the batch again. A copy is the same event under the same ce_id,
    # which readers drop; a second decision would be a new ce_id.
    by_id: dict[str, dict] = {}
    for m in mine:
        assert by_id.setdefault(m.headers["ce_id"], m.data) == m.data
    assert len(by_id) == count, [m.topic for m in mine]  # nothing more
    return {d["agency"]: d for d in by_id.values()}


async def test_casualties_and_kecamatan_add_agencies_and_name_local_units(database_url, broker):
    fire = report("kebakaran", "Srengat", casualties=2, subtype="rumah")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        await produce(broker.bootstrap, [fire])
        got = await dispatches_of(broker.bootstrap, fire, 4)
        decision = (await client.get(f"/v1/decisions/{report_id(fire)}")).json()
    assert {a: d["role"] for a, d in got.items()} == {
        "damkar": "primary",
        "pln": "supporting",
        "polres": "supporting",
        "dinkes": "supporting",
    }
    assert got["damkar"]["unit"] == {"code": "damkar-pos-srengat", "name": "Pos Damkar Srengat"}
    assert got["polres"]["unit"] == {"code": "polsek-srengat", "name": "Polsek Srengat"}
    assert got["dinkes"]["unit"]["code"] == "pkm-srengat"
    assert got["pln"]["unit"] is None
    assert got["dinkes"]["casualties"] == 2
    assert decision["outcome"] == "routed" and decision["rule_version"] == 1
    assert decision["matched_rules"] == ["category:kebakaran", "korban"]
    why = {d["agency"]: d for d in decision["dispatches"]}
    assert why["dinkes"]["because"] == ["korban"]
    assert why["damkar"]["because"] == ["category:kebakaran"]
    assert why["polres"]["unit"]["code"] == "polsek-srengat"
    assert {d["dispatch_id"] for d in decision["dispatches"]} == {d["dispatch_id"] for d in got.values()}


async def test_rule_and_unit_changes_route_the_next_report_differently_without_a_restart(database_url, broker):
    before, after = report("bencana_alam", "Nglegok"), report("bencana_alam", "nglegok")
    kelud = {
        "id": "kelud-lereng",
        "description": "Kelud's slopes: police and Satpol PP for evacuation",
        "when": {"categories": ["bencana_alam"], "kecamatan": ["Nglegok", "Gandusari"]},
        "add": ["polres", "satpolpp"],
    }
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        await produce(broker.bootstrap, [before])
        assert set(await dispatches_of(broker.bootstrap, before, 3)) == {"bpbd", "pmi", "dinkes"}

        live = (await client.get("/v1/routing-table")).json()
        assert live["version"] == 1 and live["changed_by"] == "system"
        table = live["table"]
        table["extra_rules"].append(kelud)
        changed = await client.put(
            "/v1/routing-table",
            json={
                "table": table,
                "changed_by": "supervisor Ani",
                "reason": "Kelud alert level III",
                "expected_version": 1,
            },
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["version"] == 2
        unit = await client.put(
            "/v1/routing-table/units/polres/NGLEGOK",
            json={
                "unit": {"code": "pos-kelud", "name": "Pos Pantau Kelud (Polsek Nglegok)"},
                "changed_by": "Pak Hadi",
                "reason": "post moved up the slope for the alert",
            },
        )
        assert unit.status_code == 200, unit.text
        assert unit.json()["version"] == 3
        assert unit.json()["table"]["units"]["polres"]["Nglegok"]["code"] == "pos-kelud"
        stale = await client.put(
            "/v1/routing-table",
            json={"table": table, "changed_by": "x", "reason": "made on version 1", "expected_version": 1},
        )

        await produce(broker.bootstrap, [after])
        got = await dispatches_of(broker.bootstrap, after, 5)
        decision = (await client.get(f"/v1/decisions/{report_id(after)}")).json()
        versions = (await client.get("/v1/routing-table/versions")).json()
        second = (await client.get("/v1/routing-table/versions/2")).json()
        missing = await client.get("/v1/routing-table/versions/99")
        first_decision = (await client.get(f"/v1/decisions/{report_id(before)}")).json()

    assert stale.status_code == 409 and stale.json()["current_version"] == 3
    assert got["polres"]["role"] == "supporting"
    assert got["polres"]["unit"] == {"code": "pos-kelud", "name": "Pos Pantau Kelud (Polsek Nglegok)"}
    assert got["satpolpp"]["unit"] is None
    assert decision["rule_version"] == 3 and decision["rule_changed_by"] == "Pak Hadi"
    assert decision["matched_rules"] == ["category:bencana_alam", "kelud-lereng"]
    assert {d["agency"]: d["because"] for d in decision["dispatches"]}["polres"] == ["kelud-lereng"]
    assert first_decision["rule_version"] == 1 and first_decision["matched_rules"] == ["category:bencana_alam"]
    assert [(v["version"], v["changed_by"]) for v in versions] == [
        (3, "Pak Hadi"),
        (2, "supervisor Ani"),
        (1, "system"),
    ]
    assert versions[1]["reason"] == "Kelud alert level III"
    assert second["table"]["units"]["polres"]["Nglegok"]["code"] == "polsek-nglegok"  # as it was then
    assert missing.status_code == 404


async def test_a_category_sent_to_the_operators_is_unrouted_never_dropped(database_url, broker):
    riot = report("kerusuhan", "Wates")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        table = (await client.get("/v1/routing-table")).json()["table"]
        table["rules"]["kerusuhan"] = None
        changed = await client.put(
            "/v1/routing-table", json={"table": table, "changed_by": "Ani", "reason": "operators judge riots first"}
        )
        assert changed.status_code == 200, changed.text
        await produce(broker.bootstrap, [riot])
        messages = await read_topics(
            broker.bootstrap,
            [topics.REPORTS, topics.dispatch_topic("polres"), topics.dispatch_topic("satpolpp")],
            until=lambda ms: any(m.headers.get("ce_type") == UNROUTED for m in ms),
            settle=1.0,
        )
        decision = (await client.get(f"/v1/decisions/{report_id(riot)}")).json()
    unrouted = [m for m in messages if m.headers.get("ce_type") == UNROUTED]
    assert len(unrouted) == 1 and unrouted[0].key == report_id(riot)
    assert "operators" in unrouted[0].data["reason"]
    assert not [m for m in messages if m.topic.startswith(topics.DISPATCH_PREFIX)]
    assert decision["outcome"] == "unrouted" and decision["rule_version"] == 2
    assert decision["dispatches"] == [] and "operators" in decision["reason"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("put", "/v1/routing-table", {"table": {"rules": {}}, "changed_by": "x", "reason": "y"}, "table"),
        (
            "put",
            "/v1/routing-table/units/polres/Kota%20Blitar",
            {"unit": {"code": "a", "name": "A"}, "changed_by": "x", "reason": "y"},
            "kecamatan",
        ),
        (
            "put",
            "/v1/routing-table/units/tni/Wlingi",
            {"unit": {"code": "a", "name": "A"}, "changed_by": "x", "reason": "y"},
            "agency",
        ),
        (
            "put",
            "/v1/routing-table/units/polres/Wlingi",
            {"unit": {"code": "Not A Code", "name": "A"}, "changed_by": "x", "reason": "y"},
            "unit.code",
        ),
        (
            "put",
            "/v1/routing-table/units/polres/Wlingi",
            {"unit": None, "changed_by": " ", "reason": "y"},
            "changed_by",
        ),
        ("get", "/v1/routing-table/versions/0", None, "version"),
    ],
)
async def test_bad_changes_are_a_clear_4xx_and_change_nothing(database_url, broker, method, path, body, field):
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        response = await client.request(method, path, json=body)
        version = (await client.get("/v1/routing-table")).json()["version"]
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"].endswith(field) for e in response.json()["errors"]), response.json()
    assert version == 1


async def test_a_whole_table_with_an_extra_rule_that_means_nothing_is_refused(database_url, broker):
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        table = (await client.get("/v1/routing-table")).json()["table"]
        table["extra_rules"].append({"id": "all", "when": {}, "add": ["pln"]})
        response = await client.put("/v1/routing-table", json={"table": table, "changed_by": "x", "reason": "y"})
    assert response.status_code == 422
    assert "at least one condition" in response.json()["detail"]


async def test_a_table_stored_by_the_first_router_gains_extra_rules_and_units_at_start(database_url, broker):
    app_settings = settings(database_url, broker.bootstrap)
    async with running(create_app(app_settings), API_KEY):
        pass
    conn = await asyncpg.connect(database_url)
    try:  # what the first router stored: per-category rules only, one of them changed
        await conn.execute(
            """UPDATE router.routing_table_versions
               SET rules = jsonb_build_object('rules', jsonb_set(rules->'rules', '{binatang_buas,supporting}', $1))
               WHERE version = 1""",
            '["satpolpp"]',
        )
    finally:
        await conn.close()
    async with running(create_app(app_settings), API_KEY) as client:
        live = (await client.get("/v1/routing-table")).json()
    async with running(create_app(app_settings), API_KEY) as client:
        again = (await client.get("/v1/routing-table")).json()
    assert live["version"] == 2 and live["changed_by"] == "system"
    assert live["table"]["rules"]["binatang_buas"]["supporting"] == ["satpolpp"]
    assert live["table"]["units"]["polres"]["Wlingi"]["code"] == "polsek-wlingi"
    assert [r["id"] for r in live["table"]["extra_rules"]] == [
        "korban",
        "korban-massal",
        "jaringan-listrik",
        "jaringan-telkom",
    ]
    assert again["version"] == 2  # upgraded once


async def test_reports_are_routed_by_the_live_version_as_it_changes(database_url, broker):
    """Each report is decided by the version live when it is handled; the decision names it."""
    reports = [report("binatang_buas", "Doko") for _ in range(2)]
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        await produce(broker.bootstrap, reports[:1])
        await eventually(lambda: decided(client, reports[0]))
        table = (await client.get("/v1/routing-table")).json()["table"]
        table["rules"]["binatang_buas"] = {"primary": "bpbd", "supporting": ["damkar"]}
        await client.put("/v1/routing-table", json={"table": table, "changed_by": "x", "reason": "snakes: BPBD"})
        await produce(broker.bootstrap, reports[1:])
        second = await eventually(lambda: decided(client, reports[1]))
        first = await decided(client, reports[0])
    assert [(d["agency"], d["role"]) for d in first["dispatches"]] == [("damkar", "primary")]
    assert [(d["agency"], d["role"]) for d in second["dispatches"]] == [("bpbd", "primary"), ("damkar", "supporting")]
    assert (first["rule_version"], second["rule_version"]) == (1, 2)


async def decided(client, record: KafkaRecord) -> dict | None:
    response = await client.get(f"/v1/decisions/{report_id(record)}")
    return response.json() if response.status_code == 200 else None
