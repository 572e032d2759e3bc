"""Intake's admin API: the apps' API keys."""

from datetime import datetime
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


class ApiKeyCreated(BaseModel):
    id: UUID
    name: str
    key: str = Field(description="Shown this once; only its hash is stored")
    rate_per_minute: int
    role: Role
    is_admin: bool


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
    )
    return ApiKeyCreated(
        id=new.id,
        name=new.name,
        key=new.key,
        rate_per_minute=new.rate_per_minute,
        role=new.role,
        is_admin=new.is_admin,
    )


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
