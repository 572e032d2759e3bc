"""What the router does with each event on `e112.reports`: a report received is routed
here (or held for its verdict, verification.py, or joined to its incident, linked.py);
a verdict, an unlink, the watchdog's re-drive and an incident's closing (closing.py)
act on the decision it has."""

import logging
from collections.abc import Sequence
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
from services.router.outcomes import Outcome
from services.router.outgoing import dispatch_record, routing_record
from services.router.routing import RoutingTable, decide

log = logging.getLogger(__name__)


class ReportHandler:
    """What the router does with each event on `e112.reports`: `table` is the consumer's
    handler; routed/unrouted events are the router's own, other types not for it."""

    def __init__(self, metrics: RouterMetrics):
        self.metrics = metrics
        # The last table read, by version: a batch costs one small query unless the table changed.
        self.cache: dict[str, tuple[int, RoutingTable]] = {}
        self.table = HandlerTable(
            {
                ReportVerified: self.on_verified,
                ReportUnlinked: self.on_unlinked,
                ReportStalled: self.on_stalled,
                ReportClosed: self.on_closed,
            },
            batched={ReportReceived: self.on_received},
        )

    async def on_received(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        """A batch's reports received: those to route now in a few statements together,
        then those linked to an incident or held for a verdict, one by one. Linked ones
        after the others is the order that decides each the same way: one whose incident
        is in the batch finds it decided (in its place it would park, and the incident's
        decision release it at once)."""
        now_routed: list[tuple[str, ReportReceived]] = []
        later: list[Envelope] = []
        seen: set = set()
        for envelope in envelopes:
            data: ReportReceived = envelope.data
            if data.kind == "emergency" and (data.linked_to or data.verification == "before_dispatch"):
                later.append(envelope)
            elif data.report_id not in seen:  # a copy in the same batch would decide nothing
                seen.add(data.report_id)
                now_routed.append((envelope.id, data))
        await lock_batch(conn, now_routed, later)
        if now_routed:
            await route_reports(conn, now_routed, self.metrics, self.cache)
        for envelope in later:
            if envelope.data.linked_to:
                await linked.handle_linked(conn, envelope.id, envelope.data, self.metrics)
            else:
                await verification.hold(conn, envelope.id, envelope.data, self.metrics)

    async def on_verified(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await verification.handle_verdict(conn, envelope.id, envelope.data, self.route_alone, self.metrics)

    async def on_unlinked(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await linked.handle_unlinked(conn, envelope.data, self.route_alone)

    async def on_stalled(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await stalled.handle_stalled(conn, envelope.data, self.route_alone, self.metrics)

    async def on_closed(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await closing.handle_closed(conn, envelope.id, envelope.data, self.metrics)

    async def route_alone(self, conn: asyncpg.Connection, event_id: str, report: ReportReceived) -> None:
        await route_reports(conn, [(event_id, report)], self.metrics, self.cache)


async def lock_batch(
    conn: asyncpg.Connection, now_routed: list[tuple[str, ReportReceived]], later: list[Envelope]
) -> None:
    """The decision locks a batch of reports received needs, taken at once and in order:
    its reports to route, and the incidents of its linked ones not decided for good
    (those decided for good need none, linked.handle_linked). Without such incidents
    record_decisions takes the batch's own locks, in the same order: nothing to do here."""
    incidents = list({e.data.linked_to for e in later if e.data.linked_to})
    if not incidents:
        return
    undecided = set(incidents) - await store.decided_for_good(conn, incidents)
    if undecided:
        await store.lock_decisions(conn, [report.report_id for _, report in now_routed] + list(undecided))


async def route_reports(
    conn: asyncpg.Connection,
    reports: Sequence[tuple[str, ReportReceived]],
    metrics: RouterMetrics,
    cache: dict[str, tuple[int, RoutingTable]] | None = None,
) -> None:
    """Decide `reports` (event id, report; one per report) and enqueue what follows, in
    four statements however many they are: the live table's version, the decisions,
    the parked callers released, the outbox rows."""
    now = datetime.now(UTC)
    cache = {} if cache is None else cache
    version, table = None, None
    if any(report.kind == "emergency" for _, report in reports):
        # TableUnreadable propagates: the consumer dead-letters the events and the
        # operators are told (deadletters.py); a re-drive routes them once a valid table is saved.
        version, table = await store.live_table(conn, cache.get("live"))
        cache["live"] = (version, table)
        metrics.table_version.set(version)
    decisions: list[store.NewDecision] = []
    for event_id, report in reports:
        if report.kind != "emergency":
            # Pranks, ghost calls and information requests are kept by intake, never dispatched.
            decisions.append(
                store.NewDecision(report.report_id, event_id, report.category, None, None, Outcome.NOT_EMERGENCY)
            )
            continue
        decision = decide(
            table,
            report.report_id,
            report.category,
            subtype=report.subtype,
            casualties=report.casualties,
            kecamatan=report.location.kecamatan if report.location else None,
        )
        outcome = Outcome.ROUTED if decision.routed else Outcome.UNROUTED
        decisions.append(store.NewDecision(report.report_id, event_id, report.category, version, decision, outcome))
    first_time = await store.record_decisions(conn, decisions, now)
    decided = [(d, report) for d, (_, report) in zip(decisions, reports, strict=True) if d.report_id in first_time]
    incidents = {
        d.report_id: [{"dispatch_id": str(a.dispatch_id), "agency": a.agency} for a in d.decision.assignments]
        for d, _ in decided
        if d.decision is not None
    }
    # Other callers' reports that arrived before these were decided join them now.
    released = await linked.release_waiting(conn, incidents) if incidents else {}
    records = []
    for d, report in decided:
        metrics.decisions.labels(report.category or "none", d.outcome).inc()
        if d.decision is not None:
            records += _follow_ups(d, report, version, now, metrics)
            records += released.get(report.report_id, [])
    if records:
        await enqueue(conn, records)


def _follow_ups(
    d: "store.NewDecision", report: ReportReceived, version: int, now: datetime, metrics: RouterMetrics
) -> list:
    """An emergency's dispatches and its report.routed (or report.unrouted), in that order."""
    decision = d.decision
    records = []
    for a in decision.assignments:
        unit = DispatchUnit(code=a.unit.code, name=a.unit.name) if a.unit else None
        records.append(
            dispatch_record(
                d.event_id, report, dispatch_id=a.dispatch_id, agency=a.agency, role=a.role, unit=unit, requested_at=now
            )
        )
        metrics.dispatches.labels(a.agency, a.role).inc()
    if decision.routed:
        follow_up = ReportRouted(
            report_id=report.report_id,
            category=report.category,
            rule_version=version,
            routed_at=now,
            dispatches=[
                RoutedDispatch(dispatch_id=a.dispatch_id, agency=a.agency, role=a.role) for a in decision.assignments
            ],
        )
    else:
        # Never vanish: the on-duty operators pick it up (shifts consumes this event).
        follow_up = ReportUnrouted(
            report_id=report.report_id, category=report.category, reason=decision.reason or "no rule routes it", at=now
        )
    records.append(routing_record(d.event_id, follow_up, now))
    log.info(
        "report routed",
        extra={
            "fields": {
                "report_id": str(report.report_id),
                "outcome": d.outcome,
                "agencies": [a.agency for a in decision.assignments],
                "units": [a.unit.code for a in decision.assignments if a.unit],
                "rules": list(decision.matched_rules),
                "rule_version": version,
            }
        },
    )
    return records
