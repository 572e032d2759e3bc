"""Webhook secrets sealed at rest, against a real PostgreSQL, broker and HTTP endpoint:
the rows hold no usable secret, deliveries are still signed with the agency's secret,
rows stored before sealing and rows under a key being rotated out are resealed at
start, and a notifier whose keys open no stored secret refuses to start."""

import asyncpg
import pytest
from cryptography.fernet import Fernet

from services.notifier.app import create_app
from services.notifier.vault import SEALED_PREFIX, SecretVault, VaultError
from tests.conftest import API_KEY
from tests.integration.notifier_support import (
    DELIVERED,
    dispatch_event,
    notifier_settings,
    of_type,
    record_of,
    set_agency,
    status_events,
)
from tests.support import eventually, produce, running

pytestmark = pytest.mark.integration

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def notifier_with(database_url: str, broker, keys: str):
    return create_app(notifier_settings(database_url, broker.bootstrap, webhook_secret_keys=keys))


async def stored_secrets(database_url: str) -> dict[str, tuple[str | None, str | None]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT agency, webhook_secret, previous_webhook_secret FROM notifier.agencies")
    finally:
        await conn.close()
    return {r["agency"]: (r["webhook_secret"], r["previous_webhook_secret"]) for r in rows}


async def test_the_database_holds_no_usable_secret_and_deliveries_are_still_signed(database_url, broker, endpoint):
    settings = notifier_settings(database_url, broker.bootstrap, webhook_secret_keys=OLD)
    async with running(create_app(settings), API_KEY) as client:
        first = (await set_agency(client, "damkar", webhook_url=endpoint.url, channels=["webhook"]))["webhook_secret"]
        second = (await client.post("/v1/agencies/damkar/webhook/secret")).json()["webhook_secret"]
        endpoint.secrets = [second]
        event = dispatch_event("damkar")
        await produce(broker.bootstrap, [record_of(event)])
        await status_events(broker.bootstrap, lambda ms: of_type(ms, DELIVERED))
    current, previous = (await stored_secrets(database_url))["damkar"]
    for stored, secret in ((current, second), (previous, first)):
        assert stored.startswith(SEALED_PREFIX) and secret not in stored and secret[6:] not in stored
        assert SecretVault([OLD]).open(stored) == secret
    [hit] = endpoint.hits
    assert hit.signature_ok  # signed with the opened secret, v1 and v2
    assert hit.headers["e112-signature"].count("v2=") == 2  # the previous secret still in its grace period


async def test_plain_rows_and_rows_under_an_old_key_are_resealed_at_start(database_url, broker, endpoint):
    async with running(notifier_with(database_url, broker, OLD), API_KEY) as client:
        damkar = await set_agency(client, "damkar", webhook_url=endpoint.url, channels=["webhook"])
        await set_agency(client, "pln", webhook_url=endpoint.url, channels=["webhook"])
    # A row as a notifier before sealing stored it: the secret in plain text.
    plain = "whsec_stored-before-secrets-were-sealed"
    conn = await asyncpg.connect(database_url)
    await conn.execute("UPDATE notifier.agencies SET webhook_secret = $1 WHERE agency = 'pln'", plain)
    await conn.close()

    async with running(notifier_with(database_url, broker, f"{NEW},{OLD}"), API_KEY):
        stored = await stored_secrets(database_url)
        endpoint.secrets = [plain]
        pln = dispatch_event("pln")
        await produce(broker.bootstrap, [record_of(pln)])
        await eventually(lambda: len(endpoint.hits) == 1)
    for agency, secret in (("damkar", damkar["webhook_secret"]), ("pln", plain)):
        assert SecretVault([NEW]).open(stored[agency][0]) == secret  # the old key can go
    assert endpoint.hits[0].signature_ok and endpoint.hits[0].headers["idempotency-key"] == str(pln.dispatch_id)

    async with running(notifier_with(database_url, broker, NEW), API_KEY):
        assert await stored_secrets(database_url) == stored  # already under the first key: untouched
    # Keys that open none of them: the notifier does not start (the old replicas keep
    # delivering) rather than sign with garbage.
    with pytest.raises(VaultError):
        async with running(notifier_with(database_url, broker, Fernet.generate_key().decode()), API_KEY):
            pass
