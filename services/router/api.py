"""Router's admin API: read and change the routing table (rules, extra rules, local
units; every change a new version with who and why), and ask why a report went where
it went."""

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, StringConstraints, ValidationError, field_validator

from schemas.catalog import Agency, canonical_kecamatan
from services.common.web import PROBLEM_RESPONSES, Connection, Problem, field_errors
from services.router import store
from services.router.outcomes import Outcome
from services.router.routing import RoutingTable, Unit

ChangedBy = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
TABLE_PARTS = ("rules", "extra_rules", "units")


def _problem(description: str) -> dict:
    return {**PROBLEM_RESPONSES[422], "description": description}


class RoutingTableVersion(BaseModel):
    version: int
    changed_by: str
    reason: str
    created_at: datetime


class RoutingTablePublic(RoutingTableVersion):
    table: RoutingTable


class RoutingTableChange(BaseModel):
    table: RoutingTable = Field(description="The whole table: rules, extra_rules and units (PUT replaces it)")
    changed_by: ChangedBy = Field(description="Who makes the change (operator or supervisor name)")
    reason: Reason
    expected_version: int | None = Field(
        None, description="The version this change was made on: if another is live by now, 409 and nothing saved"
    )

    @field_validator("table", mode="before")
    @classmethod
    def _whole_table(cls, value: Any) -> Any:
        # A client that knows only `rules` must not wipe the units and extra rules by
        # leaving them out: PUT replaces the whole table, so the whole table is required.
        if isinstance(value, dict):
            missing = [part for part in TABLE_PARTS if part not in value]
            if missing:
                raise ValueError(f"give the whole table; missing: {', '.join(missing)}")
        return value


class UnitChange(BaseModel):
    unit: Unit | None = Field(description="The unit; null removes it (the agency then decides)")
    changed_by: ChangedBy
    reason: Reason


class DecisionDispatch(BaseModel):
    dispatch_id: UUID
    agency: str
    role: str
    unit: Unit | None = None
    because: list[str] = Field(default_factory=list, description="The rules that sent the report to this agency")


class DecisionPublic(BaseModel):
    report_id: UUID
    outcome: Outcome = Field(
        description="What was decided (services/router/outcomes.py): routed, unrouted (to the operators), "
        "not_emergency, deadlettered, linked (another caller for the incident `linked_to`: its agencies were told, "
        "nobody dispatched again), awaiting_incident, awaiting_verification, not_dispatched or cancelled"
    )
    linked_to: UUID | None = None
    category: str | None
    rule_version: int | None
    rule_changed_by: str | None
    rule_reason: str | None
    matched_rules: list[str] = Field(description="Every rule that matched, in the order applied")
    reason: str | None = Field(description="Why nothing was dispatched, when nothing was")
    dispatches: list[DecisionDispatch]
    decided_at: datetime


def _public(row) -> RoutingTablePublic:
    return RoutingTablePublic(
        version=row["version"],
        changed_by=row["changed_by"],
        reason=row["reason"],
        created_at=row["created_at"],
        table=store.parse_table(row["version"], row["rules"]),
    )


router = APIRouter(prefix="/v1", tags=["routing"], responses=PROBLEM_RESPONSES)


async def save(conn, change, changed_by: str, reason: str, expected: int | None = None) -> RoutingTablePublic:
    try:
        version, _ = await store.change_table(conn, change, changed_by, reason, expected)
        return _public(await store.table_version(conn, version))
    except store.VersionConflict as exc:
        raise Problem(409, "Conflict", str(exc), current_version=exc.current) from None
    except store.TableUnreadable as exc:
        raise Problem(409, "Conflict", f"{exc}; replace the whole table with PUT /v1/routing-table") from None
    except ValidationError as exc:
        fields = field_errors(exc.errors())
        raise Problem(
            422, "Invalid request", "; ".join(f"{f['field']}: {f['message']}" for f in fields), errors=fields
        ) from None


@router.get("/routing-table", summary="The live routing table, its version, who made it and why")
async def get_table(conn: Connection) -> RoutingTablePublic:
    row = await store.table_version(conn)
    try:
        return _public(row)
    except store.TableUnreadable as exc:
        raise Problem(500, "Routing table unreadable", f"{exc}; save a valid one with PUT") from None


@router.put(
    "/routing-table",
    summary="Replace the routing table (a new version; applies to the next report)",
    responses={409: _problem("expected_version is not the live version")},
)
async def put_table(change: RoutingTableChange, conn: Connection) -> RoutingTablePublic:
    return await save(conn, change.table, change.changed_by, change.reason, change.expected_version)


@router.get("/routing-table/versions", summary="Every version, newest first: who changed the table and why")
async def list_versions(
    conn: Connection, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[RoutingTableVersion]:
    rows = await store.list_versions(conn, limit)
    return [RoutingTableVersion(**dict(r)) for r in rows]


@router.get(
    "/routing-table/versions/{version}",
    summary="One version of the table, as it was",
    responses={404: _problem("No such version")},
)
async def get_version(version: Annotated[int, Path(ge=1)], conn: Connection) -> RoutingTablePublic:
    row = await store.table_version(conn, version)
    if row is None:
        raise Problem(404, "Not found", f"No routing table version {version}.")
    try:
        return _public(row)
    except store.TableUnreadable as exc:
        raise Problem(500, "Routing table unreadable", str(exc)) from None


@router.put(
    "/routing-table/units/{agency}/{kecamatan}",
    summary="Set (or, with null, remove) an agency's local unit for a kecamatan (a new version)",
    responses={409: _problem("The live table cannot be read: replace it whole")},
)
async def put_unit(agency: Agency, kecamatan: str, change: UnitChange, conn: Connection) -> RoutingTablePublic:
    place = canonical_kecamatan(kecamatan)
    if place is None:
        raise Problem(
            422,
            "Invalid request",
            f"kecamatan: {kecamatan!r} is not a kecamatan of Kabupaten Blitar",
            errors=[{"field": "kecamatan", "message": "not a kecamatan of Kabupaten Blitar"}],
        )

    def with_unit(live: RoutingTable) -> RoutingTable:
        units = {a: dict(by_place) for a, by_place in live.units.items()}
        if change.unit is None:
            units.get(agency, {}).pop(place, None)
        else:
            units.setdefault(agency, {})[place] = change.unit
        units = {a: by_place for a, by_place in units.items() if by_place}
        return RoutingTable.model_validate(
            {
                **live.model_dump(),
                "units": {a: {k: u.model_dump() for k, u in by_place.items()} for a, by_place in units.items()},
            }
        )

    return await save(conn, with_unit, change.changed_by, change.reason)


@router.get(
    "/decisions/{report_id}",
    summary="Why a report went where it went: the table version, the rules that matched, the units",
    responses={404: _problem("Not decided (yet)")},
)
async def get_decision(report_id: UUID, conn: Connection) -> DecisionPublic:
    row = await store.fetch_decision(conn, report_id)
    if row is None:
        raise Problem(404, "Not found", f"No routing decision for report {report_id} (yet).")
    return DecisionPublic(
        **{
            **dict(row),
            "dispatches": json.loads(row["dispatches"]),
            "matched_rules": json.loads(row["matched_rules"]),
        }
    )
