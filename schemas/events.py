"""The data of every Kafka event, each model bound to its CloudEvents type.

Event models read leniently (unknown fields are ignored) so that a producer can add a
field without breaking older consumers; a breaking change gets a new `.vN` type.
"""

from datetime import date, datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas import topics
from schemas.catalog import (
    Agency,
    Category,
    Channel,
    CloseOutcome,
    ContactKind,
    Role,
    TaskReason,
    Verdict,
    Verification,
)

TYPE_PREFIX = "id.go.blitarkab.e112."


class EventLocation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kecamatan: str | None = None
    desa: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None


class EventCaller(BaseModel):
    """Personal data: carried to the agencies that need it, never logged."""

    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    phone: str | None = Field(None, description="E.164, so the agency can call back")


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ce_type: ClassVar[str]
    topic: ClassVar[str]  # where it is published (the AsyncAPI document is made from this)


class ReportReceived(Event):
    """Intake accepted and stored a contact (any kind). Topic e112.reports, key report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.received.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    kind: ContactKind
    category: Category | None
    subtype: str | None
    description: str | None
    location: EventLocation | None
    caller: EventCaller | None
    channel: Channel
    casualties: int | None = None
    received_at: datetime
    linked_to: UUID | None = Field(
        None, description="Another caller for this open incident (its first report): not to be dispatched again"
    )
    verification: Verification = Field(
        "not_required",
        description="before_dispatch: the router waits for report.verified; after_dispatch: dispatched at once, "
        "flagged unverified, while an operator verifies",
    )


class RoutedDispatch(BaseModel):
    dispatch_id: UUID
    agency: Agency
    role: Role


class ReportRouted(Event):
    """The router decided which agencies get the report. Topic e112.reports."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.routed.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    category: Category
    rule_version: int
    dispatches: list[RoutedDispatch]
    routed_at: datetime


class ReportUnrouted(Event):
    """No rule routes the report: it waits for the on-duty operators. Topic e112.reports."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.unrouted.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    category: str | None
    reason: str
    at: datetime


class DispatchUnit(BaseModel):
    """The agency's local unit chosen for the report's kecamatan (a Polsek, a puskesmas,
    a fire post), from the router's units table."""

    code: str
    name: str


class DispatchRequested(Event):
    """One agency is asked to act on a report. Topic e112.dispatch.<agency>, key report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.requested.v1"
    topic: ClassVar[str] = topics.DISPATCH_TEMPLATE
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    role: Role
    category: Category
    subtype: str | None
    description: str | None
    location: EventLocation | None
    caller: EventCaller | None
    channel: Channel
    casualties: int | None = None
    received_at: datetime
    requested_at: datetime
    unit: DispatchUnit | None = Field(None, description="The local unit that acts; null: the agency decides")
    verified: bool = Field(
        True,
        description="false: a public-channel report dispatched at once because its category cannot wait; an "
        "operator is verifying it and a dispatch.cancelled follows if it proves false",
    )


class DispatchDelivered(Event):
    """The dispatch reached the agency's endpoint. Topic e112.dispatch-status."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.delivered.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    channel: str = Field(description="how it was delivered, e.g. webhook")
    attempts: int
    delivered_at: datetime


