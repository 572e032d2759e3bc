"""Notifier's admin API (the Command Center's key): each agency's channels, webhook,
signing secret, deadline, escalation contacts and API keys; each dispatch's record."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from schemas.catalog import AGENCIES, AGENCY_NAMES, Agency
from schemas.events import TYPE_PREFIX
from schemas.phone import to_e164
from services.common.web import PROBLEM_RESPONSES, Connection, Pool, Problem, from_state
from services.notifier import acks, escalation, signing, store
from services.notifier import clock as clocks
from services.notifier.agency_configs import AgencyConfigs
from services.notifier.breaker import Breakers
from services.notifier.dependencies import Clock, Configs, Egress, Metrics, Settings
from services.notifier.egress import EgressPolicy
from services.notifier.store import AgencyConfig

LATE_REPORTS_SHOWN = 200
NOT_FOUND = {404: {**PROBLEM_RESPONSES[422], "description": "Not found"}}
Who = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ChannelName = Literal["webhook", "email"]
SECRET_SHOWN_ONCE = "Only in the answer that made it: store it now, it is not shown again."


class WebhookChange(BaseModel):
    url: AnyHttpUrl = Field(description="Where the agency takes dispatches (HTTPS in production)")
    updated_by: Who


class AgencyConfigChange(BaseModel):
    """An agency's whole configuration (PUT replaces it; an omitted field takes its default)."""

    model_config = ConfigDict(extra="forbid")
    channels: list[ChannelName] = Field(
        default_factory=lambda: ["webhook", "email"],
        min_length=1,
        description="Tried in this order: the next one when the previous gives up",
    )
    webhook_url: AnyHttpUrl | None = Field(None, description="Where the agency takes dispatches (HTTPS in production)")
    email: list[EmailStr] = Field(default_factory=list, max_length=20, description="The e-mail channel's addresses")
    ack_deadline_seconds: int | None = Field(
        None,
        ge=10,
        le=86_400,
        description="Unacknowledged this long: re-sent; twice as long: escalated. Omitted: the service default",
    )
    escalation_contacts: list[EmailStr] = Field(default_factory=list, max_length=20)
    phones: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="The agency's 24-hour numbers, tried in this order by an operator when the system cannot "
        "reach it (e.g. 0342 801234, +6281…); stored as E.164",
    )
    updated_by: Who

    @field_validator("phones")
    @classmethod
    def _phones(cls, value: list[str]) -> list[str]:
        numbers = [to_e164(v) for v in value]  # InvalidPhone is a ValueError: a 422 naming the field
        if len(set(numbers)) != len(numbers):
            raise ValueError("each number at most once")
        return numbers

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each channel at most once")
        return value


class AgencyPublic(BaseModel):
    agency: Agency
    name: str
    topic: str
    channels: list[str]
    webhook_url: str | None
    webhook_secret_set: bool
    webhook_secret: str | None = Field(None, description=f"The webhook signing secret. {SECRET_SHOWN_ONCE}")
    webhook_breaker: str = Field(description="This replica's circuit breaker for the webhook: closed, open, half_open")
    email: list[str]
    ack_deadline_seconds: int
    escalation_contacts: list[str]
    phones: list[str] = Field(description="24-hour numbers, E.164")
    updated_by: str | None
    updated_at: datetime | None


