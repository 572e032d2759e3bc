"""Reports linked to an open incident, and unlinked again.

Intake links another caller's report to the incident's first report
(`report.received` with `linked_to`). The router does not dispatch it again: each
agency the incident went to gets `dispatch.caller_added` on its topic, keyed by the
incident's report id so that it follows the incident's `dispatch.requested` on the
same partition.

The two reports travel under different keys, so the link may arrive before the
incident is decided. It is then parked (`awaiting_incident`) and released in the
transaction that decides the incident; if the incident is not decided within
INCIDENT_WAIT, a sweep routes the report on its own: never blocked, never lost.

When an operator undoes a link (`report.unlinked`), the report is routed on its own
from the copy kept with its decision.
"""

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from schemas import topics
from schemas.envelope import KafkaRecord, derived_event_id, encode
from schemas.events import DispatchCallerAdded, ReportReceived, ReportUnlinked
from services.common.consumer import TRANSIENT_ERRORS
from services.common.outbox import enqueue
from services.router import store
from services.router.metrics import SOURCE, RouterMetrics
from services.router.outcomes import ANOTHER_CALLER, REDECIDABLE, Outcome

log = logging.getLogger(__name__)

INCIDENT_WAIT = timedelta(seconds=30)


async def handle_linked(
    conn: asyncpg.Connection, event_id: str, report: ReportReceived, metrics: RouterMetrics
) -> None:
    incident = await store.peek_decision(conn, report.linked_to)
    if incident is None or incident["outcome"] in REDECIDABLE:
        # Not decided for good: wait for whoever decides it now (the decision lock), so
        # that the park and the decision's release of parked reports cannot miss each
        # other. Decided for good, the incident needs no lock: nothing will change its
        # dispatches under this link. Callers of one incident come in bursts over every
        # partition; behind the lock each waited for another partition's whole batch to
        # commit (bench --profile: 9 ms a linked report, the router's largest wait in a surge).
        incident = await store.fetch_decision(conn, report.linked_to)
    waiting = incident is None
    first_time = await store.park_or_link(conn, event_id, report, waiting=waiting)
    if not first_time or waiting:
        return
    await enqueue(conn, caller_added(event_id, report, json.loads(incident["dispatches"])))
    metrics.decisions.labels(report.category or "none", Outcome.LINKED).inc()


async def release_waiting(conn: asyncpg.Connection, decided: dict[UUID, list[dict]]) -> dict[UUID, list[KafkaRecord]]:
    """In the transaction that decides the incidents `decided` (report id: its
    dispatches), the reports parked for them become linked; returns, per incident, their
    caller_added events. One statement for all of them."""
    rows = await store.link_parked(conn, list(decided))
    records: dict[UUID, list[KafkaRecord]] = {}
    for row in rows:
        incident, report = row["linked_to"], ReportReceived.model_validate_json(row["report"])
        records.setdefault(incident, []).extend(caller_added(row["event_id"], report, decided[incident]))
    return records


def caller_added(event_id: str, report: ReportReceived, dispatches: list[dict]) -> list[KafkaRecord]:
    now = datetime.now(UTC)
    records = []
    for dispatch in dispatches:
        update = DispatchCallerAdded(
            dispatch_id=dispatch["dispatch_id"],
            report_id=report.linked_to,
            agency=dispatch["agency"],
            new_report_id=report.report_id,
            description=report.description,
            location=report.location,
            caller=report.caller,
            channel=report.channel,
            casualties=report.casualties,
            received_at=report.received_at,
        )
        records.append(
            encode(
                update,
                topic=topics.dispatch_topic(dispatch["agency"]),
                key=str(report.linked_to),
                source=SOURCE,
                event_id=derived_event_id(event_id, f"caller_added:{dispatch['agency']}"),
                time=now,
            )
        )
    return records


async def handle_unlinked(conn: asyncpg.Connection, unlinked: ReportUnlinked, route_alone) -> None:
    decision = await store.fetch_decision(conn, unlinked.report_id)
    if decision is None or decision["outcome"] not in ANOTHER_CALLER or decision["report"] is None:
        return  # not linked here (already unlinked, or never seen): nothing to undo
    report = ReportReceived.model_validate_json(decision["report"]).model_copy(update={"linked_to": None})
    await route_alone(conn, decision["event_id"], report)


async def sweep_overdue(pool: asyncpg.Pool, route_alone, *, every: float = 5.0, wait: timedelta = INCIDENT_WAIT):
    """Route on its own every report that waited longer than `wait` for its incident."""
    while True:
        await asyncio.sleep(every)
        try:
            await route_overdue(pool, route_alone, wait)
        except TRANSIENT_ERRORS as exc:
            log.warning("linked-report sweep skipped", extra={"fields": {"error": type(exc).__name__}})


async def route_overdue(pool: asyncpg.Pool, route_alone, wait: timedelta) -> int:
    routed = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            row = await store.take_overdue_parked(conn, wait)
            if row is None:
                return routed
            report = ReportReceived.model_validate_json(row["report"]).model_copy(update={"linked_to": None})
            await route_alone(conn, row["event_id"], report)
            log.warning(
                "incident never decided; linked report routed on its own",
                extra={"fields": {"report_id": str(report.report_id)}},
            )
            routed += 1
