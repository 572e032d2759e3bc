"""Operators' status while at work, against a real PostgreSQL and broker: allowed and
refused changes, who is free, the events and the metrics."""

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from schemas import topics
from services.shifts.app import create_app
from services.shifts.settings import ShiftsSettings
from tests.conftest import API_KEY
from tests.support import read_topics, running

pytestmark = pytest.mark.integration
WIB = ZoneInfo("Asia/Jakarta")


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_status_changes_free_operators_events_and_metrics(database_url, broker):
    clock = Clock(datetime(2026, 3, 5, 7, 0, tzinfo=WIB))
    settings = ShiftsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        coverage_check_interval=3600,
    )
    report = str(uuid.uuid4())
    async with running(create_app(settings, clock), API_KEY) as client:
        ani = (await client.post("/v1/operators", json={"name": "Ani"})).json()["id"]
        budi = (await client.post("/v1/operators", json={"name": "Budi"})).json()["id"]

        async def status(operator, value, **extra):
            return await client.put(f"/v1/operators/{operator}/status", json={"status": value, **extra})

        checked_in = (await client.post(f"/v1/operators/{ani}/check-in")).json()
        await client.post(f"/v1/operators/{budi}/check-in")
        clock.now = datetime(2026, 3, 5, 9, 0, tzinfo=WIB)
        on_break = await status(ani, "break")
        during_break = (await client.get("/v1/on-duty")).json()
        metrics_on_break = (await client.get("/metrics")).text
        report_from_break = await status(ani, "handling_report")
        clock.now = datetime(2026, 3, 5, 9, 15, tzinfo=WIB)
        back = await status(ani, "available")
        back_again = await status(ani, "available")  # the same status: no change, no event
        handling = await status(ani, "handling_report", report_id=report)
        another = await status(ani, "handling_report", report_id=str(uuid.uuid4()))
        break_while_handling = await status(ani, "break")
        offline = await status(ani, "offline")
        done = await status(ani, "available")
        not_in = await status(str(uuid.uuid4()), "break")
        clock.now = datetime(2026, 3, 5, 10, 0, tzinfo=WIB)
        await client.post(f"/v1/operators/{budi}/check-out")
        budi_status = await status(budi, "break")
        unknown_status = await status(ani, "sleeping")
        report_on_break = await status(ani, "break", report_id=report)
        await status(ani, "handling_report", report_id=report)
        out_while_handling = await client.post(f"/v1/operators/{ani}/check-out")
        metrics = (await client.get("/metrics")).text
        messages = await read_topics(
            broker.bootstrap,
            [topics.SHIFTS],
            until=lambda ms: any(m.headers["ce_type"].endswith("checked_out.v1") and m.key == ani for m in ms),
            settle=0.5,
        )

    assert checked_in["status"] == "available" and checked_in["shift"] == "pagi"
    assert on_break.status_code == 200 and on_break.json()["status"] == "break"
    assert datetime.fromisoformat(on_break.json()["status_since"]) == datetime(2026, 3, 5, 9, tzinfo=WIB)
    assert [o["name"] for o in during_break["free"]] == ["Budi"]
    assert 'e112_operators_free{shift="pagi"} 1.0' in metrics_on_break
    assert 'e112_operators_on_duty{shift="pagi"} 2.0' in metrics_on_break
    assert report_from_break.status_code == 409 and "end the break" in report_from_break.json()["detail"]
    assert report_from_break.headers["content-type"] == "application/problem+json"
    assert back.status_code == 200 and back_again.status_code == 200
    assert handling.json()["status"] == "handling_report" and handling.json()["report_id"] == report
    assert another.status_code == 409 and "another report" in another.json()["detail"]
    assert break_while_handling.status_code == 409 and "finish the report" in break_while_handling.json()["detail"]
    assert offline.status_code == 409 and "check out" in offline.json()["detail"]
    assert done.json()["status"] == "available" and done.json()["report_id"] is None
    assert not_in.status_code == 404
    assert budi_status.status_code == 409 and "check in first" in budi_status.json()["detail"]
    assert unknown_status.status_code == 422 and unknown_status.json()["errors"][0]["field"] == "status"
    assert report_on_break.status_code == 422
    assert out_while_handling.status_code == 200 and out_while_handling.json()["status"] == "offline"
    assert 'e112_operator_status_changes_total{status="break"} 1.0' in metrics
    assert 'e112_operator_status_changes_total{status="handling_report"} 2.0' in metrics
    assert 'e112_operators_on_duty{shift="pagi"} 0.0' in metrics

    changes = [m.data for m in messages if m.headers["ce_type"].endswith("operator.status_changed.v1")]
    assert [(d["previous"], d["status"], d["report_id"]) for d in changes] == [
        ("available", "break", None),
        ("break", "available", None),
        ("available", "handling_report", report),
        ("handling_report", "available", None),
        ("available", "handling_report", report),
    ]
    assert all(d["operator_id"] == ani and d["shift"] == "pagi" for d in changes)