class DispatchFailed(Event):
    """Delivery gave up on every channel. Topic e112.dispatch-status."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.failed.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    reason: str
    attempts: int
    failed_at: datetime


class DispatchHeld(Event):
    """The notifier has the dispatch but cannot deliver it yet (its endpoint failed, or
    the agency's circuit breaker is open) and will not before `next_attempt_at`: said
    once per dispatch and round, soon after it arrived. It is not lost, so intake's
    watchdog does not re-drive it; it is not reaching the agency, so the shifts service
    gives an on-duty operator the task of phoning the agency. Topic
    e112.dispatch-status, key: the report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.held.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    reason: str = Field(description="why it is not delivered yet, e.g. `webhook: HTTP 503` or `breaker open`")
    attempts: int
    held_at: datetime
    next_attempt_at: datetime | None = Field(None, description="when the notifier tries again")


class DispatchUpdateDelivered(Event):
    """An update to a dispatch (another caller, a cancellation or closing notice) reached the
    agency. Topic e112.dispatch-status, key: the dispatch's report id. Intake's watchdog
    reads it: without it, a lost `dispatch.caller_added` could not be told from a slow one."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.update_delivered.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    update_id: UUID = Field(description="the update's id: the Idempotency-Key the agency deduplicates by")
    update_type: Literal["caller_added", "cancelled", "closed"]
    dispatch_id: UUID = Field(description="the dispatch it updates")
    report_id: UUID = Field(description="the dispatch's report (the incident)")
    new_report_id: UUID | None = Field(None, description="caller_added: the other caller's report")
    agency: Agency
    channel: str
    attempts: int
    delivered_at: datetime


class DispatchUpdateFailed(Event):
    """Delivery of an update to a dispatch gave up on every channel. Topic
    e112.dispatch-status, key: the dispatch's report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.update_failed.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    update_id: UUID
    update_type: Literal["caller_added", "cancelled", "closed"]
    dispatch_id: UUID
    report_id: UUID
    new_report_id: UUID | None = None
    agency: Agency
    reason: str
    attempts: int
    failed_at: datetime


class OperatorCheckedIn(Event):
    """An operator started work. Topic e112.shifts, key operator id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "operator.checked_in.v1"
    topic: ClassVar[str] = topics.SHIFTS
    operator_id: UUID
    shift: str | None
    at: datetime


class OperatorCheckedOut(Event):
    """An operator stopped work. Topic e112.shifts, key operator id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "operator.checked_out.v1"
    topic: ClassVar[str] = topics.SHIFTS
    operator_id: UUID
    shift: str | None
    at: datetime


class OperatorStatusChanged(Event):
    """An operator at work changed status: available, handling_report or break
    (check-in makes one available, check-out offline). Topic e112.shifts, key operator id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "operator.status_changed.v1"
    topic: ClassVar[str] = topics.SHIFTS
    operator_id: UUID
    shift: str | None
    status: str = Field(description="available, handling_report or break")
    previous: str
    report_id: UUID | None = Field(None, description="the report handled, with handling_report")
    at: datetime


class OperatorStillCheckedIn(Event):
    """An operator's shift ended (some minutes ago) and they have not checked out: they
    do not count for the shift now. Once per check-in. Topic e112.shifts, key operator id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "operator.still_checked_in.v1"
    topic: ClassVar[str] = topics.SHIFTS
    operator_id: UUID
    shift: str
    shift_ended_at: datetime
    status: str
    at: datetime


class ShiftCoverageAlert(Event):
    """Fewer operators are checked in for the shift than it needs, after its first
    minutes (nobody at all, or too few). Once per shortage, until shift.coverage_restored.
    Topic e112.shifts, key `coverage`."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "shift.coverage_alert.v1"
    topic: ClassVar[str] = topics.SHIFTS
    shift: str
    shift_starts_at: datetime
    shift_ends_at: datetime
    needed: int
    checked_in: int
    reason: str = Field(
        description="nobody or short (too few checked in), or nobody_free (reports wait in the queue: everyone "
        "on duty is at capacity or on a break)"
    )
    missing_operator_ids: list[UUID] = Field(description="rostered for this shift and not checked in")
    queued: int = Field(0, description="with nobody_free: the reports waiting")
    at: datetime


class ShiftCoverageRestored(Event):
    """The shortage of the last shift.coverage_alert ended: the shift is staffed, or it
    ended. Topic e112.shifts, key `coverage`."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "shift.coverage_restored.v1"
    topic: ClassVar[str] = topics.SHIFTS
    shift: str
    shift_starts_at: datetime
    needed: int
    checked_in: int
    how: str = Field(description="staffed or shift_ended; queue_drained after a nobody_free alert")
    alert_at: datetime
    at: datetime


class RosterEntryChange(BaseModel):
    model_config = ConfigDict(extra="ignore")
    entry_id: int
    day: date = Field(description="the local date the shift starts")
    shift: str
    from_operator_id: UUID | None = Field(description="None for a generated entry")
    to_operator_id: UUID


class RosterChanged(Event):
    """A month's roster was generated, or a supervisor swapped shifts or had one taken
    over; who and why. Topic e112.shifts, key `roster`."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "roster.changed.v1"
    topic: ClassVar[str] = topics.SHIFTS
    change_id: int
    kind: str = Field(description="generated, swap or take_over")
    month: str = Field(description="YYYY-MM")
    entries: list[RosterEntryChange]
    changed_by: str
    reason: str
    override: bool = Field(description="accepted although it breaks the rest rule")
    violations: int = Field(description="rest-rule violations accepted with the override")
    at: datetime


class ReportLinked(Event):
    """A new report was found to be another caller for an open incident and linked to
    it instead of being dispatched again. Topic e112.reports, key: the new report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.linked.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    incident_report_id: UUID = Field(description="the open report it was linked to")
    reason: str = Field(description="same_desa or within_distance")
    distance_m: float | None = None
    linked_at: datetime


class ReportUnlinked(Event):
    """An operator undid a link: the report is then routed on its own. Topic e112.reports."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.unlinked.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    incident_report_id: UUID
    unlinked_by: str
    unlinked_at: datetime


class DispatchCallerAdded(Event):
    """Another caller reported an incident already dispatched to this agency.
    Topic e112.dispatch.<agency>, key: the incident's report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.caller_added.v1"
    topic: ClassVar[str] = topics.DISPATCH_TEMPLATE
    dispatch_id: UUID = Field(description="the agency's existing dispatch for the incident")
    report_id: UUID = Field(description="the incident's report id")
    agency: Agency
    new_report_id: UUID
    description: str | None
    location: EventLocation | None
    caller: EventCaller | None
    channel: Channel
    casualties: int | None = None
    received_at: datetime


class DispatchAcknowledged(Event):
    """The agency confirmed it has the dispatch: every further notice stops.
    Topic e112.dispatch-status."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.acknowledged.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    via: str = Field(description="api, email_link, or phone (an operator reached the agency by phone)")
    operator_id: UUID | None = Field(None, description="via phone: the operator who reached the agency")
    acknowledged_at: datetime


class DispatchFieldStatus(Event):
    """The agency's field status: on_the_way, on_scene, done. Topic e112.dispatch-status."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.field_status.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    status: str = Field(description="on_the_way, on_scene or done")
    note: str | None = None
    at: datetime


class DispatchEscalated(Event):
    """A dispatch was not acknowledged in time: re-sent, then escalated to the agency's
    escalation contacts, and the on-duty operators alerted. Topic e112.dispatch-status."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.escalated.v1"
    topic: ClassVar[str] = topics.DISPATCH_STATUS
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    step: str = Field(description="resent or escalated")
    reason: str
    escalated_at: datetime


class ReportVerified(Event):
    """An operator's verdict on a report from a public channel. Topic e112.reports.
    genuine: dispatched now if it waited; prank or information: never dispatched (or
    cancelled if it went out unverified); duplicate: linked to `duplicate_of`."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.verified.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    verdict: Verdict
    duplicate_of: UUID | None = None
    operator_id: UUID
    note: str | None = None
    verification: Verification = Field(description="what the verification held: before_ or after_dispatch")
    verified_at: datetime


class ReportAssigned(Event):
    """A report that needs a person was given to an on-duty operator. Topic e112.reports."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.assigned.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    task_id: UUID
    reason: TaskReason
    operator_id: UUID
    why: str = Field(description="new, from_queue, reassigned (operator went offline) or handover (shift ended)")
    previous_operator_id: UUID | None = None
    handover_note: str | None = Field(None, description="with why=handover: the leaving operator's latest note")
    waited_seconds: float = Field(description="from the task's creation to this assignment")
    assigned_at: datetime


class ReportTaskClosed(Event):
    """An operator's task on a report is finished (verdict given, or marked done).
    Topic e112.reports."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.task_closed.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    task_id: UUID
    reason: TaskReason
    operator_id: UUID | None
    outcome: str = Field(
        description="verified (the verdict), done (by the operator), reached or not_reached (a phone task), "
        "superseded (delivered or acknowledged after all) or incident_closed (the incident closed)"
    )
    note: str | None = None
    closed_at: datetime


class ReportStalled(Event):
    """The watchdog found an accepted report not dispatched in time: it was re-driven and
    the on-duty operators are alerted. Topic e112.reports."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.stalled.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    missing: list[str] = Field(
        description="'routing' if never routed, else the agencies without a delivery (of another caller's report: "
        "without its dispatch.caller_added delivered)"
    )
    attempt: int = Field(description="how many times the watchdog has re-driven it")
    age_seconds: float
    detected_at: datetime
    report: ReportReceived | None = Field(
        None,
        description="the report as intake holds it (the data of its report.received), so the router can route it "
        "again if that event was lost; null from a watchdog that does not send it",
    )


class DispatchCancelled(Event):
    """A dispatch sent unverified proved false (prank, information, duplicate): the agency
    may stand down. Topic e112.dispatch.<agency>, key report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.cancelled.v1"
    topic: ClassVar[str] = topics.DISPATCH_TEMPLATE
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    reason: str = Field(description="the operator's verdict: prank, information or duplicate")
    duplicate_of: UUID | None = None
    cancelled_at: datetime


class ReportClosed(Event):
    """An incident is over: closed by an operator with an outcome, or on its own
    (`resolved`, no operator) when every dispatched agency reported `done`. It closes
    with its linked callers (`linked_reports`). A closed incident takes no new callers,
    is not watched and leaves the board; the router tells its agencies
    (`dispatch.closed`). Topic e112.reports, key report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.closed.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    outcome: CloseOutcome
    note: str | None = None
    operator_id: UUID | None = Field(None, description="who closed it; none when it closed on its own")
    linked_reports: list[UUID] = Field(default_factory=list, description="other callers' reports closed with it")
    closed_at: datetime


class ReportReopened(Event):
    """An operator reopened a closed incident (it flared up again, or was closed by
    mistake): it is open, watched and on the board again, with its linked callers.
    Topic e112.reports, key report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "report.reopened.v1"
    topic: ClassVar[str] = topics.REPORTS
    report_id: UUID
    reason: str
    operator_id: UUID
    linked_reports: list[UUID] = Field(default_factory=list)
    reopened_at: datetime


class DispatchClosed(Event):
    """The incident the agency was dispatched to is closed at the 112 centre (outcome
    and note as the operator gave them): nothing more will come for this dispatch, no
    re-send and no escalation. Topic e112.dispatch.<agency>, key report id."""

    ce_type: ClassVar[str] = TYPE_PREFIX + "dispatch.closed.v1"
    topic: ClassVar[str] = topics.DISPATCH_TEMPLATE
    dispatch_id: UUID
    report_id: UUID
    agency: Agency
    outcome: CloseOutcome
    note: str | None = None
    closed_at: datetime


# Every event model, by ce_type: the models declared above, each with its type and topic.
EVENT_MODELS: dict[str, type[Event]] = {model.ce_type: model for model in Event.__subclasses__()}
