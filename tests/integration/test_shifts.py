"""Shifts against a real PostgreSQL and broker, with an injected clock."""

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


async def test_check_in_and_out_and_who_is_on_duty_across_midnight(database_url, broker):
    clock = Clock(datetime(2026, 11, 30, 23, 30, tzinfo=WIB))
    settings = ShiftsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
    )
    async with running(create_app(settings, clock), API_KEY) as client:
        sari = (await client.post("/v1/operators", json={"name": "Sari"})).json()
        dewi = (await client.post("/v1/operators", json={"name": "Dewi"})).json()
        assert (await client.post(f"/v1/operators/{sari['id']}/check-in")).status_code == 200
        twice = await client.post(f"/v1/operators/{sari['id']}/check-in")

        clock.now = datetime(2026, 12, 1, 2, 0, tzinfo=WIB)  # after midnight, at month end
        night = (await client.get("/v1/on-duty")).json()
        await client.post(f"/v1/operators/{dewi['id']}/check-in")
        staffed = (await client.get("/v1/on-duty")).json()
        metrics = (await client.get("/metrics")).text

        clock.now = datetime(2026, 12, 1, 7, 5, tzinfo=WIB)
        out = await client.post(f"/v1/operators/{sari['id']}/check-out")
        not_in = await client.post(f"/v1/operators/{sari['id']}/check-out")
        morning = (await client.get("/v1/on-duty")).json()
        events = await read_topics(broker.bootstrap, [topics.SHIFTS], until=lambda ms: len(ms) >= 3)

    assert twice.status_code == 409
    assert night["shift"]["code"] == "malam"
    assert datetime.fromisoformat(night["shift"]["starts_at"]) == datetime(2026, 11, 30, 23, 0, tzinfo=WIB)
    assert datetime.fromisoformat(night["shift"]["ends_at"]) == datetime(2026, 12, 1, 7, 0, tzinfo=WIB)
    assert [o["name"] for o in night["operators"]] == ["Sari"] and night["understaffed"] is True
    assert staffed["understaffed"] is False
    assert 'e112_operators_on_duty{shift="malam"} 2.0' in metrics
    assert out.status_code == 200 and out.json()["on_duty"] is False
    assert not_in.status_code == 409
    assert morning["shift"]["code"] == "pagi" and [o["name"] for o in morning["operators"]] == ["Dewi"]
    kinds = [(m.key, m.headers["ce_type"].split(".")[-2]) for m in events]
    assert (sari["id"], "checked_in") in kinds and (sari["id"], "checked_out") in kinds
    assert (dewi["id"], "checked_in") in kinds
    assert all(m.data["shift"] == "malam" for m in events if m.key == sari["id"])
