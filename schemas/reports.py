"""Intake's REST models: what an app posts, and what it reads back.

Request models are strict (no `false` where a number belongs, no string where a
number belongs) and forbid unknown fields, so a typo in a client is a 422 that names
the field rather than data silently dropped.
"""

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.catalog import (
    REGENCY_BOUNDS,
    Category,
    Channel,
    CloseOutcome,
    ContactKind,
    Verdict,
    Verification,
    canonical_kecamatan,
)
from schemas.phone import InvalidPhone, to_e164

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _kecamatan(value: str) -> str:
    canonical = canonical_kecamatan(value)
    if canonical is None:
        raise ValueError("not a kecamatan of Kabupaten Blitar")
    return canonical


def _phone(value: str) -> str:
    try:
        return to_e164(value)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None


Kecamatan = Annotated[Text, StringConstraints(max_length=40), AfterValidator(_kecamatan)]
Phone = Annotated[Text, StringConstraints(max_length=32), AfterValidator(_phone)]

_STRICT = ConfigDict(strict=True, extra="forbid")


class Location(BaseModel):
    model_config = _STRICT

    kecamatan: Kecamatan | None = Field(
        None, description="One of the 22 kecamatan, any case; stored in canonical spelling."
    )
    desa: Annotated[Text, StringConstraints(max_length=100)] | None = None
    address: Annotated[Text, StringConstraints(max_length=300)] | None = None
    lat: float | None = Field(None, ge=REGENCY_BOUNDS["lat_min"], le=REGENCY_BOUNDS["lat_max"])
    lon: float | None = Field(None, ge=REGENCY_BOUNDS["lon_min"], le=REGENCY_BOUNDS["lon_max"])

    @model_validator(mode="after")
    def _both_coordinates(self) -> "Location":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together: give both or neither")
        return self


class Caller(BaseModel):
    model_config = _STRICT

    name: Annotated[Text, StringConstraints(max_length=100)] | None = None
    phone: Phone | None = Field(None, description="0812…, +62812…, 62812… or (0342) 801234; stored in E.164.")


# What an emergency must carry; other kinds of contact carry what was learnt.
# The header in which the call takers' console names the operator signed in to it, on
# the actions intake takes only from an operator (verdicts, unlinks).
OPERATOR_HEADER = "E112-Operator-Id"
EMERGENCY_REQUIRED = ("category", "description", "location.kecamatan", "caller.phone")
CALL_STARTED_MAX_AGE_HOURS = 24
CALL_STARTED_CLOCK_SKEW_SECONDS = 60  # a sender's clock a little ahead is not an error


