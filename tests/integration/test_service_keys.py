"""Each service's own admin key and the console's key, against a real PostgreSQL and
broker: every /v1 route of shifts and notifier is in one table saying whether the
console's key reaches it; anonymous and wrong keys get a 401, the console's key a 403
where only the admin's goes, and neither service takes the other's admin key. A new
route fails here until it is put in the table."""

import re
import uuid

import httpx
import pytest

from services.notifier.app import create_app as create_notifier
from services.shifts.app import create_app as create_shifts
from services.shifts.settings import ShiftsSettings
from tests.integration.test_notifier_helpers import notifier_settings
from tests.support import running

pytestmark = pytest.mark.integration

SHIFTS_ADMIN, NOTIFIER_ADMIN, CONSOLE = ("s" * 40, "n" * 40, "c" * 40)

# (method, path) → who besides the service's admin reaches it: CONSOLE_TOO (the console's
# key too), ADMIN (nobody else), AGENCY (an agency's key, and no service key at all).
ADMIN, CONSOLE_TOO, AGENCY = "admin", "console", "agency"
SHIFTS_ROUTES = {
    ("POST", "/v1/operators"): ADMIN,
    ("GET", "/v1/operators"): CONSOLE_TOO,
    ("GET", "/v1/operators/{operator_id}"): CONSOLE_TOO,
    ("POST", "/v1/operators/{operator_id}/check-in"): CONSOLE_TOO,
    ("POST", "/v1/operators/{operator_id}/check-out"): CONSOLE_TOO,
    ("PUT", "/v1/operators/{operator_id}/status"): CONSOLE_TOO,
    ("GET", "/v1/on-duty"): CONSOLE_TOO,
    ("GET", "/v1/tasks"): CONSOLE_TOO,
    ("GET", "/v1/queue"): CONSOLE_TOO,
    ("POST", "/v1/tasks/{task_id}/close"): CONSOLE_TOO,
    ("POST", "/v1/handover-notes"): ADMIN,
    ("GET", "/v1/handover"): ADMIN,
    ("POST", "/v1/roster/{month}"): ADMIN,
    ("GET", "/v1/roster/{month}"): ADMIN,
    ("GET", "/v1/roster/{month}/changes"): ADMIN,
    ("POST", "/v1/roster/swaps"): ADMIN,
    ("POST", "/v1/roster/take-overs"): ADMIN,
}
NOTIFIER_ROUTES = {
    ("GET", "/v1/agencies"): CONSOLE_TOO,
    ("GET", "/v1/agencies/{agency}"): CONSOLE_TOO,
    ("PUT", "/v1/agencies/{agency}"): ADMIN,
    ("PUT", "/v1/agencies/{agency}/webhook"): ADMIN,
    ("DELETE", "/v1/agencies/{agency}/webhook"): ADMIN,
    ("POST", "/v1/agencies/{agency}/webhook/secret"): ADMIN,
    ("POST", "/v1/agencies/{agency}/api-keys"): ADMIN,
    ("GET", "/v1/agencies/{agency}/api-keys"): ADMIN,
    ("DELETE", "/v1/agencies/{agency}/api-keys/{key_id}"): ADMIN,
    ("GET", "/v1/dispatches/late"): CONSOLE_TOO,
    ("GET", "/v1/dispatches/{dispatch_id}"): ADMIN,
    ("POST", "/v1/dispatches/{dispatch_id}/phone-call"): CONSOLE_TOO,
    ("POST", "/v1/dispatches/{dispatch_id}/acknowledgement"): AGENCY,
    ("POST", "/v1/dispatches/{dispatch_id}/field-status"): AGENCY,
    ("GET", "/v1/agency/dispatches/{dispatch_id}"): AGENCY,
}


def routes_under_keys(app) -> set[tuple[str, str]]:
    """The app's /v1 routes taken by a key, as its OpenAPI lists them (the e-mail links'
    are signed links)."""
    paths = app.openapi()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1/") and not path.startswith("/v1/ack/")
        for method in operations
    }


