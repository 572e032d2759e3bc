"""Reports held for an operator's verification, and what the verdict does.

A report from a public channel that intake marked `before_dispatch` is not routed when
it arrives: it is kept (`awaiting_verification`, with the report itself) until
`report.verified` comes on the same key. genuine: routed then, with the dispatch ids it
would have had at once; duplicate: joins the named incident (its agencies get
`dispatch.caller_added`); prank or information: never dispatched.

A report marked `after_dispatch` was routed at once with `verified: false`. If the
verdict then says it was not genuine, every agency it went to gets `dispatch.cancelled`
(ce_id derived from the verdict, so a redelivered verdict cancels once).

A held report whose incident is closed before its verdict is held no more
(closing.py): `not_dispatched`, and a verdict after that does nothing, as for any
decision neither held nor routed.
"""

import json
import logging
from datetime import UTC, datetime

import asyncpg

from schemas import topics
from schemas.envelope import derived_event_id, encode
from schemas.events import DispatchCancelled, ReportReceived, ReportVerified
from services.common.outbox import enqueue
from services.router import linked, store
from services.router.metrics import SOURCE, RouterMetrics
from services.router.outcomes import Outcome

log = logging.getLogger(__name__)


async def hold(conn: asyncpg.Connection, event_id: str, report: ReportReceived, metrics: RouterMetrics) -> None:
    held = await store.hold_for_verification(conn, event_id, report)
    if held:
        metrics.decisions.labels(report.category or "none", Outcome.AWAITING_VERIFICATION).inc()


async def handle_verdict(
    conn: asyncpg.Connection, event_id: str, verdict: ReportVerified, route_alone, metrics: RouterMetrics
) -> None:
    decision = await store.fetch_decision(conn, verdict.report_id)
    if decision is None:
        # report.received travels before its verdict on the same partition; only a
        # report the router never saw (lost before retention) gets here.
        fields = {"report_id": str(verdict.report_id)}
        log.warning("verdict for a report the router never saw", extra={"fields": fields})
        return
    if decision["outcome"] == Outcome.AWAITING_VERIFICATION:
        await _release(conn, decision, verdict, route_alone, metrics)
    elif decision["outcome"] == Outcome.ROUTED and verdict.verdict != "genuine":
        await _cancel(conn, event_id, decision, verdict, metrics)


async def _release(conn: asyncpg.Connection, decision, verdict: ReportVerified, route_alone, metrics) -> None:
    report = ReportReceived.model_validate_json(decision["report"])
    if verdict.verdict == "genuine":
        # Decided now under the report's own event id: the same dispatch ids as at once.
        await route_alone(conn, decision["event_id"], report)
    elif verdict.verdict == "duplicate" and verdict.duplicate_of:
        await store.forget_decision(conn, verdict.report_id)
        joined = report.model_copy(update={"linked_to": verdict.duplicate_of})
        await linked.handle_linked(conn, decision["event_id"], joined, metrics)
    else:
        await store.not_dispatched(conn, verdict.report_id, f"verified as {verdict.verdict} by an operator")
        metrics.decisions.labels(report.category or "none", Outcome.NOT_DISPATCHED).inc()


async def _cancel(conn: asyncpg.Connection, event_id: str, decision, verdict: ReportVerified, metrics) -> None:
    now = datetime.now(UTC)
    records = []
    for dispatch in json.loads(decision["dispatches"]):
        cancelled = DispatchCancelled(
            dispatch_id=dispatch["dispatch_id"],
            report_id=verdict.report_id,
            agency=dispatch["agency"],
            reason=verdict.verdict,
            duplicate_of=verdict.duplicate_of,
            cancelled_at=now,
        )
        records.append(
            encode(
                cancelled,
                topic=topics.dispatch_topic(dispatch["agency"]),
                key=str(verdict.report_id),
                source=SOURCE,
                event_id=derived_event_id(event_id, f"cancel:{dispatch['agency']}"),
                time=now,
            )
        )
    await store.mark_cancelled(conn, verdict.report_id, f"dispatched unverified, then verified as {verdict.verdict}")
    await enqueue(conn, records)
    metrics.decisions.labels(decision["category"] or "none", Outcome.CANCELLED).inc()
    log.info(
        "unverified dispatches cancelled",
        extra={"fields": {"report_id": str(verdict.report_id), "agencies": len(records)}},
    )
