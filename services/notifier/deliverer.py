"""Delivers queued dispatches to the agencies, channel by channel.

Works from the `dispatches` table, never from memory: it claims due rows with a lease
(store.claim_due), makes one attempt on the dispatch's current channel, records it,
and in the same transaction either finishes the dispatch (publishing
`dispatch.delivered` or `dispatch.failed` through the outbox), stores the time of the
next try, or moves it to the agency's next channel when this one gives up. A worker
killed mid-attempt loses nothing: the lease runs out and the dispatch comes due again.

A webhook request is a CloudEvents HTTP binary-mode POST: the dispatch JSON as the
body, `ce-*` headers, `Idempotency-Key: <dispatch_id>` and `E112-Signature`. The same
dispatch may arrive more than once (a retry after a lost answer, a re-send when it is
not acknowledged) and the agency deduplicates by that key.

An update to a dispatch (`dispatch.caller_added`, or a cancellation or closing notice;
see handler.py) is a row of kind "update" in the same queue and goes the same way,
under its own ce-type, ce-id and Idempotency-Key (the update's id); its outcome is
`dispatch.update_delivered` or `dispatch.update_failed`, so intake's watchdog can tell
a lost update from a slow one.

While an agency's webhook circuit breaker is open, its dispatches are postponed to
the breaker's next trial: no attempt, no count against the retry bound. When the
breaker closes, the postponed ones come due at once.

A dispatch whose next try (after a failure, or postponed by the breaker) comes later
than `held_after` from the report's receipt is announced once as `dispatch.held`: the
watchdog then knows it is not lost, and an operator is given the agency to phone.
"""

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas import topics
from schemas.envelope import KafkaRecord, derived_event_id, encode
from schemas.events import (
    DispatchCallerAdded,
    DispatchCancelled,
    DispatchClosed,
    DispatchDelivered,
    DispatchFailed,
    DispatchHeld,
    DispatchUpdateDelivered,
    DispatchUpdateFailed,
)
from services.common.consumer import TRANSIENT_ERRORS
from services.common.groupcommit import GroupCommit
from services.common.outbox import enqueue
from services.notifier import store
from services.notifier.agency_configs import AgencyConfigs
from services.notifier.breaker import Breakers, State
from services.notifier.channels import Result, elapsed_ms
from services.notifier.clock import Clock
from services.notifier.policy import RetryPolicy, Verdict, next_channel, trips_breaker
from services.notifier.store import AgencyConfig, DueDispatch

log = logging.getLogger(__name__)
SOURCE = "e112/notifier"


