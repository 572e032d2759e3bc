"""Handover at shift change against a real PostgreSQL and broker: notes from the
leaving operators for the incoming shift, and who of the leaving shift is still here."""

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.shifts.app import create_app
from services.shifts.settings import ShiftsSettings
from tests.conftest import API_KEY
from tests.support import running

pytestmark = pytest.mark.integration
WIB = ZoneInfo("Asia/Jakarta")


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def wib(*args) -> datetime:
    return datetime(*args, tzinfo=WIB)


async def test_notes_pass_from_the_night_to_the_morning_and_leavers_are_listed(database_url, broker):
    clock = Clock(wib(2026, 3, 31, 23, 0))
    settings = ShiftsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        coverage_check_interval=3600,
    )
    async with running(create_app(settings, clock), API_KEY) as client:
        ids = {}
        for name in ("Budi", "Cici", "Dewi"):
            ids[name] = (await client.post("/v1/operators", json={"name": name})).json()["id"]
        await client.post(f"/v1/operators/{ids['Budi']}/check-in")
        await client.post(f"/v1/operators/{ids['Cici']}/check-in")

        async def note(name, text):
            return await client.post("/v1/handover-notes", json={"operator_id": ids[name], "note": text})

        clock.now = wib(2026, 4, 1, 6, 30)
        budi_note = await note("Budi", "Laporan pohon tumbang di Wlingi menunggu konfirmasi PLN.")
        during_night = (await client.get("/v1/handover")).json()
        not_at_work = await note("Dewi", "—")
        empty = await note("Cici", "   ")
        unknown = await client.post("/v1/handover-notes", json={"operator_id": str(uuid.uuid4()), "note": "x"})
        clock.now = wib(2026, 4, 1, 6, 50)
        await note("Cici", "Telepon iseng berulang dari nomor yang sama sejak 03:00.")
        clock.now = wib(2026, 4, 1, 7, 5)
        morning = (await client.get("/v1/handover")).json()
        await client.post(f"/v1/operators/{ids['Budi']}/check-out")
        after_budi_left = (await client.get("/v1/handover")).json()
        clock.now = wib(2026, 4, 1, 15, 5)
        afternoon = (await client.get("/v1/handover")).json()

    assert budi_note.status_code == 201, budi_note.text
    written = budi_note.json()
    assert (written["from_shift"], written["for_shift"], written["operator_name"]) == ("malam", "pagi", "Budi")
    assert datetime.fromisoformat(written["from_shift_starts_at"]) == wib(2026, 3, 31, 23)
    assert datetime.fromisoformat(written["for_shift_starts_at"]) == wib(2026, 4, 1, 7)
    assert during_night["shift"]["code"] == "malam" and during_night["notes"] == []
    assert during_night["leaving"] == []
    assert not_at_work.status_code == 409 and not_at_work.headers["content-type"] == "application/problem+json"
    assert empty.status_code == 422
    assert unknown.status_code == 404
    assert morning["shift"]["code"] == "pagi"
    assert [(n["operator_name"], n["note"][:8]) for n in morning["notes"]] == [
        ("Cici", "Telepon "),
        ("Budi", "Laporan "),
    ]
    assert [o["name"] for o in morning["leaving"]] == ["Budi", "Cici"]
    assert [o["name"] for o in after_budi_left["leaving"]] == ["Cici"]
    assert afternoon["shift"]["code"] == "siang" and afternoon["notes"] == []