class PhoneCall(BaseModel):
    """What an operator's call to the agency came to (a phone_agency task)."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["reached", "not_reached"] = Field(
        description="reached: the agency has the dispatch (acknowledged via phone, delivery and escalation stop); "
        "not_reached: the next escalation step is taken now"
    )
    operator_id: UUID = Field(description="Who phoned")


class PhoneCallPublic(BaseModel):
    dispatch_id: UUID
    outcome: str
    acknowledged_at: datetime | None
    escalation_due_at: datetime | None


class WebhookSecretPublic(BaseModel):
    agency: Agency
    webhook_secret: str = Field(description=SECRET_SHOWN_ONCE)
    previous_secret_valid_until: datetime | None = Field(
        description="Until then requests carry a second v1= signature made with the previous secret"
    )


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    created_by: Who


class ApiKeyPublic(BaseModel):
    id: UUID
    agency: Agency
    label: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description=f"The agency's key, sent as `Authorization: Bearer <key>`. {SECRET_SHOWN_ONCE}")


class AttemptPublic(BaseModel):
    attempt: int
    channel: str
    target: str | None
    started_at: datetime
    duration_ms: int
    outcome: str = Field(description="delivered, retry, gave_up, permanent or skipped")
    status_code: int | None
    error: str | None


class FieldStatusEntry(BaseModel):
    status: str
    note: str | None
    at: datetime


class UpdatePublic(BaseModel):
    update_id: UUID = Field(description="also the webhook's Idempotency-Key")
    type: str = Field(
        description="caller_added (another caller), cancelled (found false, sent unverified) or closed (the "
        "incident closed at the centre)"
    )
    new_report_id: UUID | None = Field(description="caller_added: the other caller's report")
    state: str
    attempts: int
    last_error: str | None
    finished_at: datetime | None
    history: list[AttemptPublic]


class LatePublic(BaseModel):
    late: int = Field(
        description="Dispatches past their acknowledgement deadline and not acknowledged (nor "
        "called off): every one, not a page of them"
    )
    by_agency: dict[str, int]
    report_ids: list[UUID] = Field(
        description=f"The reports they belong to, most recently dispatched first (up to {LATE_REPORTS_SHOWN})"
    )


class DispatchPublic(BaseModel):
    dispatch_id: UUID
    report_id: UUID
    agency: str
    state: str = Field(
        description="pending, delivered, failed, stopped (acknowledged before delivery finished) or cancelled "
        "(called off before it was delivered: found false, or the incident closed)"
    )
    channel: str | None
    round: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    finished_at: datetime | None
    ack_deadline_seconds: int
    acknowledged_at: datetime | None
    acknowledged_via: str | None
    escalation_steps: list[str] = Field(description="taken so far: resent, escalated")
    escalation_due_at: datetime | None
    field_status: str | None
    field_statuses: list[FieldStatusEntry]
    history: list[AttemptPublic]
    updates: list[UpdatePublic] = Field(
        default_factory=list, description="Updates delivered for this dispatch (another caller reported it)"
    )


# The console reads the agencies (their numbers to phone), the late count, and records
# an operator's phone call; configuring agencies and their keys is the admin's. app.py
# puts each behind its key, the console's first: its /dispatches/late before /dispatches/{id}.
for_console = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
for_admin = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)


@dataclass(frozen=True)
class AgencyAdmin:
    """Agencies' configuration as the admin API shows and changes it."""

    configs: AgencyConfigs
    breakers: Breakers  # the deliverer's: a configuration shows this replica's breaker
    clock: clocks.Clock
    default_deadline: int

    def public(self, config: AgencyConfig, *, secret: str | None = None) -> AgencyPublic:
        breaker = self.breakers.by_agency.get(config.agency)
        return AgencyPublic(
            agency=config.agency,
            name=AGENCY_NAMES[config.agency],
            topic=f"e112.dispatch.{config.agency}",
            channels=config.channels,
            webhook_url=config.webhook_url,
            webhook_secret_set=config.webhook_secret is not None,
            webhook_secret=secret,
            webhook_breaker=breaker.state if breaker else "closed",
            email=config.email_to,
            ack_deadline_seconds=config.ack_deadline_seconds or self.default_deadline,
            escalation_contacts=config.escalation_contacts,
            phones=config.phones,
            updated_by=config.updated_by,
            updated_at=config.updated_at,
        )

    async def read(self, conn, agency: str) -> AgencyPublic:
        return self.public(await store.agency_config(conn, agency, self.configs.vault))

    async def change(self, pool, agency: str, edit) -> AgencyPublic:
        """Read, edit and save one agency's configuration under its lock. A webhook
        URL without a secret gets one, returned this once."""
        async with pool.acquire() as conn, conn.transaction():
            await store.lock_agency(conn, agency)
            config = edit(await store.agency_config(conn, agency, self.configs.vault))
            secret = None
            if config.webhook_url and not config.webhook_secret:
                secret = signing.new_webhook_secret()
                config = AgencyConfig(**{**config.__dict__, "webhook_secret": secret})
            await store.save_agency_config(conn, config, self.clock.now(), self.configs.vault)
            saved = self.public(await store.agency_config(conn, agency, self.configs.vault), secret=secret)
        self.configs.forget()  # after the commit: a read in between must not keep the old row
        return saved


Agencies = Annotated[AgencyAdmin, from_state("agencies")]


async def refuse_internal(egress: EgressPolicy, url: str | None, field: str) -> None:
    problem = url and await egress.check_configured(url)
    if problem:
        message = f"refused: it {problem}"
        raise Problem(422, "Invalid request", f"{field}: {message}", errors=[{"field": field, "message": message}])


