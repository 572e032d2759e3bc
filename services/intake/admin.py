"""Intake's admin API: the apps' API keys."""

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints

from services.common.web import PROBLEM_RESPONSES, Connection, Problem
from services.intake import clients
from services.intake.clients import AdminClient, Role
from services.intake.dependencies import Keys

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApiKeyCreate(BaseModel):
    name: Name = Field(description="Which app uses the key, e.g. `console`, `sms-gateway`")
    rate_per_minute: int = Field(600, ge=1, le=100_000)
    role: Role = Field(
        "app",
        description="app: files reports; console: the call takers' console, acts for the "
        "operator signed in to it; admin: manages keys and policy",
    )
    is_admin: bool = Field(False, description="Same as role admin (kept for existing scripts)")
    expires_in_days: float | None = Field(
        None, gt=0, le=3650, description="The key stops working this long after it is made; omitted: it does not expire"
    )


class ApiKeyRotate(BaseModel):
    overlap_hours: float = Field(
        24,
        ge=0,
        le=30 * 24,
        description="The old key keeps working this long beside the new one (0: it stops now), while the app "
        "switches over",
    )
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="The new key's lifetime; omitted: none")


class ApiKeyPublic(BaseModel):
    id: UUID
    name: str
    key_prefix: str
    rate_per_minute: int
    role: Role
    is_admin: bool
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


class ApiKeyCreated(BaseModel):
    id: UUID
    name: str
    key: str = Field(description="Shown this once; only its hash is stored")
    rate_per_minute: int
    role: Role
    is_admin: bool
    expires_at: datetime | None

    @classmethod
    def of(cls, new: clients.NewKey) -> "ApiKeyCreated":
        return cls(
            id=new.id,
            name=new.name,
            key=new.key,
            rate_per_minute=new.rate_per_minute,
            role=new.role,
            is_admin=new.is_admin,
            expires_at=new.expires_at,
        )


def _lifetime(days: float | None) -> datetime | None:
    return None if days is None else datetime.now(UTC) + timedelta(days=days)


router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses={**PROBLEM_RESPONSES, 403: {**PROBLEM_RESPONSES[401], "description": "Not an admin key"}},
)


@router.post("/api-keys", status_code=201, summary="Create an app's API key (shown once)")
async def create(body: ApiKeyCreate, admin: AdminClient, conn: Connection) -> ApiKeyCreated:
    new = await clients.create_key(
        conn,
        name=body.name,
        rate_per_minute=body.rate_per_minute,
        role="admin" if body.is_admin else body.role,
        created_by=admin.name,
        expires_at=_lifetime(body.expires_in_days),
    )
    return ApiKeyCreated.of(new)


@router.get("/api-keys", summary="Every API key (never the keys themselves)")
async def list_all(admin: AdminClient, conn: Connection) -> list[ApiKeyPublic]:
    return [ApiKeyPublic(**dict(r)) for r in await clients.list_keys(conn)]


@router.delete(
    "/api-keys/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    responses={404: {**PROBLEM_RESPONSES[401], "description": "No such active key"}},
)
async def revoke(key_id: UUID, admin: AdminClient, conn: Connection, keys: Keys) -> None:
    if not await clients.revoke_key(conn, key_id):
        raise Problem(404, "Not found", f"No active API key {key_id}.")
    keys.forget()


@router.post(
    "/api-keys/{key_id}/rotate",
    status_code=201,
    summary="A new key for the same app; the old one works beside it for the overlap, then expires",
    responses={404: {**PROBLEM_RESPONSES[401], "description": "No such active key"}},
)
async def rotate(key_id: UUID, body: ApiKeyRotate, admin: AdminClient, conn: Connection, keys: Keys) -> ApiKeyCreated:
    new = await clients.rotate_key(
        conn,
        key_id,
        overlap=timedelta(hours=body.overlap_hours),
        created_by=admin.name,
        expires_at=_lifetime(body.expires_in_days),
    )
    if new is None:
        raise Problem(404, "Not found", f"No active API key {key_id}.")
    keys.forget()  # an overlap of 0 ends the old key at once, here too
    return ApiKeyCreated.of(new)
