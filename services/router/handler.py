"""What the router does with each event on `e112.reports`: a report received is routed
here (or held for its verdict, verification.py, or joined to its incident, linked.py);
a verdict, an unlink, the watchdog's re-drive and an incident's closing (closing.py)
act on the decision it has."""

import logging
from datetime import UTC, datetime

import asyncpg

from schemas.envelope import Envelope
from schemas.events import (
    DispatchUnit,
    ReportClosed,
    ReportReceived,
    ReportRouted,
    ReportStalled,
    ReportUnlinked,
    ReportUnrouted,
    ReportVerified,
    RoutedDispatch,
)
from services.common.handlers import HandlerTable
from services.common.outbox import enqueue
from services.router import closing, linked, stalled, store, verification
from services.router.metrics import RouterMetrics
from services.router.outgoing import dispatch_record, routing_record
from services.router.routing import RoutingTable, decide

log = logging.getLogger(__name__)


class ReportHandler:
    """What the router does with each event on `e112.reports`: `table` is the consumer's
    handler; routed/unrouted events are the router's own, other types not for it."""

    def __init__(self, metrics: RouterMetrics):
        self.metrics = metrics
        # The last table read, by version: a report costs one small query unless the table changed.
        self.cache: dict[str, tuple[int, RoutingTable]] = {}
        self.table = HandlerTable(
            {
                ReportReceived: self.on_received,
                ReportVerified: self.on_verified,
                ReportUnlinked: self.on_unlinked,
                ReportStalled: self.on_stalled,
                ReportClosed: self.on_closed,
            }
        )

    async def on_received(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        data: ReportReceived = envelope.data
        if data.linked_to and data.kind == "emergency":
            await linked.handle_linked(conn, envelope.id, data, self.metrics)
        elif data.verification == "before_dispatch" and data.kind == "emergency":
            await verification.hold(conn, envelope.id, data, self.metrics)
        else:
            await self.route_alone(conn, envelope.id, data)

    async def on_verified(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await verification.handle_verdict(conn, envelope.id, envelope.data, self.route_alone, self.metrics)

    async def on_unlinked(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await linked.handle_unlinked(conn, envelope.data, self.route_alone)

    async def on_stalled(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await stalled.handle_stalled(conn, envelope.data, self.route_alone, self.metrics)

    async def on_closed(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await closing.handle_closed(conn, envelope.id, envelope.data, self.metrics)

    async def route_alone(self, conn: asyncpg.Connection, event_id: str, report: ReportReceived) -> None:
        await route_report(conn, event_id, report, self.metrics, self.cache)


async def route_report(
    conn: asyncpg.Connection,
    event_id: str,
    report: ReportReceived,
    metrics: RouterMetrics,
    cache: dict[str, tuple[int, RoutingTable]] | None = None,
) -> None:
    now = datetime.now(UTC)
    if report.kind != "emergency":
        # Pranks, ghost calls and information requests are kept by intake, never dispatched.
        await store.record_decision(
            conn, report_id=report.report_id, event_id=event_id, category=report.category, rule_version=None,
            decision=None, outcome="not_emergency", decided_at=now,
        )  # fmt: skip
        metrics.decisions.labels(report.category or "none", "not_emergency").inc()
        return
    cache = {} if cache is None else cache
    # TableUnreadable propagates: the consumer dead-letters the event and the operators
    # are told (deadletters.py); a re-drive routes it once a valid table is saved.
    version, table = await store.live_table(conn, cache.get("live"))
    cache["live"] = (version, table)
    metrics.table_version.set(version)
    decision = decide(
        table, report.report_id, report.category, subtype=report.subtype, casualties=report.casualties,
        kecamatan=report.location.kecamatan if report.location else None,
    )  # fmt: skip
    outcome = "routed" if decision.routed else "unrouted"
    first_time = await store.record_decision(
        conn, report_id=report.report_id, event_id=event_id, category=report.category,
        rule_version=version, decision=decision, outcome=outcome, decided_at=now,
    )  # fmt: skip
    if not first_time:
        return
    key = str(report.report_id)
    records = []
    for a in decision.assignments:
        unit = DispatchUnit(code=a.unit.code, name=a.unit.name) if a.unit else None
        records.append(
            dispatch_record(event_id, report, dispatch_id=a.dispatch_id, agency=a.agency, role=a.role, unit=unit,
                            requested_at=now)
        )  # fmt: skip
        metrics.dispatches.labels(a.agency, a.role).inc()
    if decision.routed:
        follow_up = ReportRouted(
            report_id=report.report_id, category=report.category, rule_version=version, routed_at=now,
            dispatches=[
                RoutedDispatch(dispatch_id=a.dispatch_id, agency=a.agency, role=a.role) for a in decision.assignments
            ],
        )  # fmt: skip
    else:
        # Never vanish: the on-duty operators pick it up (shifts consumes this event).
        follow_up = ReportUnrouted(
            report_id=report.report_id, category=report.category, reason=decision.reason or "no rule routes it", at=now
        )
    records.append(routing_record(event_id, follow_up, now))
    # Other callers' reports that arrived before this one was decided join it now.
    records += await linked.release_waiting(
        conn, report.report_id, [{"dispatch_id": str(a.dispatch_id), "agency": a.agency} for a in decision.assignments]
    )
    await enqueue(conn, records)
    metrics.decisions.labels(report.category or "none", outcome).inc()
    log.info(
        "report routed",
        extra={
            "fields": {
                "report_id": key,
                "outcome": outcome,
                "agencies": [a.agency for a in decision.assignments],
                "units": [a.unit.code for a in decision.assignments if a.unit],
                "rules": list(decision.matched_rules),
                "rule_version": version,
            }
        },
    )
