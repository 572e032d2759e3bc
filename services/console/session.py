"""Who is signed in: the session cookie, and the CSRF check on every change.

The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page
sends it). On top of that every request that changes something carries the session's
CSRF token in `X-CSRF-Token`, which only this origin's page can read (from
`GET /api/session`), and a request whose `Origin` is another site is refused before
anything else (sign-in included, which has no session yet)."""

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from services.common.web import Problem
from services.console import auth, store

COOKIE = "e112_console"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Operator:
    id: UUID
    name: str
    csrf_token: str
    token_hash: bytes


def cross_site(request: Request) -> bool:
    """An unsafe request sent by a page of another origin."""
    origin = request.headers.get("origin")
    if request.method not in UNSAFE or origin is None:
        return False
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") != host


async def current_operator(request: Request) -> Operator:
    token = request.cookies.get(COOKIE)
    row = None
    if token:
        idle = timedelta(minutes=request.app.state.settings.session_idle_minutes)
        async with request.app.state.pool.acquire() as conn:
            row = await store.live_session(conn, auth.token_hash(token), datetime.now(UTC), idle)
    if row is None:
        raise Problem(401, "Not signed in", "Sign in with your name and PIN.")
    return Operator(row["operator_id"], row["operator_name"], row["csrf_token"], row["token_hash"])


async def acting_operator(request: Request, operator: Annotated[Operator, Depends(current_operator)]) -> Operator:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), operator.csrf_token.encode()):
        raise Problem(403, "Forbidden", f"Missing or wrong {CSRF_HEADER}: reload the console.")
    request.state.operator_id = operator.id
    return operator


CurrentOperator = Annotated[Operator, Depends(current_operator)]
ActingOperator = Annotated[Operator, Depends(acting_operator)]