@for_console.get("/agencies", tags=["agencies"], summary="Every agency and its configuration")
async def list_agencies(conn: Connection, agencies: Agencies) -> list[AgencyPublic]:
    return [await agencies.read(conn, a) for a in AGENCIES]


@for_console.get("/agencies/{agency}", tags=["agencies"], summary="One agency's configuration")
async def get_agency(agency: Agency, conn: Connection, agencies: Agencies) -> AgencyPublic:
    return await agencies.read(conn, agency)


# put_agency and put_webhook resolve the webhook's host before they take a connection
# (refuse_internal): a slow name server must not hold one of the pool's.


@for_admin.put(
    "/agencies/{agency}",
    tags=["agencies"],
    summary="Set an agency's channels, webhook, e-mail, acknowledgement deadline and escalation contacts",
)
async def put_agency(
    agency: Agency, body: AgencyConfigChange, pool: Pool, agencies: Agencies, egress: Egress
) -> AgencyPublic:
    await refuse_internal(egress, body.webhook_url and str(body.webhook_url), "webhook_url")

    def edit(old: AgencyConfig) -> AgencyConfig:
        url = str(body.webhook_url) if body.webhook_url else None
        return AgencyConfig(
            **{
                **old.__dict__,
                "channels": list(body.channels),
                "webhook_url": url,
                "webhook_secret": old.webhook_secret if url else None,
                "email_to": [str(e) for e in body.email],
                "ack_deadline_seconds": body.ack_deadline_seconds,
                "escalation_contacts": [str(e) for e in body.escalation_contacts],
                "phones": list(body.phones),
                "updated_by": body.updated_by,
            }
        )

    return await agencies.change(pool, agency, edit)


@for_admin.put("/agencies/{agency}/webhook", tags=["agencies"], summary="Set an agency's webhook URL only")
async def put_webhook(
    agency: Agency, body: WebhookChange, pool: Pool, agencies: Agencies, egress: Egress
) -> AgencyPublic:
    await refuse_internal(egress, str(body.url), "url")
    return await agencies.change(
        pool,
        agency,
        lambda old: AgencyConfig(**{**old.__dict__, "webhook_url": str(body.url), "updated_by": body.updated_by}),
    )


@for_admin.delete(
    "/agencies/{agency}/webhook", tags=["agencies"], summary="Remove an agency's webhook", status_code=204
)
async def delete_webhook(agency: Agency, conn: Connection, configs: Configs) -> None:
    async with conn.transaction():
        await store.lock_agency(conn, agency)
        await conn.execute(
            "UPDATE agencies SET webhook_url = NULL, webhook_secret = NULL, previous_webhook_secret = NULL, "
            "previous_secret_until = NULL WHERE agency = $1",
            agency,
        )
    configs.forget()


@for_admin.post(
    "/agencies/{agency}/webhook/secret",
    tags=["agencies"],
    responses=NOT_FOUND,
    summary="Rotate the webhook signing secret (the previous one keeps signing for a grace period)",
)
async def rotate_secret(
    agency: Agency, conn: Connection, clock: Clock, configs: Configs, settings: Settings
) -> WebhookSecretPublic:
    now = clock.now()
    async with conn.transaction():
        await store.lock_agency(conn, agency)
        old = await store.agency_config(conn, agency, configs.vault)
        if not old.webhook_url:
            raise Problem(404, "Not found", f"{agency} has no webhook; set one first.")
        secret = signing.new_webhook_secret()
        until = now + timedelta(seconds=settings.webhook_secret_grace_seconds) if old.webhook_secret else None
        await store.save_agency_config(
            conn,
            AgencyConfig(
                **{
                    **old.__dict__,
                    "webhook_secret": secret,
                    "previous_webhook_secret": old.webhook_secret,
                    "previous_secret_until": until,
                }
            ),
            now,
            configs.vault,
        )
    configs.forget()
    return WebhookSecretPublic(agency=agency, webhook_secret=secret, previous_secret_valid_until=until)


@for_admin.post(
    "/agencies/{agency}/api-keys",
    tags=["agencies"],
    status_code=201,
    summary="Make an API key with which the agency acknowledges its dispatches and reports field status",
)
async def create_key(agency: Agency, body: ApiKeyCreate, conn: Connection, clock: Clock) -> ApiKeyCreated:
    key = signing.new_api_key()
    row = await store.add_api_key(
        conn,
        agency=agency,
        key_hash=signing.hash_api_key(key),
        label=body.label,
        created_by=body.created_by,
        now=clock.now(),
    )
    return ApiKeyCreated(**dict(row), key=key)


