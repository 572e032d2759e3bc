"""Verification: the operator's verdict on a public-channel report, and the policy that
decides which reports wait for one (services/intake/verification.py has the rules)."""

import json
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field

from schemas.catalog import PUBLIC_CHANNELS
from schemas.reports import OPERATOR_HEADER, ReportPublic
from services.common.web import PROBLEM_RESPONSES, Connection, Problem, from_state
from services.intake import store
from services.intake.clients import AdminClient, CurrentClient, OperatorAction
from services.intake.dependencies import Settings
from services.intake.reading import report_public
from services.intake.verification import (
    KIND_OF_VERDICT,
    PolicyChange,
    PolicyRule,
    VerdictIn,
    default_rules,
)

SHIPPED_BY = "system"


class PolicyPublic(BaseModel):
    version: int
    rules: list[PolicyRule]
    changed_by: str
    reason: str
    changed_at: datetime
    public_channels: list[str] = Field(description="Channels whose emergencies the policy applies to")


def _problem(description: str) -> dict:
    return {**PROBLEM_RESPONSES[422], "description": description}


def policy_public(row) -> PolicyPublic:
    return PolicyPublic(
        version=row["version"],
        rules=[PolicyRule(**r) for r in json.loads(row["rules"])],
        changed_by=row["changed_by"],
        reason=row["reason"],
        changed_at=row["changed_at"],
        public_channels=list(PUBLIC_CHANNELS),
    )


async def seed_default_policy(conn: asyncpg.Connection) -> None:
    """Version 1 is the shipped default (verification.default_rules), written once."""
    if await store.live_policy(conn) is None:
        async with conn.transaction():
            if await store.live_policy(conn) is None:
                rules = [r.model_dump() for r in default_rules()]
                await store.save_policy(conn, rules, SHIPPED_BY, "shipped default")


async def live_rules(conn: asyncpg.Connection) -> list[PolicyRule]:
    """The live policy's rules (the shipped default before any is stored)."""
    row = await store.live_policy(conn)
    return [PolicyRule(**r) for r in json.loads(row["rules"])] if row else default_rules()


class VerificationMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.verdicts = Counter(
            "e112_verdicts_total",
            "Operators' verdicts on public-channel reports, by verdict, what the verification held and channel",
            ["verdict", "verification", "channel"],
            registry=registry,
        )


Metrics = Annotated[VerificationMetrics, from_state("verification_metrics")]
router = APIRouter(prefix="/v1", tags=["verification"], responses=PROBLEM_RESPONSES)


@router.post(
    "/reports/{report_id}/verification",
    summary="An operator's verdict on a public-channel report: genuine, prank, duplicate or information",
    description=f"Sent by the console for the operator signed in to it, named in `{OPERATOR_HEADER}`.",
    responses={
        403: _problem("Not a console key: an app's key may not give verdicts"),
        404: _problem("No such report"),
        409: _problem("The report awaits no verdict (not required, or already given)"),
    },
)
async def verify(
    report_id: UUID, body: VerdictIn, actor: OperatorAction, conn: Connection, settings: Settings, metrics: Metrics
) -> ReportPublic:
    now = datetime.now(UTC)
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM reports WHERE id = $1 FOR UPDATE", report_id)
        if row is None:
            raise Problem(404, "Not found", f"No report {report_id}.")
        if row["verification"] == "not_required":
            raise Problem(
                409,
                "No verification",
                "This report needs no verification: it was taken by an operator, or it is not an emergency.",
            )
        if row["verdict"] is not None:
            raise Problem(
                409,
                "Already verified",
                f"Already verified as {row['verdict']} at {row['verified_at'].isoformat()}.",
                verdict=row["verdict"],
            )
        incident_id = await _incident_of(conn, report_id, body)
        await store.record_verdict(
            conn,
            row,
            verdict=body.verdict,
            kind=KIND_OF_VERDICT[body.verdict],
            operator_id=actor.operator_id,
            incident_id=incident_id,
            note=body.note,
            at=now,
        )
        report = await report_public(conn, report_id, settings)
    metrics.verdicts.labels(body.verdict, row["verification"], row["channel"]).inc()
    return report


async def _incident_of(conn: asyncpg.Connection, report_id: UUID, body: VerdictIn) -> UUID | None:
    if body.verdict != "duplicate":
        return None
    root = await store.incident_root(conn, body.duplicate_of)
    message = None
    if root is None:
        message = "no such report"
    elif root["id"] == report_id:
        message = "a report cannot duplicate itself"
    elif root["kind"] != "emergency":
        message = "that report is not an emergency (it was recorded as " + root["kind"] + ")"
    elif root["closed_at"] is not None:
        message = "that incident is closed (reopen it first, or give another verdict)"
    if message:
        raise Problem(
            422,
            "Invalid verdict",
            f"duplicate_of: {message}.",
            errors=[{"field": "duplicate_of", "message": message}],
        )
    return root["id"]


@router.get("/verification-policy", summary="The live verification policy: which public reports wait")
async def live(client: CurrentClient, conn: Connection) -> PolicyPublic:
    return policy_public(await store.live_policy(conn))


@router.get("/verification-policy/versions", summary="Every version of the policy, newest first")
async def versions(client: CurrentClient, conn: Connection, limit: int = Query(50, ge=1, le=500)) -> list[PolicyPublic]:
    return [policy_public(r) for r in await store.policy_versions(conn, limit)]


@router.put(
    "/verification-policy",
    summary="Replace the policy (admin): a new version, live for the next report",
    responses={403: {**PROBLEM_RESPONSES[401], "description": "Not an admin key"}},
)
async def change(body: PolicyChange, admin: AdminClient, conn: Connection) -> PolicyPublic:
    async with conn.transaction():
        row = await store.save_policy(conn, [r.model_dump() for r in body.rules], body.changed_by, body.reason)
    return policy_public(row)
