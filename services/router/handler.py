"""What the router does with each event on `e112.reports`."""

import logging
from datetime import UTC, datetime

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from schemas import topics
from schemas.envelope import Envelope, derived_event_id, encode
from schemas.events import DispatchRequested, ReportReceived, ReportRouted, ReportUnrouted, RoutedDispatch
from services.common.outbox import enqueue
from services.router import store
from services.router.routing import decide

log = logging.getLogger(__name__)
SOURCE = "e112/router"


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.decisions = Counter(
            "e112_routing_decisions_total", "Reports decided, by category and outcome",
            ["category", "outcome"], registry=registry,
        )  # fmt: skip
        self.dispatches = Counter(
            "e112_dispatches_requested_total", "Dispatches requested, by agency and role",
            ["agency", "role"], registry=registry,
        )  # fmt: skip


def build_handler(metrics: RouterMetrics):
    async def handle(conn: asyncpg.Connection, envelope: Envelope) -> None:
        if not isinstance(envelope.data, ReportReceived):
            return  # routed/unrouted events are the router's own; other types are not for it
        await route_report(conn, envelope.id, envelope.data, metrics)

    return handle


async def route_report(conn: asyncpg.Connection, event_id: str, report: ReportReceived, metrics: RouterMetrics) -> None:
    now = datetime.now(UTC)
    if report.kind != "emergency":
        # Pranks, ghost calls and information requests are kept by intake, never dispatched.
        await store.record_decision(
            conn,
            report_id=report.report_id,
            event_id=event_id,
            category=report.category,
            rule_version=None,
            assignments=[],
            outcome="not_emergency",
            decided_at=now,
        )
        metrics.decisions.labels(report.category or "none", "not_emergency").inc()
        return
    version, table = await store.current_table(conn)
    assignments = decide(table, report.report_id, report.category)
    outcome = "routed" if assignments else "unrouted"
    first_time = await store.record_decision(
        conn, report_id=report.report_id, event_id=event_id, category=report.category,
        rule_version=version, assignments=assignments, outcome=outcome, decided_at=now,
    )  # fmt: skip
    if not first_time:
        return
    key = str(report.report_id)
    records = []
    for a in assignments:
        dispatch = DispatchRequested(
            dispatch_id=a.dispatch_id, report_id=report.report_id, agency=a.agency, role=a.role,
            category=report.category, subtype=report.subtype, description=report.description,
            location=report.location, caller=report.caller, channel=report.channel,
            casualties=report.casualties, received_at=report.received_at, requested_at=now,
        )  # fmt: skip
        records.append(
            encode(
                dispatch,
                topic=topics.dispatch_topic(a.agency),
                key=key,
                source=SOURCE,
                event_id=derived_event_id(event_id, f"dispatch:{a.agency}"),
                time=now,
            )
        )
        metrics.dispatches.labels(a.agency, a.role).inc()
    if assignments:
        follow_up = ReportRouted(
            report_id=report.report_id, category=report.category, rule_version=version, routed_at=now,
            dispatches=[RoutedDispatch(dispatch_id=a.dispatch_id, agency=a.agency, role=a.role) for a in assignments],
        )  # fmt: skip
    else:
        # Never vanish: the on-duty operators pick it up (shifts consumes this event).
        follow_up = ReportUnrouted(
            report_id=report.report_id, category=report.category, reason="no routing rule for this category", at=now
        )
    records.append(
        encode(
            follow_up,
            topic=topics.REPORTS,
            key=key,
            source=SOURCE,
            event_id=derived_event_id(event_id, "routing"),
            time=now,
        )
    )
    await enqueue(conn, records)
    metrics.decisions.labels(report.category or "none", outcome).inc()
    log.info(
        "report routed",
        extra={
            "fields": {
                "report_id": key,
                "outcome": outcome,
                "agencies": [a.agency for a in assignments],
                "rule_version": version,
            }
        },
    )
