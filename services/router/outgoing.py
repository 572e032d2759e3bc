"""The router's outgoing events of a decision, built in one place: when a report is
routed (handler.route_report) and when the watchdog's report.stalled re-drives it
(stalled.py). Their ce_ids derive from the event id the decision was made under, so a
re-drive emits the very same ids and every consumer's deduplication drops a copy."""

from datetime import datetime
from uuid import UUID

from schemas import topics
from schemas.envelope import KafkaRecord, derived_event_id, encode
from schemas.events import DispatchRequested, DispatchUnit, ReportReceived, ReportRouted, ReportUnrouted
from services.router.metrics import SOURCE


def dispatch_record(
    event_id: str,
    report: ReportReceived,
    *,
    dispatch_id: UUID,
    agency: str,
    role: str,
    unit: DispatchUnit | None,
    requested_at: datetime,
) -> KafkaRecord:
    """One agency's dispatch.requested, on its topic, keyed by the report id."""
    dispatch = DispatchRequested(
        dispatch_id=dispatch_id,
        report_id=report.report_id,
        agency=agency,
        role=role,
        category=report.category,
        subtype=report.subtype,
        description=report.description,
        location=report.location,
        caller=report.caller,
        channel=report.channel,
        casualties=report.casualties,
        received_at=report.received_at,
        requested_at=requested_at,
        unit=unit,
        verified=report.verification != "after_dispatch",
    )
    return encode(
        dispatch,
        topic=topics.dispatch_topic(agency),
        key=str(report.report_id),
        source=SOURCE,
        event_id=derived_event_id(event_id, f"dispatch:{agency}"),
        time=requested_at,
    )


def routing_record(event_id: str, follow_up: ReportRouted | ReportUnrouted, at: datetime) -> KafkaRecord:
    """The decision's follow-up on e112.reports: report.routed, or report.unrouted for the operators."""
    return encode(
        follow_up,
        topic=topics.REPORTS,
        key=str(follow_up.report_id),
        source=SOURCE,
        event_id=derived_event_id(event_id, "routing"),
        time=at,
    )