class Channel(Protocol):
    name: str

    def target(self, config: AgencyConfig) -> tuple[str | None, str]: ...

    async def send(self, target: str, dispatch: DueDispatch, config: AgencyConfig, now: datetime) -> Result: ...


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.attempts = Counter(
            "e112_dispatch_delivery_attempts_total",
            "Delivery attempts, by agency, channel and outcome",
            ["agency", "channel", "outcome"],
            registry=registry,
        )
        self.finished = Counter(
            "e112_dispatches_finished_total",
            "Dispatches finished, by agency and state (delivered, failed)",
            ["agency", "state"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "e112_dispatch_delivery_seconds",
            "Time from report received to the agency's endpoint accepting it",
            ["agency"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
            registry=registry,
        )
        self.updates_finished = Counter(
            "e112_dispatch_updates_finished_total",
            "Dispatch updates (another caller) finished, by agency and state (delivered, failed)",
            ["agency", "state"],
            registry=registry,
        )
        self.pending = Gauge("e112_dispatches_pending", "Dispatches not yet delivered or failed", registry=registry)
        self.held = Counter(
            "e112_dispatch_held_total",
            "Dispatches announced as held: not deliverable in time, an operator phones",
            ["agency"],
            registry=registry,
        )
        self.postponed = Counter(
            "e112_dispatch_postponed_total",
            "Attempts postponed by an open webhook circuit breaker",
            ["agency"],
            registry=registry,
        )
        self.breaker_open = Gauge(
            "e112_webhook_breaker_open",
            "1 while the agency's webhook circuit breaker is open or half-open",
            ["agency"],
            registry=registry,
        )


def outcome_record(
    dispatch: DueDispatch, state: str, channel: str | None, attempts: int, reason: str | None, now: datetime
) -> KafkaRecord:
    if state == "delivered":
        event = DispatchDelivered(
            dispatch_id=dispatch.dispatch_id,
            report_id=dispatch.report_id,
            agency=dispatch.agency,
            channel=channel or "unknown",
            attempts=attempts,
            delivered_at=now,
        )
    else:
        event = DispatchFailed(
            dispatch_id=dispatch.dispatch_id,
            report_id=dispatch.report_id,
            agency=dispatch.agency,
            reason=reason or "unknown",
            attempts=attempts,
            failed_at=now,
        )
    return _status_record(dispatch, event, now)


# An update's `update_type` in its outcome, by the ce_type of the event it delivers: the
# update rows the handler queues (handler.py), and no other.
UPDATE_TYPES = {
    DispatchCallerAdded.ce_type: "caller_added",
    DispatchCancelled.ce_type: "cancelled",
    DispatchClosed.ce_type: "closed",
}


def update_outcome_record(
    dispatch: DueDispatch, state: str, channel: str | None, attempts: int, reason: str | None, now: datetime
) -> KafkaRecord:
    """The outcome of an update (another caller, a cancellation or closing notice):
    `dispatch_id` of the row is the update's id, `update_of` the dispatch it updates."""
    common = dict(
        update_id=dispatch.dispatch_id,
        update_type=UPDATE_TYPES[dispatch.event_type],
        dispatch_id=dispatch.update_of,
        report_id=dispatch.report_id,
        new_report_id=dispatch.new_report_id,
        agency=dispatch.agency,
        attempts=attempts,
    )
    if state == "delivered":
        event = DispatchUpdateDelivered(**common, channel=channel or "unknown", delivered_at=now)
    else:
        event = DispatchUpdateFailed(**common, reason=reason or "unknown", failed_at=now)
    return _status_record(dispatch, event, now)


def held_record(
    dispatch: DueDispatch, reason: str, attempts: int, next_attempt_at: datetime, now: datetime
) -> KafkaRecord:
    event = DispatchHeld(
        dispatch_id=dispatch.dispatch_id,
        report_id=dispatch.report_id,
        agency=dispatch.agency,
        reason=reason[:300],
        attempts=attempts,
        held_at=now,
        next_attempt_at=next_attempt_at,
    )
    return encode(
        event,
        topic=topics.DISPATCH_STATUS,
        key=str(dispatch.report_id),
        source=SOURCE,
        event_id=derived_event_id(str(dispatch.dispatch_id), "held"),
        time=now,
    )


def _status_record(dispatch: DueDispatch, event, now: datetime) -> KafkaRecord:
    # One outcome per dispatch and round: its ce_id derives from both, so a replay can
    # never announce a second outcome under a new id, while a re-sent round's outcome
    # is news.
    discriminator = "outcome" if dispatch.round == 1 else f"outcome-{dispatch.round}"
    return encode(
        event,
        topic=topics.DISPATCH_STATUS,
        key=str(dispatch.report_id),
        source=SOURCE,
        event_id=derived_event_id(str(dispatch.dispatch_id), discriminator),
        time=now,
    )


class Deliverer:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        schema: str,
        channels: dict[str, Channel],
        policy: RetryPolicy,
        metrics: DeliveryMetrics,
        breakers: Breakers,
        clock: Clock,
        concurrency: int = 16,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        configs: AgencyConfigs | None = None,
        backpressure_at: int | None = None,
        held_after: timedelta = timedelta(seconds=5),
        finisher: GroupCommit[store.Delivered, bool],
    ):
        self.pool = pool
        # Delivered attempts are recorded together with those finishing at the same moment
        # (store.finish_delivered; its `run` is one of the service's loops).
        self.finisher = finisher
        self.configs = configs or AgencyConfigs(ttl_seconds=0)
        self.dsn = dsn
        self.schema = schema
        self.channels = channels
        self.policy = policy
        self.metrics = metrics
        self.breakers = breakers
        self.clock = clock
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()
        self.due_backlog = 0  # due and not yet taken, at the last look (at most a second old under load)
        self.backpressure_at = backpressure_at if backpressure_at is not None else 8 * concurrency
        self.held_after = held_after

    def overloaded(self) -> bool:
        """More dispatches due than a few rounds of attempts can take: the consumer then
        stops taking more from the topics until the queue is worked down. The backlog
        stays on the topics, where the watchdog sees it as the notifier's consumer lag
        and holds its re-drives back (a late dispatch is not a lost one); an agency that
        is down does not count, its retries wait for a later time, and neither do the
        re-sends of unacknowledged dispatches (they must not hold new emergencies back
        on the topics)."""
        return self.due_backlog > self.backpressure_at

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            listener = None
            try:
                listener = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
                await listener.add_listener(f"{self.schema}_dispatches", lambda *_: self._wake.set())
                gauge_at = 0.0
                while True:
                    self._wake.clear()
                    asked, claimed = await self._round()
                    next_due = None
                    nothing_due = asked > 0 and claimed == 0
                    if nothing_due or time.monotonic() - gauge_at >= 1.0:
                        # An attempt in flight wakes the loop when it finishes, so while
                        # any was claimed (or every slot is busy) the look at the queue
                        # for the next due time is skipped; the gauge is refreshed once a
                        # second at most.
                        async with self.pool.acquire() as conn:
                            queue = await store.queue_state(conn, self.clock.now())
                        self.metrics.pending.set(queue.pending)
                        self.due_backlog = queue.due
                        if nothing_due:
                            next_due = queue.seconds_until_next_due
                        gauge_at = time.monotonic()
                    wait = self.poll_interval if next_due is None else min(self.poll_interval, next_due)
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns normally when
                    # it is cancelled just as the wake-up comes, and the loop would never stop.
                    try:
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                log.warning("deliverer lost the database; retrying", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(1)
            except Exception:
                # Anything else must not end the loop: nothing would deliver again while the
                # service still looks ready. Seen under `make chaos` (PostgreSQL restarted):
                # asyncpg's InternalClientError "cannot switch to state 15; another operation
                # is in progress" from a pool release (MagicStack/asyncpg#784).
                log.exception("deliverer failed; restarting its loop")
                await asyncio.sleep(1)
            finally:
                if listener is not None:
                    with contextlib.suppress(Exception):  # a broken connection may fail to close
                        await listener.close(timeout=2)

    async def _round(self) -> tuple[int, int]:
        """Claim what is due for the free slots; (slots asked for, dispatches claimed)."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return 0, 0
        now = self.clock.now()
        async with self.pool.acquire() as conn:
            due = await store.claim_due(conn, free, now, now + timedelta(seconds=self.lease_seconds))
        for dispatch in due:
            task = asyncio.create_task(self._deliver_safely(dispatch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return free, len(due)

    def _done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        # A slot is free. Under load, claim for several slots at once rather than one
        # query per finished attempt; when few are in flight, at once.
        if len(self._in_flight) <= self.concurrency // 2:
            self._wake.set()

    async def drain(self) -> None:
        """Wait for attempts in flight (at shutdown); unfinished ones come due again."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=10)

    async def _deliver_safely(self, dispatch: DueDispatch) -> None:
        try:
            await self.deliver(dispatch)
        except TRANSIENT_ERRORS as exc:
            # The lease expires and the dispatch comes due again: nothing lost.
            log.warning(
                "could not record a delivery; it will be retried",
                extra={"fields": {"dispatch_id": str(dispatch.dispatch_id), "error": type(exc).__name__}},
            )

    async def deliver(self, dispatch: DueDispatch) -> None:
        config = await self.configs.read(self.pool, dispatch.agency)
        now = self.clock.now()
        tried, errors = list(dispatch.channels_tried), list(dispatch.channel_errors)
        channel_attempts = dispatch.channel_attempts
        channel = dispatch.channel or next_channel(config.channels, tried)
        skipped: list[tuple[str, str]] = []
        target = None
        # Channels this agency cannot be reached on (no URL, no address, removed from
        # its list) are passed over without an attempt, and said why.
        while channel is not None:
            sender = self.channels.get(channel)
            if sender is None or channel not in config.channels:
                reason = "not one of the agency's channels"
            else:
                target, reason = sender.target(config)
                if target:
                    break
            skipped.append((channel, reason))
            errors.append(f"{channel}: {reason}")
            tried.append(channel)
            channel, channel_attempts = next_channel(config.channels, tried), 0

        if channel is None:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._record_skipped(conn, dispatch, skipped, now)
                await self._finish(conn, dispatch, "failed", None, dispatch.attempts, errors, now)
            return

        breaker = self.breakers[dispatch.agency] if channel == "webhook" else None
        if breaker is not None and not breaker.allow(now.timestamp()):
            until = datetime.fromtimestamp(breaker.postpone_until(now.timestamp()), now.tzinfo)
            self.metrics.postponed.labels(dispatch.agency).inc()
            async with self.pool.acquire() as conn, conn.transaction():
                await self._record_skipped(conn, dispatch, skipped, now)
                await store.update_progress(
                    conn,
                    dispatch,
                    channel=channel,
                    channels_tried=tried,
                    attempts=dispatch.attempts,
                    channel_attempts=channel_attempts,
                    channel_errors=errors,
                    next_attempt_at=until,
                    error=None,
                )
                await self._announce_if_held(conn, dispatch, "breaker open", dispatch.attempts, until, now)
            return

        started = time.perf_counter()
        result = await self.channels[channel].send(target, dispatch, config, now)
        duration_ms = elapsed_ms(started)
        closed_again = self._update_breaker(breaker, dispatch.agency, dispatch.dispatch_id, result.verdict, now)

        attempts, channel_attempts = dispatch.attempts + 1, channel_attempts + 1
        error = result.error
        if result.verdict is Verdict.DELIVERED:
            outcome = "delivered"
        elif result.verdict is Verdict.RETRYABLE and not self.policy.gives_up(channel_attempts):
            outcome = "retry"
        elif result.verdict is Verdict.RETRYABLE:
            outcome, error = "gave_up", f"{error} (after {channel_attempts} attempts)"
        else:
            outcome = "permanent"
        self.metrics.attempts.labels(dispatch.agency, channel, outcome).inc()

        if outcome == "delivered" and not skipped and not closed_again:
            announce = (update_outcome_record if dispatch.kind == "update" else outcome_record)(
                dispatch, "delivered", channel, attempts, None, now
            )
            delivered = store.Delivered(
                dispatch.dispatch_id,
                attempts,
                channel,
                target,
                errors,
                now,
                duration_ms,
                result.status_code,
                announce,
                now,
            )
            if await self.finisher.submit(delivered):
                self._count_finished(dispatch, "delivered", channel, attempts, now)
            return

        async with self.pool.acquire() as conn, conn.transaction():
            await self._record_skipped(conn, dispatch, skipped, now)
            await store.record_attempt(
                conn,
                dispatch_id=dispatch.dispatch_id,
                attempt=attempts,
                channel=channel,
                target=target,
                started_at=now,
                duration_ms=duration_ms,
                outcome=outcome,
                status_code=result.status_code,
                error=error,
            )
            if outcome == "delivered":
                await self._finish(conn, dispatch, "delivered", channel, attempts, errors, now)
            elif outcome == "retry":
                retry_at = now + timedelta(seconds=self.policy.delay(channel_attempts))
                await store.update_progress(
                    conn,
                    dispatch,
                    channel=channel,
                    channels_tried=tried,
                    attempts=attempts,
                    channel_attempts=channel_attempts,
                    channel_errors=errors,
                    next_attempt_at=retry_at,
                    error=error,
                )
                await self._announce_if_held(conn, dispatch, f"{channel}: {error}", attempts, retry_at, now)
            else:
                errors.append(f"{channel}: {error}")
                tried.append(channel)
                following = next_channel(config.channels, tried)
                if following is None:
                    await self._finish(conn, dispatch, "failed", channel, attempts, errors, now)
                else:
                    await store.update_progress(
                        conn,
                        dispatch,
                        channel=following,
                        channels_tried=tried,
                        attempts=attempts,
                        channel_attempts=0,
                        channel_errors=errors,
                        next_attempt_at=now,
                        error=error,
                    )
                    log.info(
                        "channel gave up; trying the next",
                        extra={
                            "fields": {
                                "dispatch_id": str(dispatch.dispatch_id),
                                "agency": dispatch.agency,
                                "channel": channel,
                                "next_channel": following,
                            }
                        },
                    )
            if closed_again:
                await store.bring_forward(conn, dispatch.agency, "webhook", now)

    async def _announce_if_held(
        self, conn, dispatch: DueDispatch, reason: str, attempts: int, next_attempt_at: datetime, now: datetime
    ) -> None:
        """`dispatch.held`, once, when this first delivery will not be made in time."""
        if dispatch.kind != "dispatch" or dispatch.round != 1:
            return  # an update or a re-send: the dispatch itself was delivered
        if next_attempt_at - dispatch.received_at <= self.held_after:
            return
        if await store.mark_held(conn, dispatch.dispatch_id, now):
            await enqueue(conn, [held_record(dispatch, reason, attempts, next_attempt_at, now)])
            self.metrics.held.labels(dispatch.agency).inc()

    def _update_breaker(self, breaker, agency: str, dispatch_id, verdict: Verdict, now: datetime) -> bool:
        """Feed the attempt's result to the agency's webhook breaker; True if it closed."""
        if breaker is None:
            return False
        closed_again = False
        if verdict is Verdict.DELIVERED:
            closed_again = breaker.record_success()
        elif trips_breaker(verdict):
            if breaker.record_failure(now.timestamp(), dispatch_id):
                log.warning(
                    "webhook circuit breaker opened",
                    extra={"fields": {"agency": agency, "retry_in_s": round(breaker.retry_at - now.timestamp(), 1)}},
                )
        else:
            breaker.record_other()
        self.metrics.breaker_open.labels(agency).set(0 if breaker.state is State.CLOSED else 1)
        if closed_again:
            log.info("webhook circuit breaker closed", extra={"fields": {"agency": agency}})
        return closed_again

    @staticmethod
    async def _record_skipped(conn, dispatch: DueDispatch, skipped: list[tuple[str, str]], now: datetime) -> None:
        for channel, reason in skipped:
            await store.record_attempt(
                conn,
                dispatch_id=dispatch.dispatch_id,
                attempt=dispatch.attempts,
                channel=channel,
                target=None,
                started_at=now,
                duration_ms=0,
                outcome="skipped",
                status_code=None,
                error=reason,
            )

    async def _finish(
        self,
        conn,
        dispatch: DueDispatch,
        state: str,
        channel: str | None,
        attempts: int,
        errors: list[str],
        now: datetime,
    ) -> None:
        reason = "; ".join(errors) or None
        error = reason if state == "failed" else None
        finished = await store.finish(
            conn, dispatch, state=state, channel=channel, attempts=attempts, channel_errors=errors, error=error, now=now
        )
        if not finished:  # no longer this worker's to finish (acknowledged, or finished already)
            return
        if dispatch.kind == "update":
            # Not dispatch.delivered/failed: those speak of a dispatch, and the update's id
            # is not one.
            await enqueue(conn, [update_outcome_record(dispatch, state, channel, attempts, reason, now)])
        else:
            await enqueue(conn, [outcome_record(dispatch, state, channel, attempts, reason, now)])
        self._count_finished(dispatch, state, channel, attempts, now)

    def _count_finished(
        self, dispatch: DueDispatch, state: str, channel: str | None, attempts: int, now: datetime
    ) -> None:
        if dispatch.kind == "update":
            self.metrics.updates_finished.labels(dispatch.agency, state).inc()
            log.info(
                "dispatch update finished",
                extra={
                    "fields": {
                        "update_id": str(dispatch.dispatch_id),
                        "dispatch_id": str(dispatch.update_of),
                        "agency": dispatch.agency,
                        "state": state,
                        "channel": channel,
                        "attempts": attempts,
                    }
                },
            )
            return
        self.metrics.finished.labels(dispatch.agency, state).inc()
        if state == "delivered":
            self.metrics.delivery_seconds.labels(dispatch.agency).observe((now - dispatch.received_at).total_seconds())
        log.info(
            "dispatch finished",
            extra={
                "fields": {
                    "dispatch_id": str(dispatch.dispatch_id),
                    "report_id": str(dispatch.report_id),
                    "agency": dispatch.agency,
                    "state": state,
                    "channel": channel,
                    "attempts": attempts,
                    "round": dispatch.round,
                }
            },
        )
