"""A report the router cannot route is dead-lettered *and* handed to the operators.

The router's consumer is the common one (decode, deduplicate, handle, commit; transient
failures retried) with dead-lettering extended, all in the one transaction that writes
the dead letter:

- the claim is recorded as `deadletter:<ce_id>` (services/common/redrive.py), never
  under the ce_id itself, so the event is handled when re-driven after the fix, once;
- when the failed message is a report (a `report.received`, or an unreadable message on
  `e112.reports` whose key is a report id), the decision records `deadlettered` and
  why, and `report.unrouted` tells the on-duty operators (the shifts service assigns it
  to one) - unless the report was decided already: a later copy of a routed report
  failing says nothing about that report.
"""

import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from aiokafka.structs import ConsumerRecord

from schemas import topics
from schemas.envelope import InvalidEvent, KafkaRecord, decode, derived_event_id, encode
from schemas.events import TYPE_PREFIX, ReportReceived, ReportUnrouted
from services.common.consumer import EventConsumer
from services.router import store
from services.router.metrics import SOURCE, RouterMetrics
from services.router.outcomes import Outcome

log = logging.getLogger(__name__)

REPORT_RECEIVED_TYPES = TYPE_PREFIX + "report.received."


def failed_report(record: ConsumerRecord) -> tuple[UUID, str | None] | None:
    """The report (id, category) a failed message was about, if it was a report waiting
    to be routed; None for anything else."""
    if record.topic != topics.REPORTS:
        return None
    try:
        envelope = decode(record.headers or (), record.value, record.key)
    except InvalidEvent:
        envelope = None
    if envelope is not None:
        data = envelope.data
        if isinstance(data, ReportReceived) and data.kind == "emergency":
            return data.report_id, data.category
        return None
    ce_type = dict(record.headers or ()).get("ce_type", b"").decode(errors="replace")
    if ce_type and not ce_type.startswith(REPORT_RECEIVED_TYPES):
        return None  # a broken event of another kind is not a report waiting for routing
    try:
        return UUID((record.key or b"").decode()), None
    except ValueError:
        return None


def operators_reason(error: str) -> str:
    """What the operators read: the error's first line only. A schema error's later
    lines quote the input, which may be a caller's name or number."""
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return f"cannot be routed automatically (dead-lettered): {first[:300]}"


class RouterConsumer(EventConsumer):
    def __init__(self, *, router_metrics: RouterMetrics, **kwargs):
        super().__init__(**kwargs)
        self.router_metrics = router_metrics

    @property
    def stopping(self) -> bool:
        """Shutdown has begun (a batch in hand may still be finishing)."""
        return self._stopping.is_set()

    async def on_deadletter(
        self, conn: asyncpg.Connection, record: ConsumerRecord, dedup_key: str, error: str
    ) -> list[KafkaRecord]:
        """A report that cannot be routed is also handed to the on-duty operators."""
        report = failed_report(record)
        if report is None:
            return []
        report_id, category = report
        now = datetime.now(UTC)
        reason = operators_reason(error)
        told = await store.record_deadlettered(
            conn, report_id=report_id, event_id=dedup_key, category=category, reason=reason, at=now
        )
        if not told:
            return []  # decided already: a later copy failing says nothing about that report
        self.router_metrics.decisions.labels(category or "none", Outcome.DEADLETTERED).inc()
        notice = ReportUnrouted(report_id=report_id, category=category, reason=reason, at=now)
        return [
            encode(
                notice,
                topic=topics.REPORTS,
                key=str(report_id),
                source=SOURCE,
                event_id=derived_event_id(dedup_key, "deadletter-notice"),
                time=now,
            )
        ]
