"""Intake's apps: keys stored hashed, managed by admins, rate-limited; Idempotency-Keys
scoped per app and expiring."""

import asyncpg
import pytest

from services.intake import keys
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import API_KEY
from tests.support import FIRE_REPORT, eventually, running

pytestmark = pytest.mark.integration


def intake(database_url: str, bootstrap: str) -> IntakeSettings:
    return IntakeSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        kafka_session_timeout_ms=2000,
    )


async def test_a_rotated_key_works_beside_the_new_one_for_the_overlap_then_expires(database_url, broker):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as admin:
        made = (await admin.post("/v1/admin/api-keys", json={"name": "sms-gateway", "rate_per_minute": 120})).json()
        old = {"Authorization": f"Bearer {made['key']}"}
        await admin.post("/v1/reports", json=FIRE_REPORT, headers=old)  # in use: looked up and cached
        rotated = await admin.post(f"/v1/admin/api-keys/{made['id']}/rotate", json={"overlap_hours": 1})
        new = {"Authorization": f"Bearer {rotated.json()['key']}"}
        both = [(await admin.post("/v1/reports", json=FIRE_REPORT, headers=h)).status_code for h in (old, new)]
        listed = {k["id"]: k for k in (await admin.get("/v1/admin/api-keys")).json()}
        # The overlap ends (here: moved to a second from now): the old key is refused once
        # it is past, even while this replica had it cached.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE intake.api_clients SET expires_at = now() + interval '1 second' WHERE id = $1::uuid",
                made["id"],
            )
        finally:
            await conn.close()
        await admin.post("/v1/reports", json=FIRE_REPORT, headers=old)
        refused = await eventually(
            lambda: _status(admin.post("/v1/reports", json=FIRE_REPORT, headers=old), 401), timeout=15
        )
        new_still = await admin.post("/v1/reports", json=FIRE_REPORT, headers=new)
        rotate_expired = await admin.post(f"/v1/admin/api-keys/{made['id']}/rotate", json={"overlap_hours": 1})
        short = await admin.post("/v1/admin/api-keys", json={"name": "pilot", "expires_in_days": 7})
        at_once = await admin.post(f"/v1/admin/api-keys/{short.json()['id']}/rotate", json={"overlap_hours": 0})
        pilot_old = await admin.post(
            "/v1/reports", json=FIRE_REPORT, headers={"Authorization": f"Bearer {short.json()['key']}"}
        )
        bad = await admin.post(f"/v1/admin/api-keys/{made['id']}/rotate", json={"overlap_hours": -1})
    assert rotated.status_code == 201 and rotated.json()["name"] == "sms-gateway"
    assert rotated.json()["rate_per_minute"] == 120 and rotated.json()["role"] == "app"
    assert both == [202, 202], "during the overlap both keys file reports"
    assert listed[made["id"]]["expires_at"] is not None and listed[rotated.json()["id"]]["expires_at"] is None
    assert refused and new_still.status_code == 202
    assert rotate_expired.status_code == 404, "an expired key is no longer rotated"
    assert short.json()["expires_at"] is not None and at_once.status_code == 201
    assert pilot_old.status_code == 401, "an overlap of 0 ends the old key at once"
    assert bad.status_code == 422


async def _status(request, wanted: int) -> bool:
    return (await request).status_code == wanted


async def test_an_app_key_is_created_once_stored_hashed_and_revocable(database_url, broker):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as admin:
        created = await admin.post("/v1/admin/api-keys", json={"name": "sms-gateway", "rate_per_minute": 120})
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        as_app = {"Authorization": f"Bearer {key}"}
        filed = await admin.post("/v1/reports", json=FIRE_REPORT, headers=as_app)
        listed = (await admin.get("/v1/admin/api-keys")).json()
        app_may_not_manage = await admin.post("/v1/admin/api-keys", json={"name": "x"}, headers=as_app)
        report = (await admin.get(filed.headers["location"])).json()
        assert (await admin.delete(f"/v1/admin/api-keys/{key_id}")).status_code == 204
        after_revoke = await admin.post("/v1/reports", json=FIRE_REPORT, headers=as_app)
        revoke_again = await admin.delete(f"/v1/admin/api-keys/{key_id}")
    assert filed.status_code == 202
    assert report["via"] == "sms-gateway"
    assert [k["name"] for k in listed] == ["sms-gateway"] and "key" not in listed[0]
    assert app_may_not_manage.status_code == 403
    assert after_revoke.status_code == 401
    assert revoke_again.status_code == 404
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT key_hash FROM intake.api_clients")
        assert key.encode() not in stored and len(stored) == 32  # a SHA-256, not the key
    finally:
        await conn.close()


