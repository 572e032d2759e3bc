"""Acknowledgements and field statuses: what the agency API and the e-mail link do,
each in the caller's transaction, with its event put in the outbox.

An acknowledgement is taken once: the first one stops further delivery attempts, the
escalation timer and any queued escalation e-mail, in the same transaction; later ones
change nothing and publish nothing (the answer says when it was acknowledged).
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram

from schemas import topics
from schemas.envelope import derived_event_id, encode
from schemas.events import DispatchAcknowledged, DispatchFieldStatus
from services.common.outbox import enqueue
from services.notifier import field_status, store
from services.notifier.deliverer import SOURCE


class AckMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.acknowledged = Counter(
            "e112_dispatch_acknowledged_total",
            "Dispatches acknowledged, by agency and way (api, email_link)",
            ["agency", "via"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "e112_dispatch_ack_seconds",
            "Time from the notifier queueing a dispatch to its acknowledgement",
            ["agency"],
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
            registry=registry,
        )
        # From the caller's report reaching intake: what the ops dashboard compares with
        # the response standards (deploy/monitoring/dashboards).
        self.report_ack_seconds = Histogram(
            "e112_report_ack_seconds",
            "Time from the report being received to the agency acknowledging its dispatch",
            ["agency"],
            buckets=(15, 30, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600),
            registry=registry,
        )
        self.field_statuses = Counter(
            "e112_dispatch_field_status_total",
            "Field statuses reported, by agency and status",
            ["agency", "status"],
            registry=registry,
        )


@dataclass(frozen=True)
class Acknowledgement:
    dispatch_id: UUID
    agency: str
    acknowledged_at: datetime
    via: str
    new: bool  # False: it had been acknowledged before


class FieldStatusBackwards(ValueError):
    pass


async def acknowledge(
    conn: asyncpg.Connection, row, via: str, now: datetime, metrics: AckMetrics, operator_id: UUID | None = None
) -> Acknowledgement:
    """Acknowledge the dispatch `row` (locked by the caller). Idempotent. `operator_id`:
    the operator who reached the agency by phone (`via` phone)."""
    done = await store.acknowledge(conn, row["dispatch_id"], via, now)
    if done is None:
        return Acknowledgement(
            row["dispatch_id"], row["agency"], row["acknowledged_at"], row["acknowledged_via"], False
        )
    event = DispatchAcknowledged(
        dispatch_id=done["dispatch_id"],
        report_id=done["report_id"],
        agency=done["agency"],
        via=via,
        operator_id=operator_id,
        acknowledged_at=now,
    )
    await enqueue(
        conn,
        [
            encode(
                event,
                topic=topics.DISPATCH_STATUS,
                key=str(done["report_id"]),
                source=SOURCE,
                event_id=derived_event_id(str(done["dispatch_id"]), "acknowledged"),
                time=now,
            )
        ],
    )
    metrics.acknowledged.labels(done["agency"], via).inc()
    metrics.ack_seconds.labels(done["agency"]).observe(max(0.0, (now - done["created_at"]).total_seconds()))
    metrics.report_ack_seconds.labels(done["agency"]).observe(max(0.0, (now - done["received_at"]).total_seconds()))
    return Acknowledgement(done["dispatch_id"], done["agency"], now, via, True)


async def report_field_status(
    conn: asyncpg.Connection, row, status: str, note: str | None, now: datetime, metrics: AckMetrics
) -> bool:
    """Record a field status of the dispatch `row` (locked by the caller); a status
    also acknowledges. Returns False if it was the current status already; raises
    FieldStatusBackwards for a step back."""
    change = field_status.change(row["field_status"], status)
    if change is field_status.Change.BACKWARD:
        raise FieldStatusBackwards(f"the dispatch is {row['field_status']} already; it cannot go back to {status}")
    if change is field_status.Change.SAME:
        return False
    if row["acknowledged_at"] is None:
        await acknowledge(conn, row, "api", now, metrics)
    await store.add_field_status(conn, row["dispatch_id"], status, note, now)
    event = DispatchFieldStatus(
        dispatch_id=row["dispatch_id"],
        report_id=row["report_id"],
        agency=row["agency"],
        status=status,
        note=note,
        at=now,
    )
    await enqueue(
        conn,
        [
            encode(
                event,
                topic=topics.DISPATCH_STATUS,
                key=str(row["report_id"]),
                source=SOURCE,
                event_id=derived_event_id(str(row["dispatch_id"]), f"field-{status}"),
                time=now,
            )
        ],
    )
    metrics.field_statuses.labels(row["agency"], status).inc()
    return True