def filled(path: str) -> str:
    # Any id: the key is checked before the path, the query and the body are.
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


async def assert_keys(client: httpx.AsyncClient, table: dict, admin: str, other_admin: str) -> None:
    default = client.headers.pop("Authorization")  # each request below brings its own, or none
    wrong = []
    for (method, path), who in sorted(table.items()):
        url = filled(path)

        keys = {"anonymous": None, "wrong": "x" * 40, "other admin": other_admin, "console": CONSOLE, "admin": admin}
        seen = {}
        for holder, key in keys.items():
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            seen[holder] = (await client.request(method, url, headers=headers, json={})).status_code
        refused = seen["anonymous"] == seen["wrong"] == seen["other admin"] == 401
        if who == AGENCY:
            ok = refused and seen["admin"] == seen["console"] == 401
        else:
            admitted = seen["admin"] not in (401, 403)
            console_ok = seen["console"] not in (401, 403) if who == CONSOLE_TOO else seen["console"] == 403
            ok = refused and admitted and console_ok
        if not ok:
            wrong.append(f"{method} {path}: {seen} (reached by: {who})")
    client.headers["Authorization"] = default
    assert wrong == []


async def test_shifts_takes_its_own_admin_key_and_the_console_s_only_for_the_console_s_work(database_url, broker):
    settings = ShiftsSettings(
        database_url=database_url, kafka_bootstrap_servers=broker.bootstrap,
        admin_api_key=SHIFTS_ADMIN, console_api_key=CONSOLE,
    )  # fmt: skip
    app = create_shifts(settings)
    async with running(app, SHIFTS_ADMIN) as client:
        assert routes_under_keys(app) == set(SHIFTS_ROUTES)
        await assert_keys(client, SHIFTS_ROUTES, SHIFTS_ADMIN, NOTIFIER_ADMIN)
        # The console's key does the console's work end to end: an operator's day.
        sari = (await client.post("/v1/operators", json={"name": "Sari"})).json()
        as_console = {"Authorization": f"Bearer {CONSOLE}"}
        checked_in = await client.post(f"/v1/operators/{sari['id']}/check-in", headers=as_console)
        assert checked_in.status_code == 200 and checked_in.json()["on_duty"] is True
        refused = await client.post("/v1/operators", json={"name": "Mallory"}, headers=as_console)
        assert refused.status_code == 403 and "admin key" in refused.json()["detail"]
        assert [o["name"] for o in (await client.get("/v1/operators")).json()] == ["Sari"]


async def test_the_notifier_takes_its_own_admin_key_and_the_console_s_only_to_read_agencies_and_record_calls(
    database_url, broker
):
    settings = notifier_settings(
        database_url, broker.bootstrap, e112_api_key=None, admin_api_key=NOTIFIER_ADMIN, console_api_key=CONSOLE
    )
    app = create_notifier(settings)
    async with running(app, NOTIFIER_ADMIN) as client:
        assert routes_under_keys(app) == set(NOTIFIER_ROUTES)
        await assert_keys(client, NOTIFIER_ROUTES, NOTIFIER_ADMIN, SHIFTS_ADMIN)
        as_console = {"Authorization": f"Bearer {CONSOLE}"}
        phones = {"channels": ["email"], "email": ["damkar@blitarkab.go.id"], "phones": ["+62342801112"],
                  "updated_by": "supervisor"}  # fmt: skip
        assert (await client.put("/v1/agencies/damkar", json=phones)).status_code == 200
        read = await client.get("/v1/agencies/damkar", headers=as_console)
        assert read.status_code == 200 and read.json()["phones"] == ["+62342801112"]
        hijack = {"channels": ["webhook"], "webhook_url": "https://attacker.example/", "updated_by": "console"}
        assert (await client.put("/v1/agencies/damkar", json=hijack, headers=as_console)).status_code == 403
        assert (await client.get("/v1/agencies/damkar")).json()["webhook_url"] is None
