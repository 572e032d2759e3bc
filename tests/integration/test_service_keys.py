"""Each service's own admin key and the console's key, against a real PostgreSQL and
broker: every /v1 route of shifts and notifier is in one table saying whether the
console's key reaches it; anonymous and wrong keys get a 401, the console's key a 403
where only the admin's goes, and neither service takes the other's admin key. A new
route fails here until it is put in the table."""

import re
import uuid

import httpx
import pytest

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.notifier.app import create_app as create_notifier
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from services.shifts.app import create_app as create_shifts
from services.shifts.settings import ShiftsSettings
from tests.integration.notifier_support import notifier_settings
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


async def statuses(client: httpx.AsyncClient, method: str, path: str, keys: dict[str, str | None]) -> dict:
    """What each holder's key gets on the route (None: no Authorization at all)."""
    seen = {}
    for holder, key in keys.items():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        seen[holder] = (await client.request(method, filled(path), headers=headers, json={})).status_code
    return seen


async def assert_reach(client: httpx.AsyncClient, table: dict, keys: dict[str, str | None]) -> None:
    """Each route of `table` reached (any answer but 401/403) by exactly the holders it
    names; refused, with a 401 or a 403, for every other; anonymous and unknown keys
    always a 401."""
    default = client.headers.pop("Authorization")  # each request below brings its own, or none
    wrong = []
    for (method, path), reached_by in sorted(table.items()):
        seen = await statuses(client, method, path, keys)
        ok = (
            all(
                (status not in (401, 403)) if holder in reached_by else status in (401, 403)
                for holder, status in seen.items()
            )
            and seen["anonymous"] == seen["wrong"] == 401
        )
        if not ok:
            wrong.append(f"{method} {path}: {seen} (reached by: {sorted(reached_by)})")
    client.headers["Authorization"] = default
    assert wrong == []


async def assert_keys(client: httpx.AsyncClient, table: dict, admin: str, other_admin: str) -> None:
    """Shifts and the notifier: the console's key a 403 where only the admin goes, and
    nothing but an agency's key on the agencies' routes."""
    keys = {"anonymous": None, "wrong": "x" * 40, "other admin": other_admin, "console": CONSOLE, "admin": admin}
    reach = {ADMIN: {"admin"}, CONSOLE_TOO: {"admin", "console"}, AGENCY: set()}
    await assert_reach(client, {route: reach[who] for route, who in table.items()}, keys)
    default = client.headers.pop("Authorization")
    for (method, path), who in table.items():
        seen = await statuses(client, method, path, {"console": CONSOLE, "other admin": other_admin})
        expected = {"console": 403 if who == ADMIN else None, "other admin": 401}
        assert all(seen[h] == status for h, status in expected.items() if status), (method, path, seen)
    client.headers["Authorization"] = default


async def test_shifts_takes_its_own_admin_key_and_the_console_s_only_for_the_console_s_work(database_url, broker):
    settings = ShiftsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        admin_api_key=SHIFTS_ADMIN,
        console_api_key=CONSOLE,
    )
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
        phones = {
            "channels": ["email"],
            "email": ["damkar@blitarkab.go.id"],
            "phones": ["+62342801112"],
            "updated_by": "supervisor",
        }
        assert (await client.put("/v1/agencies/damkar", json=phones)).status_code == 200
        read = await client.get("/v1/agencies/damkar", headers=as_console)
        assert read.status_code == 200 and read.json()["phones"] == ["+62342801112"]
        hijack = {"channels": ["webhook"], "webhook_url": "https://attacker.example/", "updated_by": "console"}
        assert (await client.put("/v1/agencies/damkar", json=hijack, headers=as_console)).status_code == 403
        assert (await client.get("/v1/agencies/damkar")).json()["webhook_url"] is None


ROUTER_ADMIN, INTAKE_ADMIN = "r" * 40, "i" * 40


