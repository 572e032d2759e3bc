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

from aiokafka.structs import ConsumerRecord

from schemas import topics
from schemas.envelope import InvalidEvent, decode, derived_event_id, encode
from schemas.events import TYPE_PREFIX, ReportReceived, ReportUnrouted
from services.common.consumer import EventConsumer, claim, deadletter_record
from services.common.outbox import enqueue
from services.common.redrive import deadletter_claim
from services.router import store
from services.router.handler import SOURCE, RouterMetrics

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

    # Overrides EventConsumer._deadletter (same contract: returns the outcome label).
    async def _deadletter(self, record: ConsumerRecord, dedup_key: str, error: str) -> str:
        report = failed_report(record)
        now = datetime.now(UTC)
        told = False
        async with self.pool.acquire() as conn, conn.transaction():
            if not await claim(conn, self.name, deadletter_claim(dedup_key)):
                return "duplicate"
            records = [deadletter_record(record, consumer=self.name, error=error)]
            if report is not None:
                report_id, category = report
                reason = operators_reason(error)
                told = await store.record_deadlettered(
                    conn, report_id=report_id, event_id=dedup_key, category=category, reason=reason, at=now
                )
                if told:
                    notice = ReportUnrouted(report_id=report_id, category=category, reason=reason, at=now)
                    records.append(
                        encode(
                            notice,
                            topic=topics.REPORTS,
                            key=str(report_id),
                            source=SOURCE,
                            event_id=derived_event_id(dedup_key, "deadletter-notice"),
                            time=now,
                        )  # fmt: skip
                    )
            await enqueue(conn, records)
        if told:
            self.router_metrics.decisions.labels(report[1] or "none", "deadlettered").inc()
        log.warning(
            "event dead-lettered",
            extra={
                "fields": {
                    "consumer": self.name, "topic": record.topic, "offset": record.offset,
                    "report_id": str(report[0]) if report else None, "operators_told": told,
                    "error": error.strip().splitlines()[0][:300] if error.strip() else "",
                }
            },
        )  # fmt: skip
        return "deadlettered"
