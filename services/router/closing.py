"""An incident closed at the centre (`report.closed`): its agencies are told.

Each agency the report was routed to gets `dispatch.closed` on its topic, keyed by the
report id so that it follows the dispatch's other events on the same partition, with the
outcome and the operator's note. Its ce_id derives from the closing event's id and the
agency: a redelivered report.closed publishes the very same ids, while a second closing
after a reopening (another event) publishes a second set. The decision stays `routed`,
since a reopened incident may close again.

Only a routed report has dispatches to tell. A cancelled one was called off already; an
unrouted, not_emergency or not_dispatched one went to nobody; other callers' reports
(`linked_reports`, decided `linked`) have no dispatches of their own, their incident's
agencies hear of the closing once. A report still held for its verdict is held no more:
decided `not_dispatched`, so a verdict that comes after it does not dispatch a closed
incident (verification.handle_verdict acts only on a held or a routed report).
"""

import json
import logging

import asyncpg

from schemas import topics
from schemas.envelope import KafkaRecord, derived_event_id, encode
from schemas.events import DispatchClosed, ReportClosed
from services.common.outbox import enqueue
from services.router import store
from services.router.metrics import SOURCE, RouterMetrics
from services.router.outcomes import Outcome

log = logging.getLogger(__name__)

CLOSED_BEFORE_VERDICT = "closed before its verdict"


async def handle_closed(conn: asyncpg.Connection, event_id: str, closed: ReportClosed, metrics: RouterMetrics) -> None:
    decision = await store.fetch_decision(conn, closed.report_id)
    fields = {"report_id": str(closed.report_id), "outcome": closed.outcome}
    if decision is None:
        # report.received travels before its closing on the same partition; only a
        # report the router never saw (lost before retention) gets here.
        log.warning("closing of a report the router never saw", extra={"fields": fields})
        return
    if decision["outcome"] == Outcome.ROUTED:
        records = closed_records(event_id, closed, json.loads(decision["dispatches"]))
        await enqueue(conn, records)
        log.info("agencies told the incident is closed", extra={"fields": fields | {"agencies": len(records)}})
    elif decision["outcome"] == Outcome.AWAITING_VERIFICATION:
        if await store.not_dispatched(conn, closed.report_id, CLOSED_BEFORE_VERDICT):
            metrics.decisions.labels(decision["category"] or "none", Outcome.NOT_DISPATCHED).inc()
            log.info("held report closed before its verdict; not dispatched", extra={"fields": fields})


def closed_records(event_id: str, closed: ReportClosed, dispatches: list[dict]) -> list[KafkaRecord]:
    records = []
    for dispatch in dispatches:
        notice = DispatchClosed(
            dispatch_id=dispatch["dispatch_id"],
            report_id=closed.report_id,
            agency=dispatch["agency"],
            outcome=closed.outcome,
            note=closed.note,
            closed_at=closed.closed_at,
        )
        records.append(
            encode(
                notice,
                topic=topics.dispatch_topic(dispatch["agency"]),
                key=str(closed.report_id),
                source=SOURCE,
                event_id=derived_event_id(event_id, f"closed:{dispatch['agency']}"),
                time=closed.closed_at,
            )
        )
    return records