async def test_the_router_takes_its_own_admin_key_and_no_other(database_url, broker):
    settings = RouterSettings(
        database_url=database_url, kafka_bootstrap_servers=broker.bootstrap, admin_api_key=ROUTER_ADMIN
    )
    app = create_router(settings)
    async with running(app, ROUTER_ADMIN) as client:
        routes = routes_under_keys(app)
        assert {path for _, path in routes} == {
            "/v1/routing-table",
            "/v1/routing-table/versions",
            "/v1/routing-table/versions/{version}",
            "/v1/routing-table/units/{agency}/{kecamatan}",
            "/v1/decisions/{report_id}",
        }
        keys = {
            "anonymous": None,
            "wrong": "x" * 40,
            "console": CONSOLE,
            "other admin": SHIFTS_ADMIN,
            "admin": ROUTER_ADMIN,
        }
        await assert_reach(client, dict.fromkeys(routes, {"admin"}), keys)


ADMIN_ROLE = {"made admin", "admin"}
CONSOLE_ROLE = ADMIN_ROLE | {"console"}
APP = CONSOLE_ROLE | {"app"}

INTAKE_ROUTES = {
    # An app files reports and reads back its own (others' are a 404, tested in
    # test_intake_clients.py), counts, and the policy that says which of its reports are held.
    ("POST", "/v1/reports"): APP,
    ("GET", "/v1/reports"): APP,
    ("GET", "/v1/reports/{report_id}"): APP,
    ("GET", "/v1/stats/reports"): APP,
    ("GET", "/v1/stats/contacts"): APP,
    ("GET", "/v1/verification-policy"): APP,
    ("GET", "/v1/verification-policy/versions"): APP,
    # The console acts on reports for its operator and sees callers' history.
    ("POST", "/v1/reports/{report_id}/verification"): CONSOLE_ROLE,
    ("POST", "/v1/reports/{report_id}/unlink"): CONSOLE_ROLE,
    ("POST", "/v1/reports/{report_id}/close"): CONSOLE_ROLE,
    ("POST", "/v1/reports/{report_id}/reopen"): CONSOLE_ROLE,
    ("GET", "/v1/reports/{report_id}/link-suggestions"): CONSOLE_ROLE,
    ("GET", "/v1/link-suggestions"): CONSOLE_ROLE,
    ("GET", "/v1/callers/flagged"): CONSOLE_ROLE,
    ("POST", "/v1/callers/lookup"): CONSOLE_ROLE,
    # Keys and the policy: the admin's, the configured one or one made with the admin role.
    ("GET", "/v1/admin/api-keys"): ADMIN_ROLE,
    ("POST", "/v1/admin/api-keys"): ADMIN_ROLE,
    ("DELETE", "/v1/admin/api-keys/{key_id}"): ADMIN_ROLE,
    ("POST", "/v1/admin/api-keys/{key_id}/rotate"): ADMIN_ROLE,
    ("PUT", "/v1/verification-policy"): ADMIN_ROLE,
}


async def test_intake_s_every_route_is_reached_by_the_roles_it_names_and_refused_to_the_others(database_url, broker):
    settings = IntakeSettings(
        database_url=database_url, kafka_bootstrap_servers=broker.bootstrap, admin_api_key=INTAKE_ADMIN
    )
    app = create_intake(settings)
    async with running(app, INTAKE_ADMIN) as client:
        made = {}
        for role in ("app", "console", "admin"):
            answer = await client.post("/v1/admin/api-keys", json={"name": f"k-{role}", "role": role})
            assert answer.status_code == 201, answer.text
            made[role] = answer.json()["key"]
        assert set(routes_under_keys(app)) == set(INTAKE_ROUTES)  # a new route must say who reaches it
        keys = {
            "anonymous": None,
            "wrong": "x" * 40,
            "other admin": ROUTER_ADMIN,
            "app": made["app"],
            "console": made["console"],
            "made admin": made["admin"],
            "admin": INTAKE_ADMIN,
        }
        await assert_reach(client, INTAKE_ROUTES, keys)
