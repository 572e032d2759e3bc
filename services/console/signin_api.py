"""Signing in and out, and the supervisor's PIN setting."""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.web import PROBLEM_RESPONSES, Connection, Pool, Problem, from_state, problem_response
from services.console import auth, store
from services.console.dependencies import Metrics, Settings, Upstream
from services.console.metrics import ConsoleMetrics
from services.console.session import COOKIE, CurrentOperator, Operator, acting_operator
from services.console.settings import ConsoleSettings

log = logging.getLogger(__name__)
WRONG = "Wrong operator or PIN."


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handle: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="From the sign-in list (GET /api/operators)"
    )
    operator_id: UUID | None = Field(None, description="Instead of `handle`, for a client that knows the id")
    pin: Annotated[str, StringConstraints(min_length=1, max_length=64)]

    @model_validator(mode="after")
    def _one_operator(self) -> "SignIn":
        if (self.handle is None) == (self.operator_id is None):
            raise ValueError("name the operator by handle or by operator_id, one of them")
        return self


class SignInChoice(BaseModel):
    handle: str = Field(description="What to sign in with; a new one whenever the PIN is set")
    name: str


class OperatorRef(BaseModel):
    id: UUID
    name: str


class SessionPublic(BaseModel):
    operator: OperatorRef
    csrf_token: str = Field(description="Send as X-CSRF-Token with every request that changes something")
    expires_at: datetime | None = None
    refresh_seconds: int = Field(description="Reload every screen this often besides the live updates")


class PinChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(description="6 to 12 digits")
    set_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


@dataclass(frozen=True)
class SignInRules:
    """When wrong PINs lock a sign-in: per address, and over every address together (a
    guesser spreading over many addresses is stopped too, and the lock it then causes
    is an alert)."""

    per_source: auth.Throttle
    ceiling: auth.Lockout

    @classmethod
    def of(cls, settings: ConsoleSettings) -> "SignInRules":
        lock_for = timedelta(minutes=settings.signin_lock_minutes)
        return cls(
            auth.Throttle(settings.signin_max_failures, lock_for, timedelta(hours=24)),
            auth.Lockout(settings.signin_operator_ceiling, lock_for),
        )


Rules = Annotated[SignInRules, from_state("signin_rules")]
router = APIRouter(prefix="/api", tags=["sign-in"], responses=PROBLEM_RESPONSES)
for_admin = APIRouter(prefix="/api", tags=["sign-in"], responses=PROBLEM_RESPONSES)

# The routes that ask shifts (over HTTP) take a connection of their own, around what
# they write: operators asks before, sign_in in its transaction, set_pin before.


@router.get("/operators", summary="Operators who can sign in (a PIN is set): the sign-in list, by handle, not by id")
async def operators(pool: Pool, upstream: Upstream) -> list[SignInChoice]:
    everyone = await upstream.json("shifts", "GET", "/v1/operators")
    async with pool.acquire() as conn:
        handles = await store.signin_handles(conn)
    return [
        SignInChoice(handle=handles[UUID(o["id"])], name=o["name"])
        for o in everyone
        if o.get("active", True) and UUID(o["id"]) in handles
    ]


@router.post(
    "/session",
    summary="Sign in with operator and PIN: sets the session cookie",
    responses={429: {**PROBLEM_RESPONSES[401], "description": "Locked after too many wrong PINs"}},
)
async def sign_in(
    body: SignIn,
    request: Request,
    response: Response,
    pool: Pool,
    upstream: Upstream,
    settings: Settings,
    metrics: Metrics,
    rules: Rules,
) -> SessionPublic:
    now = datetime.now(UTC)
    # The client's address as the trusted proxies in front tell it (TRUSTED_PROXIES).
    source = request.client.host if request.client else "unknown"
    async with pool.acquire() as conn, conn.transaction():
        operator_id, row, from_here = await _unlocked_credential(conn, body, source, now, metrics)
        if not await asyncio.to_thread(auth.pin_matches, row["pin_hash"], body.pin):
            await _record_wrong_pin(conn, operator_id, source, row, from_here, now, rules, metrics)
            # Raising would roll the failure counts back: answer instead.
            return problem_response(401, "Sign-in failed", WRONG)
        new_hash = auth.hash_pin(body.pin) if auth.needs_rehash(row["pin_hash"]) else None
        await store.record_success(conn, operator_id, new_hash, source)
        operator = await upstream.json("shifts", "GET", f"/v1/operators/{operator_id}")
        if not operator.get("active", True):
            raise Problem(403, "Forbidden", "This operator is no longer active.")
        token, csrf = auth.new_token(), auth.new_token()
        expires = now + timedelta(hours=settings.session_hours)
        await store.create_session(conn, auth.token_hash(token), operator_id, operator["name"], csrf, now, expires)
    metrics.signins.labels("ok").inc()
    log.info("signed in", extra={"fields": {"operator_id": str(operator_id)}})
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )
    return SessionPublic(
        operator=OperatorRef(id=operator_id, name=operator["name"]),
        csrf_token=csrf,
        expires_at=expires,
        refresh_seconds=settings.page_refresh_seconds,
    )


