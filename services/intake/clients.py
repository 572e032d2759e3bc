"""The apps that post reports: keys, authentication and rate limits.

Keys are random 256-bit tokens shown once at creation; only their SHA-256 is stored.
Each key has a role: `app` (files reports), `console` (the call takers' console: acts
for the operator signed in to it, who is named in the `E112-Operator-Id` header, never
in a body) or `admin` (manages keys and policy, and may act as the console does).
A fast hash is enough here (unlike passwords, the keys have full entropy, so there is
nothing to brute-force). Intake's `ADMIN_API_KEY` (in development `E112_API_KEY`, what
`make run` prints) is the bootstrap admin key: it can manage the other keys and is not
rate-limited.
"""

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.reports import OPERATOR_HEADER
from services.common.web import Problem
from services.intake.ratelimit import TokenBucket, retry_after_header

KEY_PREFIX = "e112_"
BOOTSTRAP = "bootstrap"
Role = Literal["app", "console", "admin"]
ACTS_FOR_OPERATORS: frozenset[str] = frozenset({"console", "admin"})


@dataclass(frozen=True)
class Client:
    id: str  # api_clients.id, or "bootstrap"
    name: str
    role: Role
    rate_per_minute: int | None  # None: not limited

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def sees_every_report(self) -> bool:
        """The console and admins read every report and caller; an app only what it filed."""
        return self.role in ACTS_FOR_OPERATORS


@dataclass(frozen=True)
class ActingOperator:
    """An operator's action, sent by a key that may act for operators."""

    client: Client
    operator_id: UUID


@dataclass(frozen=True)
class NewKey:
    id: UUID
    name: str
    key: str  # shown once
    key_prefix: str
    rate_per_minute: int
    role: Role
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_key(
    conn: asyncpg.Connection,
    *,
    name: str,
    rate_per_minute: int,
    role: Role,
    created_by: str,
    expires_at: datetime | None = None,
) -> NewKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO api_clients (id, name, key_hash, key_prefix, rate_per_minute, is_admin, role, created_by,
                                 expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        client_id,
        name,
        hash_key(key),
        key[:12],
        rate_per_minute,
        role == "admin",
        role,
        created_by,
        expires_at,
    )
    return NewKey(client_id, name, key, key[:12], rate_per_minute, role, expires_at)


_ACTIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


async def revoke_key(conn: asyncpg.Connection, client_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "UPDATE api_clients SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING true", client_id
        )
    )


async def rotate_key(
    conn: asyncpg.Connection, client_id: UUID, *, overlap: timedelta, created_by: str, expires_at: datetime | None
) -> NewKey | None:
    """A new key for the app of active key `client_id` (its name, role and rate), and
    the old one expiring after `overlap` (sooner, if it expired sooner anyway): the app
    switches to the new key meanwhile, with no request refused. None: no such active key."""
    async with conn.transaction():
        old = await conn.fetchrow(
            f"UPDATE api_clients SET expires_at = least(coalesce(expires_at, 'infinity'), now() + $2::interval) "
            f"WHERE id = $1 AND {_ACTIVE} RETURNING name, role, rate_per_minute",
            client_id,
            overlap,
        )
        if old is None:
            return None
        return await create_key(
            conn,
            name=old["name"],
            rate_per_minute=old["rate_per_minute"],
            role=old["role"],
            created_by=created_by,
            expires_at=expires_at,
        )


async def list_keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, name, key_prefix, rate_per_minute, is_admin, role, created_by, created_at, revoked_at, expires_at "
        "FROM api_clients ORDER BY created_at"
    )


