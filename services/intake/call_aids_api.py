"""What the call form asks while a call is being taken: which open incidents the call
may be another caller of (ranked; linking.suggest), and the caller's history by number.
Both show other apps' reports and callers: console and admin keys only."""

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.catalog import Category, ContactKind, canonical_kecamatan
from schemas.phone import InvalidPhone, to_e164
from schemas.reports import CallerHistory
from services.common.web import PROBLEM_RESPONSES, Connection, Problem
from services.intake import store
from services.intake.clients import CentreClient
from services.intake.dependencies import Settings
from services.intake.linking import Place, Suggestion, suggest
from services.intake.settings import IntakeSettings

NO_REPORT = UUID(int=0)


class LinkSuggestion(BaseModel):
    report_id: UUID
    category: Category
    subtype: str | None
    description: str | None
    kecamatan: str | None
    desa: str | None
    received_at: datetime
    callers: int = Field(description="other callers already linked to it")
    distance_m: float | None = Field(description="when both have coordinates")
    same_desa: bool
    same_kecamatan: bool
    minutes_apart: float
    rule: str | None = Field(
        description="same_desa or within_distance when intake's own rule links the two: the one "
        "to pre-select; none otherwise"
    )


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=40)]


class RecentContact(BaseModel):
    id: UUID
    kind: ContactKind
    category: Category | None
    status: str
    channel: str
    received_at: datetime


class CallerLookup(BaseModel):
    phone: str = Field(description="E.164")
    history: CallerHistory
    recent: list[RecentContact] = Field(description="The latest contacts from the number, newest first (up to 5)")


def _problem(field: str, message: str) -> Problem:
    return Problem(422, "Invalid request", f"{field}: {message}", errors=[{"field": field, "message": message}])


router = APIRouter(prefix="/v1", tags=["call aids"], responses=PROBLEM_RESPONSES)


async def suggestions(
    conn: asyncpg.Connection, settings: IntakeSettings, category: str, place: Place, at: datetime, exclude: UUID
) -> list[LinkSuggestion]:
    window = timedelta(minutes=settings.link_window_minutes)
    candidates = await store.open_incidents(conn, category, at - window, exclude=exclude)
    ranked = suggest(place, at, candidates, window=window, max_distance_m=settings.link_distance_m)
    shown = {r["id"]: r for r in await store.incident_summaries(conn, [s.candidate.report_id for s in ranked])}
    return [_suggestion(s, shown[s.candidate.report_id], category) for s in ranked]


@router.get(
    "/link-suggestions", summary="Open incidents a call being taken may be another caller of, most likely first"
)
async def for_a_call(
    client: CentreClient,
    conn: Connection,
    settings: Settings,
    category: Category,
    kecamatan: Annotated[str | None, Query(max_length=40)] = None,
    desa: Annotated[str | None, Query(max_length=100)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
) -> list[LinkSuggestion]:
    canonical = None
    if kecamatan is not None and (canonical := canonical_kecamatan(kecamatan)) is None:
        raise _problem("kecamatan", "not a kecamatan of Kabupaten Blitar")
    if (lat is None) != (lon is None):
        raise _problem("lat", "lat and lon go together")
    place = Place(canonical, desa, lat, lon)
    return await suggestions(conn, settings, category, place, datetime.now(UTC), NO_REPORT)


@router.get(
    "/reports/{report_id}/link-suggestions",
    summary="Open incidents this report may be another caller of (for the verdict `duplicate`)",
    responses={404: {**PROBLEM_RESPONSES[422], "description": "No such report"}},
)
async def for_a_report(
    report_id: UUID, client: CentreClient, conn: Connection, settings: Settings
) -> list[LinkSuggestion]:
    row = await store.fetch_report(conn, report_id)
    if row is None:
        raise Problem(404, "Not found", f"No report {report_id}.")
    if row["category"] is None:
        return []
    place = Place(row["kecamatan"], row["desa"], row["lat"], row["lon"])
    return await suggestions(conn, settings, row["category"], place, row["received_at"], report_id)


@router.post(
    "/callers/lookup",
    summary="A caller's contacts by phone number, as the number is typed",
    description="A POST so that the number stays out of URLs (and of every proxy's access log).",
)
async def caller_history(client: CentreClient, conn: Connection, settings: Settings, body: LookupIn) -> CallerLookup:
    try:
        e164 = to_e164(body.phone)
    except InvalidPhone as exc:
        raise _problem("phone", str(exc)) from None
    since = datetime.now(UTC) - timedelta(days=settings.prank_flag_days)
    counts = await store.caller_history(conn, e164, since)
    recent = await store.recent_contacts(conn, e164, limit=5)
    history = CallerHistory(
        contacts=counts["contacts"],
        pranks=counts["pranks"],
        period_days=settings.prank_flag_days,
        flagged=counts["pranks"] >= settings.prank_flag_threshold,
    )
    return CallerLookup(phone=e164, history=history, recent=[RecentContact(**dict(r)) for r in recent])


def _suggestion(s: Suggestion, row: asyncpg.Record, category: str) -> LinkSuggestion:
    return LinkSuggestion(
        report_id=s.candidate.report_id,
        category=category,
        subtype=row["subtype"],
        description=row["description"],
        kecamatan=s.candidate.place.kecamatan,
        desa=s.candidate.place.desa,
        received_at=s.candidate.received_at,
        callers=row["callers"],
        distance_m=s.distance_m,
        same_desa=s.same_desa,
        same_kecamatan=s.same_kecamatan,
        minutes_apart=s.minutes_apart,
        rule=s.link.reason if s.link else None,
    )
