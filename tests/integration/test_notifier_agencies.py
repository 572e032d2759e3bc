"""The notifier's agency configuration API: channels, webhook and its secret, e-mail,
acknowledgement deadline, escalation contacts; clear 4xx problems for bad input."""

import pytest

from services.notifier.app import create_app
from tests.conftest import API_KEY
from tests.integration.notifier_support import notifier_settings
from tests.support import running

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
FULL = {
    "channels": ["webhook", "email"],
    "webhook_url": "https://cad.damkar.blitarkab.go.id/112",
    "email": ["piket@damkar.blitarkab.go.id"],
    "ack_deadline_seconds": 120,
    "escalation_contacts": ["kepala@damkar.blitarkab.go.id"],
    "updated_by": "operator-1",
}


async def test_an_agency_configuration_is_set_read_and_replaced(database_url, broker):
    async with running(create_app(notifier_settings(database_url, broker.bootstrap)), API_KEY) as client:
        before = (await client.get("/v1/agencies/damkar")).json()
        put = await client.put("/v1/agencies/damkar", json=FULL)
        read = (await client.get("/v1/agencies/damkar")).json()
        put_again = await client.put("/v1/agencies/damkar", json={**FULL, "ack_deadline_seconds": 90})
        email_only = await client.put(
            "/v1/agencies/damkar", json={"channels": ["email"], "email": FULL["email"], "updated_by": "operator-2"}
        )
        listed = (await client.get("/v1/agencies")).json()
    assert before["channels"] == ["webhook", "email"] and before["ack_deadline_seconds"] == 300  # the defaults
    assert before["webhook_url"] is None and not before["webhook_secret_set"]
    assert put.status_code == 200
    body = put.json()
    assert body["webhook_secret"].startswith("whsec_")  # made now, shown this once
    assert {k: body[k] for k in ("channels", "webhook_url", "ack_deadline_seconds", "updated_by")} == {
        "channels": ["webhook", "email"],
        "webhook_url": FULL["webhook_url"],
        "ack_deadline_seconds": 120,
        "updated_by": "operator-1",
    }
    assert body["email"] == FULL["email"] and body["escalation_contacts"] == FULL["escalation_contacts"]
    assert read["webhook_secret"] is None and read["webhook_secret_set"] and read["webhook_breaker"] == "closed"
    assert put_again.json()["webhook_secret"] is None  # the same webhook keeps its secret
    assert put_again.json()["ack_deadline_seconds"] == 90
    replaced = email_only.json()
    assert replaced["channels"] == ["email"] and replaced["webhook_url"] is None
    assert not replaced["webhook_secret_set"] and replaced["ack_deadline_seconds"] == 300
    assert len(listed) == 8 and [a for a in listed if a["agency"] == "damkar"][0]["channels"] == ["email"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channels": ["webhook", "webhook"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"channels": ["sms"]}, "channels.0"),
        ({"email": ["not-an-address"]}, "email.0"),
        ({"escalation_contacts": ["kepala@"]}, "escalation_contacts.0"),
        ({"ack_deadline_seconds": 5}, "ack_deadline_seconds"),
        ({"ack_deadline_seconds": 10**6}, "ack_deadline_seconds"),
        ({"webhook_url": "ftp://x.example"}, "webhook_url"),
        ({"updated_by": " "}, "updated_by"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_configuration_is_a_422_naming_the_field(database_url, broker, change, field):
    async with running(create_app(notifier_settings(database_url, broker.bootstrap)), API_KEY) as client:
        response = await client.put("/v1/agencies/bpbd", json={**FULL, **change})
        unchanged = (await client.get("/v1/agencies/bpbd")).json()
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert field in [e["field"] for e in response.json()["errors"]]
    assert unchanged["updated_by"] is None


async def test_the_webhook_endpoint_still_sets_only_the_url(database_url, broker):
    async with running(create_app(notifier_settings(database_url, broker.bootstrap)), API_KEY) as client:
        await client.put("/v1/agencies/pln", json={**FULL, "webhook_url": None})
        hook = "/v1/agencies/pln/webhook"
        first = await client.put(hook, json={"url": "https://pln.example/hook", "updated_by": "t"})
        moved = await client.put(hook, json={"url": "https://pln.example/new", "updated_by": "t"})
        deleted = await client.delete("/v1/agencies/pln/webhook")
        after = (await client.get("/v1/agencies/pln")).json()
        rotate_nothing = await client.post("/v1/agencies/pln/webhook/secret")
        unknown = await client.put("/v1/agencies/nasa", json=FULL)
        no_key = await client.get("/v1/agencies", headers={"Authorization": "Bearer wrong"})
    assert first.status_code == 200 and first.json()["webhook_secret"].startswith("whsec_")
    assert first.json()["ack_deadline_seconds"] == 120 and first.json()["email"] == FULL["email"]  # kept
    assert moved.json()["webhook_url"] == "https://pln.example/new" and moved.json()["webhook_secret"] is None
    assert deleted.status_code == 204 and after["webhook_url"] is None and not after["webhook_secret_set"]
    assert rotate_nothing.status_code == 404 and rotate_nothing.headers["content-type"] == PROBLEM
    assert unknown.status_code == 422
    assert no_key.status_code == 401


async def test_agency_keys_are_shown_once_and_listed_without_the_key(database_url, broker):
    async with running(create_app(notifier_settings(database_url, broker.bootstrap)), API_KEY) as client:
        created = await client.post("/v1/agencies/polres/api-keys", json={"created_by": "admin", "label": "CAD"})
        listed = (await client.get("/v1/agencies/polres/api-keys")).json()
        others = (await client.get("/v1/agencies/damkar/api-keys")).json()
        wrong_agency = await client.delete(f"/v1/agencies/damkar/api-keys/{created.json()['id']}")
        missing_by = await client.post("/v1/agencies/polres/api-keys", json={"label": "x"})
    assert created.status_code == 201 and created.json()["key"].startswith("e112ak_")
    assert [(k["label"], k["created_by"], k["revoked_at"]) for k in listed] == [("CAD", "admin", None)]
    assert "key" not in listed[0] and others == []
    assert wrong_agency.status_code == 404
    assert missing_by.status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8002/v1/routing-table",
        "http://169.254.169.254/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://0x7f000001/",
    ],
)
async def test_a_webhook_pointing_inside_is_refused(database_url, broker, url):
    settings = notifier_settings(database_url, broker.bootstrap, webhook_allowed_networks="")
    async with running(create_app(settings), API_KEY) as client:
        whole = await client.put("/v1/agencies/bpbd", json={**FULL, "webhook_url": url})
        only = await client.put("/v1/agencies/bpbd/webhook", json={"url": url, "updated_by": "t"})
        unchanged = (await client.get("/v1/agencies/bpbd")).json()
    assert whole.status_code == only.status_code == 422, (whole.text, only.text)
    assert [e["field"] for e in whole.json()["errors"]] == ["webhook_url"]
    assert [e["field"] for e in only.json()["errors"]] == ["url"]
    assert unchanged["webhook_url"] is None