async def test_over_the_rate_limit_is_a_429_with_retry_after(database_url, broker):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as admin:
        key = (await admin.post("/v1/admin/api-keys", json={"name": "web-form", "rate_per_minute": 6})).json()["key"]
        as_app = {"Authorization": f"Bearer {key}"}
        statuses = [(await admin.get("/v1/reports", headers=as_app)) for _ in range(8)]
        bootstrap_unlimited = [(await admin.get("/v1/reports")).status_code for _ in range(20)]
    codes = [r.status_code for r in statuses]
    assert codes[:5] == [200] * 5 and codes[-1] == 429  # a burst of five, then the limit
    limited = statuses[-1]
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert int(limited.headers["retry-after"]) >= 1
    assert set(bootstrap_unlimited) == {200}


async def test_the_keys_command_creates_lists_and_revokes(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await keys.main(keys.parse(["create", "--name", "console", "--rate", "300"])) == 0
    printed = capsys.readouterr().out
    key_id = printed.split()[1]
    assert "key  e112_" in printed
    assert await keys.main(keys.parse(["list"])) == 0
    assert "console" in capsys.readouterr().out
    assert await keys.main(keys.parse(["revoke", key_id])) == 0
    assert await keys.main(keys.parse(["revoke", key_id])) == 1


async def test_idempotency_keys_belong_to_one_app_and_expire(database_url, broker):
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as admin:
        key = (await admin.post("/v1/admin/api-keys", json={"name": "app"})).json()["key"]
        as_app = {"Authorization": f"Bearer {key}", "Idempotency-Key": "k-1"}
        first = await admin.post("/v1/reports", json=FIRE_REPORT, headers=as_app)
        other_app = await admin.post("/v1/reports", json=FIRE_REPORT, headers={"Idempotency-Key": "k-1"})
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE intake.idempotency_keys SET created_at = now() - interval '25 hours'")
        finally:
            await conn.close()
        after_expiry = await admin.post("/v1/reports", json=FIRE_REPORT, headers=as_app)
        replay = await admin.post("/v1/reports", json=FIRE_REPORT, headers=as_app)
    assert other_app.json()["id"] != first.json()["id"]  # another app's key space
    assert after_expiry.json()["id"] not in (first.json()["id"], other_app.json()["id"])
    assert replay.json()["id"] == after_expiry.json()["id"]


async def test_an_app_reads_back_only_its_own_reports_and_no_callers_of_others(database_url, broker):
    """Any app key read every caller's name and phone, and the repeat callers' list."""
    async with running(create_app(intake(database_url, broker.bootstrap)), API_KEY) as admin:
        keys_ = [(await admin.post("/v1/admin/api-keys", json={"name": n})).json()["key"] for n in ("sms", "web")]
        console = (await admin.post("/v1/admin/api-keys", json={"name": "console", "role": "console"})).json()["key"]
        app_a, app_b, as_console = ({"Authorization": f"Bearer {k}"} for k in (*keys_, console))
        mine = (await admin.post("/v1/reports", json=FIRE_REPORT, headers=app_a)).json()["id"]
        theirs = (
            await admin.post("/v1/reports", json={**FIRE_REPORT, "location": {"kecamatan": "Garum"}}, headers=app_b)
        ).json()["id"]
        own = await admin.get(f"/v1/reports/{mine}", headers=app_a)
        other = await admin.get(f"/v1/reports/{theirs}", headers=app_a)
        listed_by_a = (await admin.get("/v1/reports", headers=app_a)).json()["items"]
        listed_by_console = (await admin.get("/v1/reports", headers=as_console)).json()["items"]
        by_console = await admin.get(f"/v1/reports/{theirs}", headers=as_console)
        flagged_by_app = await admin.get("/v1/callers/flagged", headers=app_a)
        flagged_by_console = await admin.get("/v1/callers/flagged", headers=as_console)
    assert own.status_code == 200 and own.json()["caller"]["phone"] == "+6281234567890"
    assert own.json()["caller_history"] is None  # counts across other apps' reports are not its to see
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    assert [r["id"] for r in listed_by_a] == [mine]
    assert {r["id"] for r in listed_by_console} == {mine, theirs}
    assert by_console.status_code == 200 and by_console.json()["caller_history"]["contacts"] == 2
    assert flagged_by_app.status_code == 403 and flagged_by_console.status_code == 200
