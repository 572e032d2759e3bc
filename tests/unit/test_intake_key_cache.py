"""Intake's API key cache: a valid key costs one lookup per cache period; a revoked one
(another replica revoked it) stops working when its period ends, an expiring one when it
expires; unknown keys are never cached."""

import contextlib

from services.intake.clients import Authenticator, hash_key


class Table:
    """api_clients as the one query resolve() sends sees it (a stand-in for PostgreSQL
    in a test of the cache's timing only)."""

    def __init__(self):
        self.rows: dict[bytes, dict] = {}
        self.lookups = 0

    @contextlib.asynccontextmanager
    async def acquire(self):
        yield self

    async def fetchrow(self, _query, digest):
        self.lookups += 1
        return self.rows.get(digest)


KEY = "e112_" + "k" * 43


def row(name: str, role: str, rate: int, expires_in: float | None = None) -> dict:
    return {"id": "c1", "name": name, "role": role, "rate_per_minute": rate, "expires_in": expires_in}


async def test_a_valid_key_is_looked_up_once_per_period_and_a_revocation_holds_after_it():
    now = [100.0]
    table = Table()
    table.rows[hash_key(KEY)] = row("sms-gateway", "app", 600)
    auth = Authenticator(None, clock=lambda: now[0], cache_seconds=5.0)
    assert (await auth.resolve(table, KEY)).name == "sms-gateway"
    now[0] += 4.9
    assert (await auth.resolve(table, KEY)).role == "app"
    assert table.lookups == 1
    del table.rows[hash_key(KEY)]  # revoked elsewhere
    now[0] += 0.2
    assert await auth.resolve(table, KEY) is None
    assert table.lookups == 2


async def test_unknown_keys_are_not_cached_and_forget_drops_everything():
    now = [0.0]
    table = Table()
    auth = Authenticator(None, clock=lambda: now[0])
    assert await auth.resolve(table, KEY) is None
    table.rows[hash_key(KEY)] = row("web", "console", 60)
    assert (await auth.resolve(table, KEY)).role == "console"  # made just now: works at once
    auth.forget()
    del table.rows[hash_key(KEY)]
    assert await auth.resolve(table, KEY) is None
    assert await auth.resolve(table, "not-a-key") is None and table.lookups == 3


async def test_a_key_about_to_expire_is_kept_no_longer_than_it_lives():
    now = [0.0]
    table = Table()
    table.rows[hash_key(KEY)] = row("sms", "app", 60, expires_in=2.0)
    auth = Authenticator(None, clock=lambda: now[0], cache_seconds=5.0)
    assert await auth.resolve(table, KEY) is not None
    now[0] += 1.9
    assert await auth.resolve(table, KEY) is not None and table.lookups == 1
    del table.rows[hash_key(KEY)]  # expired: the query finds it no more
    now[0] += 0.2
    assert await auth.resolve(table, KEY) is None and table.lookups == 2
