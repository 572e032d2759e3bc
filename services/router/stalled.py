"""Re-driving a report the intake watchdog found stalled (`report.stalled`).

The event says what intake is missing ("routing", or the agencies nobody heard of) and
carries the report as intake holds it. What the router does depends on its decision:

- routed: publish again the dispatch.requested of the missing agencies (all of them, and
  report.routed, when intake never saw the routing), rebuilt from the stored decision
  (agencies, roles, units, decided_at as requested_at) and the report, under the same
  ce_ids and dispatch ids as the first time: agencies and the notifier drop a copy;
- unrouted: publish report.unrouted again (same ce_id) for the operators;
- none (the report.received was lost, e.g. a broker that restarted empty): route it now
  from the report in the event, under an event id derived from the report id, so every
  later re-drive finds that decision;
- held for verification: intake only re-drives a report whose verdict it has, and a
  verdict that is not genuine makes it a non-emergency or links it, which the watchdog
  skips; so the verdict was genuine and its report.verified was lost: released now,
  routed under the report's own event id as the verdict would have;
- another caller (intake still has it linked to an incident): the incident's agencies
  intake heard no update outcome from get their `dispatch.caller_added` again, under the
  same ce_ids; a report the router never saw is linked now (its report.received was
  lost); one still waiting for its incident's decision is left to the linked sweep
  (linked.py), which routes it on its own if the incident is never decided;
- linked here but unlinked at intake: the report.unlinked was lost: routed on its own
  now, as the unlink would have;
- dead-lettered: the operators were told; report.unrouted is sent again (same ce_id). It
  is not routed here: the cause is fixed and it is re-driven with the redrive command;
- not_emergency, not_dispatched, cancelled: nothing to send (intake does not watch
  those; a report.stalled for one is logged).

The shifts service opens the operators' `stalled` task from the same event.
"""

import json
import logging
from uuid import UUID

import asyncpg

from schemas import topics
from schemas.envelope import derived_event_id, encode
from schemas.events import DispatchUnit, ReportReceived, ReportRouted, ReportStalled, ReportUnrouted, RoutedDispatch
from services.common.outbox import enqueue
from services.router import linked, store
from services.router.metrics import SOURCE, RouterMetrics
from services.router.outcomes import KEEPS_REPORT, Outcome
from services.router.outgoing import dispatch_record, routing_record

log = logging.getLogger(__name__)

ROUTING = "routing"


def watchdog_event_id(report_id: UUID) -> str:
    """The event id a report the router never saw is decided under, on its first re-drive."""
    return derived_event_id(f"watchdog:{report_id}", "route")


async def handle_stalled(conn: asyncpg.Connection, event: ReportStalled, route_alone, metrics: RouterMetrics) -> None:
    decision = await store.fetch_decision(conn, event.report_id)
    outcome = decision["outcome"] if decision else None
    # Intake's view: is the report still another caller of an incident?
    another_caller = event.report is not None and event.report.linked_to is not None
    fields = {"report_id": str(event.report_id), "missing": event.missing, "attempt": event.attempt, "outcome": outcome}
    if decision is None:
        if event.report is None or event.report.kind != "emergency":
            log.warning(
                "stalled report unknown here and not in the event; nothing to re-drive", extra={"fields": fields}
            )
            return
        if another_caller:
            await linked.handle_linked(conn, watchdog_event_id(event.report_id), event.report, metrics)
        else:
            await route_alone(conn, watchdog_event_id(event.report_id), event.report)
    elif another_caller and outcome == Outcome.LINKED:
        await enqueue(conn, await callers_added_again(conn, decision, event))
    elif another_caller and outcome == Outcome.AWAITING_INCIDENT:
        log.info("stalled report waits for its incident's decision; the linked sweep has it", extra={"fields": fields})
        return
    elif outcome == Outcome.ROUTED:
        await enqueue(conn, republished(decision, event))
    elif outcome == Outcome.UNROUTED:
        reason, at = decision["reason"] or "no rule routes it", decision["decided_at"]
        notice = ReportUnrouted(report_id=event.report_id, category=decision["category"], reason=reason, at=at)
        await enqueue(conn, [routing_record(decision["event_id"], notice, at)])
    elif outcome in KEEPS_REPORT and decision["report"] is not None:
        held = ReportReceived.model_validate_json(decision["report"]).model_copy(update={"linked_to": None})
        await route_alone(conn, decision["event_id"], held)
    elif outcome == Outcome.DEADLETTERED:
        notice = ReportUnrouted(
            report_id=event.report_id,
            category=decision["category"],
            reason=decision["reason"] or "dead-lettered",
            at=decision["decided_at"],
        )
        await enqueue(
            conn,
            [
                encode(
                    notice,
                    topic=topics.REPORTS,
                    key=str(event.report_id),
                    source=SOURCE,
                    event_id=derived_event_id(decision["event_id"], "deadletter-notice"),
                    time=decision["decided_at"],
                )
            ],
        )
    else:
        log.warning("stalled report not to be dispatched here; nothing re-driven", extra={"fields": fields})
        return
    log.info("stalled report re-driven", extra={"fields": fields})


def republished(decision: asyncpg.Record, event: ReportStalled) -> list:
    """The decision's events again, with their first ce_ids and dispatch ids."""
    event_id, at = decision["event_id"], decision["decided_at"]
    dispatches = json.loads(decision["dispatches"])
    everything = ROUTING in event.missing
    report = event.report or _held_report(decision)
    records = []
    if report is not None:
        for d in dispatches:
            if everything or d["agency"] in event.missing:
                unit = DispatchUnit(**d["unit"]) if d.get("unit") else None
                records.append(
                    dispatch_record(
                        event_id,
                        report,
                        dispatch_id=UUID(d["dispatch_id"]),
                        agency=d["agency"],
                        role=d["role"],
                        unit=unit,
                        requested_at=at,
                    )
                )
    if everything:
        routed = ReportRouted(
            report_id=event.report_id,
            category=decision["category"],
            rule_version=decision["rule_version"],
            routed_at=at,
            dispatches=[
                RoutedDispatch(dispatch_id=d["dispatch_id"], agency=d["agency"], role=d["role"]) for d in dispatches
            ],
        )
        records.append(routing_record(event_id, routed, at))
    return records


async def callers_added_again(conn: asyncpg.Connection, decision: asyncpg.Record, event: ReportStalled) -> list:
    """The report's dispatch.caller_added to the agencies intake is missing, as first
    sent: the same ce_ids (derived from the event id the link was decided under)."""
    report = _held_report(decision) or event.report
    incident = await store.fetch_decision(conn, decision["linked_to"])
    if report is None or incident is None:
        return []
    dispatches = [d for d in json.loads(incident["dispatches"]) if d["agency"] in event.missing]
    return linked.caller_added(decision["event_id"], report, dispatches)


def _held_report(decision: asyncpg.Record) -> ReportReceived | None:
    return ReportReceived.model_validate_json(decision["report"]) if decision["report"] else None
