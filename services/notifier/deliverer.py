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
import collections
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas import topics
from schemas.catalog import AGENCIES
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


@dataclass
class Way:
    """The channel an attempt goes by, and the ones passed over on the way to it."""

    channel: str | None
    target: str | None
    channel_attempts: int
    tried: list[str]
    errors: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Attempt:
    number: int  # of the dispatch's attempts, this one included
    on_channel: int  # of this channel's attempts, this one included
    result: Result
    duration_ms: int
    closed_breaker: bool


def _choose_channel(dispatch: DueDispatch, config: AgencyConfig, channels: dict[str, Channel]) -> Way:
    """The dispatch's current channel, or the next one the agency can be reached on.
    Channels it cannot be reached on (no URL, no address, removed from its list) are
    passed over without an attempt, each with why."""
    tried, errors = list(dispatch.channels_tried), list(dispatch.channel_errors)
    channel = dispatch.channel or next_channel(config.channels, tried)
    way = Way(channel, None, dispatch.channel_attempts, tried, errors)
    while way.channel is not None:
        sender = channels.get(way.channel)
        if sender is None or way.channel not in config.channels:
            reason = "not one of the agency's channels"
        else:
            way.target, reason = sender.target(config)
            if way.target:
                return way
        way.skipped.append((way.channel, reason))
        way.errors.append(f"{way.channel}: {reason}")
        way.tried.append(way.channel)
        way.channel, way.channel_attempts = next_channel(config.channels, way.tried), 0
    return way


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
        concurrency: int = 64,
        concurrency_per_agency: int = 16,
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
        # Each agency has its own share of the slots: an endpoint that answers slowly
        # (or not at all, until the timeout) holds at most its share, never the others'.
        self.concurrency_per_agency = min(concurrency_per_agency, concurrency)
        self._in_flight_by_agency: collections.Counter[str] = collections.Counter()
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
                            # Due now yet not claimed: its agency's slots are all taken
                            # (or another replica holds it). A slot that frees wakes the loop.
                            next_due = queue.seconds_until_next_due or None
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
        by_agency = {a: self.concurrency_per_agency - self._in_flight_by_agency[a] for a in AGENCIES}
        async with self.pool.acquire() as conn:
            due = await store.claim_due(conn, by_agency, free, now, now + timedelta(seconds=self.lease_seconds))
        for dispatch in due:
            task = asyncio.create_task(self._deliver_safely(dispatch))
            self._in_flight.add(task)
            self._in_flight_by_agency[dispatch.agency] += 1
            task.add_done_callback(functools.partial(self._done, dispatch.agency))
        return free, len(due)

    def _done(self, agency: str, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._in_flight_by_agency[agency] -= 1
        # A slot is free. Under load, claim for several slots at once rather than one
        # query per finished attempt: when half of them are free, overall or the agency's.
        if len(self._in_flight) <= self.concurrency // 2 or self._in_flight_by_agency[agency] == (
            self.concurrency_per_agency // 2
        ):
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
        way = _choose_channel(dispatch, config, self.channels)
        if way.channel is None:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._record_skipped(conn, dispatch, way.skipped, now)
                await self._finish(conn, dispatch, "failed", None, dispatch.attempts, way.errors, now)
            return
        breaker = self.breakers[dispatch.agency] if way.channel == "webhook" else None
        if breaker is not None and not breaker.allow(now.timestamp()):
            await self._postpone(dispatch, way, breaker, now)
            return

        started = time.perf_counter()
        result = await self.channels[way.channel].send(way.target, dispatch, config, now)
        attempt = Attempt(
            number=dispatch.attempts + 1,
            on_channel=way.channel_attempts + 1,
            result=result,
            duration_ms=elapsed_ms(started),
            closed_breaker=self._update_breaker(breaker, dispatch.agency, dispatch.dispatch_id, result.verdict, now),
        )
        outcome, error = self._outcome(attempt)
        self.metrics.attempts.labels(dispatch.agency, way.channel, outcome).inc()
        if outcome == "delivered" and not way.skipped and not attempt.closed_breaker:
            await self._finish_delivered(dispatch, way, attempt, now)
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await self._record_skipped(conn, dispatch, way.skipped, now)
            await store.record_attempt(
                conn,
                dispatch_id=dispatch.dispatch_id,
                attempt=attempt.number,
                channel=way.channel,
                target=way.target,
                started_at=now,
                duration_ms=attempt.duration_ms,
                outcome=outcome,
                status_code=result.status_code,
                error=error,
            )
            if outcome == "delivered":
                await self._finish(conn, dispatch, "delivered", way.channel, attempt.number, way.errors, now)
            elif outcome == "retry":
                await self._retry_later(conn, dispatch, way, attempt, error, now)
            else:
                await self._next_channel_or_fail(conn, dispatch, config, way, attempt, error, now)
            if attempt.closed_breaker:
                await store.bring_forward(conn, dispatch.agency, "webhook", now)

    def _outcome(self, attempt: Attempt) -> tuple[str, str | None]:
        """delivered, retry (on this channel, later), gave_up or permanent (the next
        channel); with the error to record."""
        verdict, error = attempt.result.verdict, attempt.result.error
        if verdict is Verdict.DELIVERED:
            return "delivered", error
        if verdict is Verdict.RETRYABLE and not self.policy.gives_up(attempt.on_channel):
            return "retry", error
        if verdict is Verdict.RETRYABLE:
            return "gave_up", f"{error} (after {attempt.on_channel} attempts)"
        return "permanent", error

    async def _finish_delivered(self, dispatch: DueDispatch, way: Way, attempt: Attempt, now: datetime) -> None:
        """The common end: recorded with the others finishing now, in one statement."""
        announce = (update_outcome_record if dispatch.kind == "update" else outcome_record)(
            dispatch, "delivered", way.channel, attempt.number, None, now
        )
        delivered = store.Delivered(
            dispatch.dispatch_id,
            attempt.number,
            way.channel,
            way.target,
            way.errors,
            now,
            attempt.duration_ms,
            attempt.result.status_code,
            announce,
            now,
        )
        if await self.finisher.submit(delivered):
            self._count_finished(dispatch, "delivered", way.channel, attempt.number, now)

    async def _postpone(self, dispatch: DueDispatch, way: Way, breaker, now: datetime) -> None:
        """The agency's breaker is open: no attempt, the dispatch waits for its next trial."""
        until = datetime.fromtimestamp(breaker.postpone_until(now.timestamp()), now.tzinfo)
        self.metrics.postponed.labels(dispatch.agency).inc()
        async with self.pool.acquire() as conn, conn.transaction():
            await self._record_skipped(conn, dispatch, way.skipped, now)
            await self._wait(
                conn, dispatch, way, dispatch.attempts, way.channel_attempts, until, None, "breaker open", now
            )

    async def _retry_later(
        self, conn, dispatch: DueDispatch, way: Way, attempt: Attempt, error: str | None, now: datetime
    ) -> None:
        retry_at = now + timedelta(seconds=self.policy.delay(attempt.on_channel))
        why = f"{way.channel}: {error}"
        await self._wait(conn, dispatch, way, attempt.number, attempt.on_channel, retry_at, error, why, now)

    async def _wait(
        self,
        conn,
        dispatch: DueDispatch,
        way: Way,
        attempts: int,
        channel_attempts: int,
        until: datetime,
        error: str | None,
        why: str,
        now: datetime,
    ) -> None:
        """The dispatch stays on its channel until `until` (postponed, or a retry later),
        announced held (saying `why`) if that is too late for a first delivery."""
        await store.update_progress(
            conn,
            dispatch,
            channel=way.channel,
            channels_tried=way.tried,
            attempts=attempts,
            channel_attempts=channel_attempts,
            channel_errors=way.errors,
            next_attempt_at=until,
            error=error,
        )
        await self._announce_if_held(conn, dispatch, why, attempts, until, now)

    async def _next_channel_or_fail(
        self,
        conn,
        dispatch: DueDispatch,
        config: AgencyConfig,
        way: Way,
        attempt: Attempt,
        error: str | None,
        now: datetime,
    ) -> None:
        """This channel gave up (or refused for good): the agency's next one, due now, or
        failed when there is none."""
        way.errors.append(f"{way.channel}: {error}")
        way.tried.append(way.channel)
        following = next_channel(config.channels, way.tried)
        if following is None:
            await self._finish(conn, dispatch, "failed", way.channel, attempt.number, way.errors, now)
            return
        await store.update_progress(
            conn,
            dispatch,
            channel=following,
            channels_tried=way.tried,
            attempts=attempt.number,
            channel_attempts=0,
            channel_errors=way.errors,
            next_attempt_at=now,
            error=error,
        )
        log.info(
            "channel gave up; trying the next",
            extra={
                "fields": {
                    "dispatch_id": str(dispatch.dispatch_id),
                    "agency": dispatch.agency,
                    "channel": way.channel,
                    "next_channel": following,
                }
            },
        )

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