@for_admin.get("/agencies/{agency}/api-keys", tags=["agencies"], summary="An agency's API keys (never the keys)")
async def list_keys(agency: Agency, conn: Connection) -> list[ApiKeyPublic]:
    return [ApiKeyPublic(**dict(r)) for r in await store.api_keys(conn, agency)]


@for_admin.delete(
    "/agencies/{agency}/api-keys/{key_id}",
    tags=["agencies"],
    status_code=204,
    responses=NOT_FOUND,
    summary="Revoke an agency API key",
)
async def revoke_key(agency: Agency, key_id: UUID, conn: Connection, clock: Clock) -> None:
    if not await store.revoke_api_key(conn, agency, key_id, clock.now()):
        raise Problem(404, "Not found", f"{agency} has no API key {key_id}.")


@for_console.get(
    "/dispatches/late", tags=["dispatches"], summary="How many dispatches are past their deadline, unacknowledged"
)
async def late(conn: Connection, clock: Clock) -> LatePublic:
    rows = await store.late_by_agency(conn, clock.now())
    reports = await store.late_reports(conn, clock.now(), LATE_REPORTS_SHOWN)
    return LatePublic(
        late=sum(r["late"] for r in rows), by_agency={r["agency"]: r["late"] for r in rows}, report_ids=reports
    )


DISPATCH_FIELDS = (
    "dispatch_id",
    "report_id",
    "agency",
    "state",
    "channel",
    "round",
    "attempts",
    "last_error",
    "finished_at",
    "ack_deadline_seconds",
    "acknowledged_at",
    "acknowledged_via",
    "escalation_due_at",
    "field_status",
)


@for_admin.get(
    "/dispatches/{dispatch_id}",
    tags=["dispatches"],
    responses=NOT_FOUND,
    summary="A dispatch: delivery, every attempt, acknowledgement, escalation and field status",
)
async def get_dispatch(dispatch_id: UUID, conn: Connection) -> DispatchPublic:
    row = await store.dispatch_row(conn, dispatch_id)
    if row is None:
        raise Problem(404, "Not found", f"No dispatch {dispatch_id}.")
    attempts = await conn.fetch("SELECT * FROM delivery_attempts WHERE dispatch_id = $1 ORDER BY id", dispatch_id)
    statuses = await store.field_statuses(conn, dispatch_id)
    updates = [await _update_public(conn, u) for u in await store.updates_of(conn, dispatch_id)]
    return DispatchPublic(
        **{k: row[k] for k in DISPATCH_FIELDS},
        next_attempt_at=row["next_attempt_at"] if row["state"] == "pending" else None,
        escalation_steps=list(escalation.STEPS[: row["escalation_step"]]),
        field_statuses=[FieldStatusEntry(**dict(s)) for s in statuses],
        history=[AttemptPublic(**{k: a[k] for k in AttemptPublic.model_fields}) for a in attempts],
        updates=updates,
    )


async def _update_public(conn, update) -> UpdatePublic:
    tried = await conn.fetch("SELECT * FROM delivery_attempts WHERE dispatch_id = $1 ORDER BY id", update["update_id"])
    fields = {k: update[k] for k in UpdatePublic.model_fields if k not in ("history", "type")}
    fields["type"] = update["event_type"].removeprefix(TYPE_PREFIX + "dispatch.").removesuffix(".v1")
    history = [AttemptPublic(**{k: a[k] for k in AttemptPublic.model_fields}) for a in tried]
    return UpdatePublic(**fields, history=history)


@for_console.post(
    "/dispatches/{dispatch_id}/phone-call",
    tags=["dispatches"],
    responses=NOT_FOUND,
    summary="An operator phoned the agency: reached (acknowledged via phone) or not reached (escalate now)",
)
async def phone_call(
    dispatch_id: UUID, body: PhoneCall, conn: Connection, clock: Clock, metrics: Metrics
) -> PhoneCallPublic:
    now = clock.now()
    async with conn.transaction():
        row = await store.dispatch_row(conn, dispatch_id, for_update=True)
        if row is None:
            raise Problem(404, "Not found", f"No dispatch {dispatch_id}.")
        if body.outcome == "reached":
            await acks.acknowledge(conn, row, "phone", now, metrics, operator_id=body.operator_id)
        else:
            await store.escalate_now(conn, dispatch_id, now)
        row = await store.dispatch_row(conn, dispatch_id)
    return PhoneCallPublic(
        dispatch_id=dispatch_id,
        outcome=body.outcome,
        acknowledged_at=row["acknowledged_at"],
        escalation_due_at=row["escalation_due_at"],
    )
