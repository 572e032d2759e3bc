"""Live updates: the console reads e112.reports, e112.dispatch-status and e112.shifts
and pushes each event, reduced to what the screens need, to every signed-in browser
over server-sent events.

Every console replica must see every event (each has its own browsers), so there is
no consumer group: each replica assigns itself all partitions and starts at their
end. Nothing is committed and nothing is deduplicated: a browser only redraws, and a
missed event is caught by the page's periodic refresh and the refresh it does when
the feed comes back (`feed` messages). Messages carry ids, codes and times, never a
caller's name, number or the free text (the screens fetch those when they need them)."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas import topics
from schemas.envelope import Envelope, InvalidEvent, decode
from schemas.events import (
    DispatchAcknowledged,
    DispatchDelivered,
    DispatchEscalated,
    DispatchFailed,
    DispatchFieldStatus,
    Event,
    OperatorCheckedIn,
    OperatorCheckedOut,
    OperatorStatusChanged,
    OperatorStillCheckedIn,
    ReportAssigned,
    ReportClosed,
    ReportLinked,
    ReportReceived,
    ReportReopened,
    ReportRouted,
    ReportStalled,
    ReportTaskClosed,
    ReportUnlinked,
    ReportUnrouted,
    ReportVerified,
    ShiftCoverageAlert,
    ShiftCoverageRestored,
)
from services.common.kafka import PLAINTEXT, FetchPacing, KafkaSecurity, broker_reachable, ensure_topics, new_reader

log = logging.getLogger(__name__)

TOPICS = [topics.REPORTS, topics.DISPATCH_STATUS, topics.SHIFTS]
Message = dict[str, Any]


def _at(value: datetime) -> str:
    return value.isoformat()


def translate(envelope: Envelope) -> Message | None:
    """The browser's message for an event, or None for events the screens ignore."""
    translation = _TRANSLATIONS.get(type(envelope.data))
    return translation(envelope) if translation is not None else None


def _report(report_id, event: str, at: datetime, **extra) -> Message:
    return {"type": "report", "event": event, "report_id": str(report_id), "at": _at(at), **extra}


def _dispatch(data, step: str, at: datetime) -> Message:
    return {
        "type": "dispatch",
        "step": step,
        "report_id": str(data.report_id),
        "dispatch_id": str(data.dispatch_id),
        "agency": data.agency,
        "at": _at(at),
    }


def _report_received(envelope: Envelope) -> Message:
    data = envelope.data
    return {
        "type": "report",
        "event": "received",
        "report_id": str(data.report_id),
        "kind": data.kind,
        "category": data.category,
        "channel": data.channel,
        "verification": data.verification,
        "kecamatan": data.location.kecamatan if data.location else None,
        "at": _at(data.received_at),
    }


def _report_routed(envelope: Envelope) -> Message:
    data = envelope.data
    return {
        "type": "report",
        "event": "routed",
        "report_id": str(data.report_id),
        "at": _at(data.routed_at),
        "dispatches": [
            {"dispatch_id": str(d.dispatch_id), "agency": d.agency, "role": d.role} for d in data.dispatches
        ],
    }


