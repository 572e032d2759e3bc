"""Nothing dropped: a report the router cannot route is dead-lettered with the error, the
operators are told, and `python -m services.common.redrive` re-drives it once the cause
is fixed - to its agencies, once, however often the command runs. Real PostgreSQL,
real broker, the command as a process."""

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from schemas import topics
from schemas.envelope import encode
from schemas.events import EventCaller, EventLocation, ReportReceived
from services.router.app import create_app
from services.router.settings import RouterSettings
from tests.conftest import API_KEY
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DISPATCH = "id.go.blitarkab.e112.dispatch.requested.v1"
UNROUTED = "id.go.blitarkab.e112.report.unrouted.v1"
ROUTED = "id.go.blitarkab.e112.report.routed.v1"
FIRE_AGENCIES = ("damkar", "pln", "polres")
# A row the router cannot read: written by hand, with an agency code that does not exist.
BROKEN_TABLE = '{"rules": {"kebakaran": {"primary": "tni"}}}'


async def redrive_command(broker, database_url: str, *args: str) -> tuple[str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.common.redrive",
        "--bootstrap",
        broker.bootstrap,
        "--database-url",
        database_url,
        "--consumer",
        "router",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def query(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def claims(database_url: str, ce_id: str) -> set[str]:
    rows = await query(
        database_url,
        "SELECT event_id FROM router.inbox WHERE consumer = 'router' AND event_id IN ($1, 'deadletter:' || $1)",
        ce_id,
    )
    return {r["event_id"] for r in rows}


async def test_a_report_that_cannot_be_routed_is_deadlettered_and_redriven_once_after_the_fix(database_url, broker):
    event = ReportReceived(
        report_id=uuid.uuid4(),
        kind="emergency",
        category="kebakaran",
        subtype="gudang",
        description="uji",
        location=EventLocation(kecamatan="Talun"),
        caller=EventCaller(name="Sri", phone="+6281234567890"),
        channel="call",
        casualties=None,
        received_at=datetime.now(UTC),
    )
    record = encode(event, topic=topics.REPORTS, key=str(event.report_id), source="test")
    ce_id, key = record.event_id, str(event.report_id)
    fire_topics = [topics.dispatch_topic(a) for a in FIRE_AGENCIES]

    async with running(
        create_app(
            RouterSettings(
                database_url=database_url,
                kafka_bootstrap_servers=broker.bootstrap,
                e112_api_key=API_KEY,
                outbox_poll_interval=0.2,
                kafka_session_timeout_ms=2000,
            )
        ),
        API_KEY,
    ) as client:
        await query(
            database_url,
            "INSERT INTO router.routing_table_versions (version, rules, changed_by, reason) "
            "VALUES (2, $1::jsonb, 'psql', 'edited by hand')",
            BROKEN_TABLE,
        )
        await produce(broker.bootstrap, [record])

        # Dead-lettered with the error, and the operators told.
        seen = await read_topics(
            broker.bootstrap,
            [topics.DEADLETTER, topics.REPORTS],
            until=lambda ms: (
                any(m.topic == topics.DEADLETTER for m in ms) and any(m.headers.get("ce_type") == UNROUTED for m in ms)
            ),
        )
        dead = [m for m in seen if m.topic == topics.DEADLETTER]
        assert len(dead) == 1 and dead[0].key == key and dead[0].headers["ce_id"] == ce_id
        assert dead[0].headers["e112_consumer"] == "router"
        assert "routing table version 2 cannot be read" in dead[0].headers["e112_error"]
        notice = next(m for m in seen if m.headers.get("ce_type") == UNROUTED)
        assert notice.key == key and "dead-lettered" in notice.data["reason"]
        assert "6281234567890" not in notice.data["reason"]
        decision = (await client.get(f"/v1/decisions/{key}")).json()
        assert decision["outcome"] == "deadlettered" and "version 2" in decision["reason"]
        # The claim is the dead letter's own: the ce_id stays free for a re-drive.
        assert await claims(database_url, ce_id) == {f"deadletter:{ce_id}"}

        # Re-driven before the fix: it fails again and is dead-lettered again, not dropped.
        out, _ = await redrive_command(broker, database_url)
        assert out.startswith(f"redriven\t{ce_id}\t{topics.REPORTS}")
        await read_topics(broker.bootstrap, [topics.DEADLETTER], until=lambda ms: len(ms) == 2, timeout=20)

        # The fix: a valid table (version 1's rules) saved as a new version.
        shipped = (await client.get("/v1/routing-table/versions/1")).json()["table"]
        fixed = await client.put(
            "/v1/routing-table", json={"table": shipped, "changed_by": "Ani", "reason": "restore after hand edit"}
        )
        assert fixed.status_code == 200 and fixed.json()["version"] == 3

        out, _ = await redrive_command(broker, database_url, "--dry-run")
        assert out.startswith(f"would_redrive\t{ce_id}")
        assert await claims(database_url, ce_id) == {f"deadletter:{ce_id}"}  # nothing changed

        out, err = await redrive_command(broker, database_url, "--since", "2000-01-01T00:00:00+07:00")
        assert out.count("redriven") == 1, out  # two dead letters, one event: re-driven once
        assert "1 redriven" in err
        routed = await eventually(lambda: routed_decision(client, key))
        assert routed["rule_version"] == 3
        assert {d["agency"] for d in routed["dispatches"]} == set(FIRE_AGENCIES)
        assert await claims(database_url, ce_id) == {ce_id}

        # Run again: handled already, so nothing is published a second time.
        out, _ = await redrive_command(broker, database_url)
        assert out.startswith(f"skipped_handled\t{ce_id}")

        messages = await read_topics(
            broker.bootstrap,
            [*fire_topics, topics.REPORTS],
            until=lambda ms: sum(m.headers.get("ce_type") == DISPATCH for m in ms) >= 3,
            settle=2.0,
        )
    dispatches = [m for m in messages if m.headers.get("ce_type") == DISPATCH]
    assert sorted(m.topic for m in dispatches) == sorted(fire_topics)  # each agency once
    assert all(m.data["report_id"] == key for m in dispatches)
    assert len([m for m in messages if m.headers.get("ce_type") == ROUTED]) == 1


async def routed_decision(client, key: str) -> dict | None:
    decision = (await client.get(f"/v1/decisions/{key}")).json()
    return decision if decision.get("outcome") == "routed" else None


async def test_an_unreadable_report_is_deadlettered_and_the_operators_told(database_url, broker):
    from schemas.envelope import KafkaRecord

    report_id = str(uuid.uuid4())
    garbage = KafkaRecord(topics.REPORTS, report_id.encode(), [("ce_id", b"junk-2")], b"not json")
    async with running(
        create_app(
            RouterSettings(
                database_url=database_url,
                kafka_bootstrap_servers=broker.bootstrap,
                e112_api_key=API_KEY,
                outbox_poll_interval=0.2,
                kafka_session_timeout_ms=2000,
            )
        ),
        API_KEY,
    ) as client:
        await produce(broker.bootstrap, [garbage])
        seen = await read_topics(
            broker.bootstrap,
            [topics.DEADLETTER, topics.REPORTS],
            until=lambda ms: (
                any(m.topic == topics.DEADLETTER for m in ms) and any(m.headers.get("ce_type") == UNROUTED for m in ms)
            ),
        )
        decision = (await client.get(f"/v1/decisions/{report_id}")).json()
    notice = next(m for m in seen if m.headers.get("ce_type") == UNROUTED)
    assert notice.data["report_id"] == report_id and notice.data["category"] is None
    assert decision["outcome"] == "deadlettered"