async def _unlocked_credential(conn, body: SignIn, source: str, now: datetime, metrics: ConsoleMetrics):
    """The operator's id, credential row (locked) and this address's throttle row; a 401
    for an unknown operator, a 429 while a lock holds."""
    operator_id = body.operator_id or await store.operator_of_handle(conn, body.handle)
    if operator_id is None:
        metrics.signins.labels("wrong").inc()
        raise Problem(401, "Sign-in failed", WRONG)
    # The row locks make concurrent guesses for one operator take turns, so no
    # failure count can be raced past its limit.
    row = await store.credential(conn, operator_id, for_update=True)
    if row is None:
        metrics.signins.labels("wrong").inc()
        raise Problem(401, "Sign-in failed", WRONG)
    from_here = await store.throttle(conn, operator_id, source, now)
    until = max((t for t in (row["locked_until"], from_here["locked_until"]) if t and t > now), default=None)
    if until is not None:
        metrics.signins.labels("locked").inc()
        wait = int((until - now).total_seconds()) + 1
        raise Problem(
            429,
            "Locked",
            f"Too many wrong PINs; try again in {wait} s or ask the supervisor.",
            headers={"Retry-After": str(wait)},
        )
    return operator_id, row, from_here


async def _record_wrong_pin(
    conn, operator_id: UUID, source: str, row, from_here, now: datetime, rules: SignInRules, metrics: ConsoleMetrics
) -> None:
    failures, locks, source_locked = rules.per_source.after_failure(from_here["failures"], from_here["locks"], now)
    await store.record_source_failure(conn, operator_id, source, failures, locks, source_locked, now)
    total, operator_locked = rules.ceiling.after_failure(row["failures"], now)
    await store.record_failure(conn, operator_id, total, operator_locked)
    metrics.signins.labels("wrong").inc()
    for scope, locked in (("source", source_locked), ("operator", operator_locked)):
        if locked is not None:
            metrics.signin_lockouts.labels(scope).inc()
    log.info(
        "sign-in refused",
        extra={
            "fields": {
                "operator_id": str(operator_id),
                "source_locked": source_locked is not None,
                "operator_locked": operator_locked is not None,
            }
        },
    )


@router.get("/session", summary="Who is signed in, and the CSRF token")
async def who(operator: CurrentOperator, settings: Settings) -> SessionPublic:
    return SessionPublic(
        operator=OperatorRef(id=operator.id, name=operator.name),
        csrf_token=operator.csrf_token,
        refresh_seconds=settings.page_refresh_seconds,
    )


@router.delete("/session", status_code=204, summary="Sign out")
async def sign_out(
    operator: Annotated[Operator, Depends(acting_operator)], conn: Connection, settings: Settings
) -> Response:
    await store.end_session(conn, operator.token_hash, datetime.now(UTC))
    log.info("signed out", extra={"fields": {"operator_id": str(operator.id)}})
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=settings.cookie_secure)
    return response


@for_admin.put(
    "/admin/operators/{operator_id}/pin",
    tags=["admin"],
    summary="Set an operator's PIN (supervisor, with the admin key); signs the operator out everywhere",
    responses={404: {**PROBLEM_RESPONSES[422], "description": "No such operator in shifts"}},
)
async def set_pin(operator_id: UUID, body: PinChange, pool: Pool, upstream: Upstream) -> OperatorRef:
    try:
        auth.check_pin_shape(body.pin)
    except auth.WeakPin as exc:
        error = {"field": "pin", "message": str(exc)}
        raise Problem(422, "Invalid request", f"pin: {exc}", errors=[error]) from None
    operator = await upstream.json("shifts", "GET", f"/v1/operators/{operator_id}")
    pin_hash = await asyncio.to_thread(auth.hash_pin, body.pin)
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await store.set_pin(conn, operator_id, pin_hash, body.set_by, now, auth.new_token()[:22])
        await store.end_sessions_of(conn, operator_id, now)
    log.info("PIN set", extra={"fields": {"operator_id": str(operator_id)}})
    return OperatorRef(id=operator_id, name=operator["name"])
