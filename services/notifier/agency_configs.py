"""Agencies' configurations as the hot paths read them: a dispatch queued and each
attempt delivered would read the agency's row every time, two round trips per
dispatch for a row that changes a few times a year.

A read is kept for `ttl_seconds`: a change made through this replica's API is seen at
once (it calls `forget`), one made on another replica within the TTL. Read-modify-write
changes (api.py) never use this: they read the row under the agency's lock.
"""

import time
from collections.abc import Callable

import asyncpg

from services.notifier import store
from services.notifier.store import AgencyConfig
from services.notifier.vault import DEV_KEY, SecretVault


class AgencyConfigs:
    def __init__(
        self, vault: SecretVault | None = None, ttl_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic
    ):
        """`vault` opens the webhook secrets; the development one when none is given
        (a production secret sealed under another key then fails loudly: VaultError)."""
        self.vault = vault or SecretVault([DEV_KEY])
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._kept: dict[str, tuple[AgencyConfig, float]] = {}

    async def get(self, conn: asyncpg.Connection, agency: str) -> AgencyConfig:
        kept = self._fresh(agency)
        if kept is not None:
            return kept
        config = await store.agency_config(conn, agency, self.vault)
        self._kept[agency] = (config, self.clock() + self.ttl_seconds)
        return config

    async def read(self, pool: asyncpg.Pool, agency: str) -> AgencyConfig:
        """`get` outside a transaction: a connection is taken only when the kept read
        is missing or stale."""
        kept = self._fresh(agency)
        if kept is not None:
            return kept
        async with pool.acquire() as conn:
            return await self.get(conn, agency)

    def _fresh(self, agency: str) -> AgencyConfig | None:
        kept = self._kept.get(agency)
        return kept[0] if kept is not None and kept[1] > self.clock() else None

    def forget(self) -> None:
        self._kept.clear()