def _report_unrouted(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(data.report_id, "unrouted", data.at)


def _report_linked(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(data.report_id, "linked", data.linked_at, incident_report_id=str(data.incident_report_id))


def _report_unlinked(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(data.report_id, "unlinked", data.unlinked_at)


def _report_verified(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(
        data.report_id, "verified", data.verified_at, verdict=data.verdict, operator_id=str(data.operator_id)
    )


def _report_assigned(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(
        data.report_id,
        "assigned",
        data.assigned_at,
        operator_id=str(data.operator_id),
        task_id=str(data.task_id),
        reason=data.reason,
    )


def _report_task_closed(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(
        data.report_id,
        "task_closed",
        data.closed_at,
        task_id=str(data.task_id),
        operator_id=data.operator_id and str(data.operator_id),
    )


def _report_stalled(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(data.report_id, "stalled", data.detected_at)


def _report_closed(envelope: Envelope) -> Message:
    data = envelope.data
    # No note: it is the operator's free text, fetched with the report when needed.
    return _report(
        data.report_id,
        "closed",
        data.closed_at,
        outcome=data.outcome,
        operator_id=data.operator_id and str(data.operator_id),
        linked_reports=[str(r) for r in data.linked_reports],
    )


def _report_reopened(envelope: Envelope) -> Message:
    data = envelope.data
    return _report(
        data.report_id,
        "reopened",
        data.reopened_at,
        operator_id=str(data.operator_id),
        linked_reports=[str(r) for r in data.linked_reports],
    )


def _dispatch_delivered(envelope: Envelope) -> Message:
    data = envelope.data
    return _dispatch(data, "delivered", data.delivered_at)


def _dispatch_failed(envelope: Envelope) -> Message:
    data = envelope.data
    return _dispatch(data, "failed", data.failed_at)


def _dispatch_acknowledged(envelope: Envelope) -> Message:
    data = envelope.data
    return _dispatch(data, "acknowledged", data.acknowledged_at)


def _dispatch_field_status(envelope: Envelope) -> Message | None:
    data = envelope.data
    if data.status not in ("on_the_way", "on_scene", "done"):
        return None
    return _dispatch(data, data.status, data.at)


def _dispatch_escalated(envelope: Envelope) -> Message:
    data = envelope.data
    return _dispatch(data, "resent" if data.step == "resent" else "escalated", data.escalated_at)


def _operator_shift(envelope: Envelope) -> Message:
    data = envelope.data
    event = envelope.type.removeprefix("id.go.blitarkab.e112.operator.").removesuffix(".v1")
    return {"type": "shift", "event": event, "operator_id": str(data.operator_id), "at": _at(data.at)}


def _shift_coverage_alert(envelope: Envelope) -> Message:
    data = envelope.data
    return {
        "type": "shift",
        "event": "coverage_alert",
        "shift": data.shift,
        "reason": data.reason,
        "needed": data.needed,
        "checked_in": data.checked_in,
        "at": _at(data.at),
    }


def _shift_coverage_restored(envelope: Envelope) -> Message:
    data = envelope.data
    return {"type": "shift", "event": "coverage_restored", "shift": data.shift, "at": _at(data.at)}


# Event types not here (dispatch requests, holds, roster changes, ...) are not shown live.
_TRANSLATIONS: dict[type[Event], Callable[[Envelope], Message | None]] = {
    ReportReceived: _report_received,
    ReportRouted: _report_routed,
    ReportUnrouted: _report_unrouted,
    ReportLinked: _report_linked,
    ReportUnlinked: _report_unlinked,
    ReportVerified: _report_verified,
    ReportAssigned: _report_assigned,
    ReportTaskClosed: _report_task_closed,
    ReportStalled: _report_stalled,
    ReportClosed: _report_closed,
    ReportReopened: _report_reopened,
    DispatchDelivered: _dispatch_delivered,
    DispatchFailed: _dispatch_failed,
    DispatchAcknowledged: _dispatch_acknowledged,
    DispatchFieldStatus: _dispatch_field_status,
    DispatchEscalated: _dispatch_escalated,
    OperatorCheckedIn: _operator_shift,
    OperatorCheckedOut: _operator_shift,
    OperatorStatusChanged: _operator_shift,
    OperatorStillCheckedIn: _operator_shift,
    ShiftCoverageAlert: _shift_coverage_alert,
    ShiftCoverageRestored: _shift_coverage_restored,
}


class Subscription:
    def __init__(self, size: int):
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue(size)
        self.overflowed = False

    def offer(self, message: Message | None) -> None:
        if message is None:  # the end, after what is waiting; a full queue is dropped for it
            if self.queue.full():
                while not self.queue.empty():
                    self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A browser that cannot keep up is told to reload everything instead of
            # holding an ever longer backlog in this process.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait({"type": "resync"})

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            message = await self.queue.get()
            if message is None:
                return
            if message.get("type") == "resync":
                self.overflowed = False
            yield message


class Broadcaster:
    """Fan-out to the SSE streams of this replica."""

    def __init__(self, queue_size: int, metrics: "LiveMetrics"):
        self.queue_size = queue_size
        self.metrics = metrics
        self.subscribers: set[Subscription] = set()
        self.closed = False
        self.feed_live = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @contextlib.asynccontextmanager
    async def subscribe(self):
        subscription = Subscription(self.queue_size)
        if self.closed:
            subscription.offer(None)
        self.subscribers.add(subscription)
        self.metrics.streams.set(len(self.subscribers))
        try:
            yield subscription
        finally:
            self.subscribers.discard(subscription)
            self.metrics.streams.set(len(self.subscribers))

    def publish(self, message: Message) -> None:
        self.metrics.messages.labels(message["type"]).inc()
        for subscription in list(self.subscribers):
            subscription.offer(message)

    def set_feed(self, live: bool) -> None:
        if live != self.feed_live:
            self.feed_live = live
            self.metrics.feed_live.set(1 if live else 0)
            self.publish({"type": "feed", "live": live})

    def close(self) -> None:
        """End every stream (at shutdown: an open SSE response would hold it up)."""
        self.closed = True
        for subscription in list(self.subscribers):
            subscription.offer(None)

    def close_soon(self) -> None:
        """close() from a signal handler."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.close)


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.streams = Gauge("e112_console_streams", "Open live-update streams (browsers)", registry=registry)
        self.messages = Counter(
            "e112_console_live_messages_total", "Live messages sent to browsers, by type", ["type"], registry=registry
        )
        self.feed_live = Gauge(
            "e112_console_feed_live", "1 while the console reads the event topics, 0 while it cannot", registry=registry
        )


class LiveFeed:
    def __init__(
        self,
        *,
        bootstrap: str,
        broadcaster: Broadcaster,
        partitions: int,
        fetch_max_wait_ms: int,
        idle_fetch_max_wait_ms: int | None = None,
        idle_after_seconds: float = 5.0,
        check_every: float = 5.0,
        security: KafkaSecurity = PLAINTEXT,
    ):
        self.bootstrap = bootstrap
        self.security = security
        self.broadcaster = broadcaster
        self.partitions = partitions
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.idle_fetch_max_wait_ms = idle_fetch_max_wait_ms or fetch_max_wait_ms
        self.idle_after_seconds = idle_after_seconds
        self.check_every = check_every
        self.assigned = asyncio.Event()  # tests wait for it before producing

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._consume()
            except (KafkaError, OSError, TimeoutError) as exc:
                self.broadcaster.set_feed(False)
                log.warning("live feed interrupted; retrying", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _consume(self) -> None:
        await ensure_topics(self.bootstrap, TOPICS, self.partitions, security=self.security)
        consumer = new_reader(
            self.bootstrap,
            "e112-console",
            self.security,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            metadata_max_age_ms=5_000,
        )
        await consumer.start()
        try:
            await consumer.topics()  # the cluster's metadata, for the partitions below
            assignment = [TopicPartition(t, p) for t in TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
            consumer.assign(assignment)
            await consumer.seek_to_end(*assignment)
            for tp in assignment:  # resolve the end now, so nothing produced after this is missed
                await consumer.position(tp)
            self.assigned.set()
            self.broadcaster.set_feed(True)
            log.info("live feed reading", extra={"fields": {"partitions": len(assignment)}})
            loop = asyncio.get_running_loop()
            next_check = loop.time() + self.check_every
            pacing = FetchPacing(
                consumer,
                busy_ms=self.fetch_max_wait_ms,
                idle_ms=self.idle_fetch_max_wait_ms,
                idle_after=self.idle_after_seconds,
            )
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                pacing.saw(sum(map(len, batch.values())))
                for records in batch.values():
                    for record in records:
                        self._forward(record)
                if loop.time() >= next_check:
                    next_check = loop.time() + self.check_every
                    self.broadcaster.set_feed(await broker_reachable(consumer))
        finally:
            await consumer.stop()

    def _forward(self, record) -> None:
        try:
            envelope = decode(record.headers, record.value, record.key)
        except InvalidEvent:
            return  # not ours to dead-letter: the services that act on it do
        message = translate(envelope)
        if message is not None:
            self.broadcaster.publish(message)