class ReportCreate(BaseModel):
    """A contact with the 112 centre, as an app posts it to `POST /v1/reports`."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "description": "For kind `emergency` (the default), category, description, "
            "location.kecamatan and caller.phone are required.",
            "if": {"properties": {"kind": {"const": "emergency"}}},
            "then": {
                "required": ["category", "description", "location", "caller"],
                "properties": {
                    "location": {"required": ["kecamatan"]},
                    "caller": {"required": ["phone"]},
                },
            },
        },
    )

    kind: ContactKind = "emergency"
    category: Category | None = None
    subtype: Annotated[Text, StringConstraints(max_length=60)] | None = Field(
        None, description="Free subtype, e.g. `rumah`, `pohon_tumbang_kabel`."
    )
    description: Annotated[Text, StringConstraints(max_length=2000)] | None = None
    location: Location | None = None
    caller: Caller | None = None
    channel: Channel = "call"
    casualties: int | None = Field(None, ge=0, le=100_000, description="Known casualties, if any.")
    operator_id: UUID | None = Field(
        None,
        strict=False,  # a UUID comes as a JSON string; the strict mode would want a UUID object
        description="The call taker who filed it, for apps that act for a signed-in operator (the console).",
    )
    call_started_at: AwareDatetime | None = Field(
        None,
        strict=False,  # an RFC 3339 string in JSON
        description="When the call (or message) began, with its time zone: not in the future, at most "
        f"{CALL_STARTED_MAX_AGE_HOURS} h before the report. `received_at` stays the time intake accepted it.",
    )

    def missing_for_emergency(self) -> list[str]:
        """The required fields an emergency lacks, as dotted paths (empty if complete)."""
        if self.kind != "emergency":
            return []
        present = {
            "category": self.category,
            "description": self.description,
            "location.kecamatan": self.location and self.location.kecamatan,
            "caller.phone": self.caller and self.caller.phone,
        }
        return [path for path in EMERGENCY_REQUIRED if not present[path]]


class ReportAccepted(BaseModel):
    id: UUID
    status: str = Field(
        description="received, awaiting_verification (held for an operator's verdict), linked (another caller "
        "for an open incident) or recorded"
    )
    kind: ContactKind
    received_at: datetime
    linked_to: UUID | None = Field(None, description="The open incident's first report, when linked")
    caller_flagged: bool = Field(False, description="The caller has pranked repeatedly: tell the operator")
    verification: Verification = Field(
        "not_required",
        description="before_dispatch: held until an operator verifies it; after_dispatch: dispatched at once, "
        "flagged unverified, while an operator verifies it",
    )


class CallerHistory(BaseModel):
    contacts: int = Field(description="Contacts from this number within the period")
    pranks: int
    period_days: int
    flagged: bool = Field(description="Repeated pranks: the operator is warned; nothing is blocked")


class TimelineEntry(BaseModel):
    at: datetime
    event: str = Field(description="received, routed, unrouted, delivered, failed, …")
    agency: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class DispatchState(BaseModel):
    dispatch_id: UUID
    agency: str
    role: str
    state: str = Field(
        description="requested, failed, delivered, acknowledged, on_the_way, on_scene or done (only moves "
        "forward), or cancelled (dispatched unverified, then found false by the operator)"
    )
    escalated: bool = False
    updated_at: datetime


class VerificationState(BaseModel):
    required: Verification = Field(
        description="not_required (a call, or not an emergency), before_dispatch (waits for the verdict), "
        "after_dispatch (dispatched at once flagged unverified; cancelled if found false)"
    )
    state: Literal["not_required", "pending", "verified"]
    verdict: Verdict | None = None
    operator_id: UUID | None = Field(None, description="who gave the verdict")
    at: datetime | None = None


class Closure(BaseModel):
    """How an incident ended (and its linked callers with it)."""

    outcome: CloseOutcome
    note: str | None = None
    operator_id: UUID | None = Field(
        None, description="who closed it; none when it closed on its own (every agency done)"
    )
    at: datetime


class ReportPublic(BaseModel):
    id: UUID
    status: str = Field(
        description="received (not yet routed), routed, delivered (every agency reached), "
        "delivery_failed (some agency not reached), acknowledged (every agency confirmed), "
        "responding (an agency on the way or on scene), done, unrouted (waiting for an operator), "
        "awaiting_verification (a public-channel report held for an operator's verdict), "
        "linked (another caller for an open incident), recorded (not an emergency: kept, not routed), "
        "closed (the incident is over: see `closure`)"
    )
    kind: ContactKind
    category: Category | None
    subtype: str | None
    description: str | None
    location: Location | None
    caller: Caller | None
    channel: Channel
    casualties: int | None
    received_at: datetime
    via: str | None = Field(None, description="The app that filed it")
    linked_to: UUID | None = None
    linked_reports: list[UUID] = Field(default_factory=list, description="Other callers' reports linked to this one")
    caller_history: CallerHistory | None = None
    verification: VerificationState
    operator_id: UUID | None = Field(None, description="The call taker who filed it, if an app said so")
    assigned_to: UUID | None = Field(None, description="The operator who has the report's open task, if any")
    call_started_at: datetime | None = Field(None, description="When the call began, if the app said so")
    closure: Closure | None = Field(
        None, description="Set while the incident (this report's, or the one it is linked to) is closed"
    )
    dispatches: list[DispatchState]
    timeline: list[TimelineEntry]


class ReportSummary(BaseModel):
    id: UUID
    kind: ContactKind
    status: str
    category: Category | None
    subtype: str | None
    kecamatan: str | None
    desa: str | None
    channel: Channel
    received_at: datetime
    linked_to: UUID | None
    verification: Verification
    verdict: Verdict | None
    assigned_to: UUID | None
    closed_at: datetime | None = None
    close_outcome: CloseOutcome | None = None


class ReportPage(BaseModel):
    items: list[ReportSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class ContactCount(BaseModel):
    day: date = Field(description="Local date, Asia/Jakarta")
    kind: ContactKind
    channel: Channel
    contacts: int


class ContactStats(BaseModel):
    since: datetime
    until: datetime
    total: int
    by_kind: dict[str, int]
    share_by_kind: dict[str, float]
    by_channel: dict[str, int]
    by_day: list[ContactCount]
    incidents_closed: dict[str, int] = Field(
        default_factory=dict, description="Incidents closed in the period, by outcome (closed_at in it)"
    )