@dataclass
class Authenticator:
    """Resolves a bearer key to a client and applies its rate limit."""

    bootstrap_key: str | None
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    # A valid key is looked up again after this long, so a revocation (on any replica)
    # takes effect within it; meanwhile a request costs no database round trip.
    cache_seconds: float = 5.0
    cache_limit: int = 10_000
    _cache: dict[bytes, tuple[Client, float]] = field(default_factory=dict)

    async def resolve(self, pool: asyncpg.Pool, key: str) -> Client | None:
        if self.bootstrap_key and hmac.compare_digest(key.encode(), self.bootstrap_key.encode()):
            return Client(BOOTSTRAP, BOOTSTRAP, "admin", None)
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT id, name, role, rate_per_minute, extract(epoch FROM expires_at - now()) AS expires_in "
                f"FROM api_clients WHERE key_hash = $1 AND {_ACTIVE}",
                digest,
            )
        if row is None:  # unknown, revoked or expired: never cached, so a new key works at once
            self._cache.pop(digest, None)
            return None
        client = Client(str(row["id"]), row["name"], row["role"], row["rate_per_minute"])
        if len(self._cache) >= self.cache_limit:
            self._cache.clear()
        # Kept no longer than the key lives: an expiring key is refused on the dot.
        keep = self.cache_seconds if row["expires_in"] is None else min(self.cache_seconds, float(row["expires_in"]))
        self._cache[digest] = (client, now + keep)
        return client

    def forget(self) -> None:
        """Drop every cached key (this replica revoked one: honour it here at once)."""
        self._cache.clear()

    def throttle(self, client: Client) -> None:
        if client.rate_per_minute is None:
            return
        now = self.clock()
        bucket = self.buckets.get(client.id)
        if bucket is None or bucket.rate_per_second * 60 != client.rate_per_minute:
            bucket = self.buckets[client.id] = TokenBucket.per_minute(client.rate_per_minute, now)
        wait = bucket.take(now)
        if wait > 0:
            raise Problem(
                429,
                "Too many requests",
                f"This app ({client.name}) may send {client.rate_per_minute} requests a minute; retry later.",
                headers={"Retry-After": retry_after_header(wait)},
            )


_bearer = HTTPBearer(auto_error=False, description="The app's API key, as `Authorization: Bearer <key>`")


def unauthorized() -> Problem:
    return Problem(
        401,
        "Unauthorized",
        "Send a valid API key as `Authorization: Bearer <key>`.",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_client(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Client:
    authenticator: Authenticator = request.app.state.authenticator
    if credentials is None:
        raise unauthorized()
    client = await authenticator.resolve(request.app.state.pool, credentials.credentials)
    if client is None:
        raise unauthorized()
    authenticator.throttle(client)
    request.state.client = client
    return client


async def admin_client(client: Annotated[Client, Depends(current_client)]) -> Client:
    if not client.is_admin:
        raise Problem(403, "Forbidden", "Managing API keys needs an admin key.")
    return client


async def centre_client(client: Annotated[Client, Depends(current_client)]) -> Client:
    """The console's or an admin's key: what shows other apps' reports and callers."""
    if not client.sees_every_report:
        raise Problem(
            403,
            "Forbidden",
            "This shows other apps' reports and callers' phones: for the call takers' console and admins only.",
        )
    return client


async def acting_operator(
    client: Annotated[Client, Depends(current_client)],
    operator_id: Annotated[
        UUID | None, Header(alias=OPERATOR_HEADER, description="The operator signed in to the console")
    ] = None,
) -> ActingOperator:
    if client.role not in ACTS_FOR_OPERATORS:
        raise Problem(
            403,
            "Forbidden",
            "Only the call takers' console acts for an operator; an app's key may "
            "file reports but not give verdicts or undo links.",
        )
    if operator_id is None:
        message = "required: the operator signed in to the console"
        raise Problem(
            422,
            "Invalid request",
            f"{OPERATOR_HEADER}: {message}",
            errors=[{"field": f"header.{OPERATOR_HEADER}", "message": message}],
        )
    return ActingOperator(client, operator_id)


CurrentClient = Annotated[Client, Depends(current_client)]
AdminClient = Annotated[Client, Depends(admin_client)]
CentreClient = Annotated[Client, Depends(centre_client)]
OperatorAction = Annotated[ActingOperator, Depends(acting_operator)]
