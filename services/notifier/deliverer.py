"""Delivers queued dispatches to the agencies' webhooks.

Works from the `dispatches` table, never from memory: it claims due rows with a lease,
posts each to its agency's webhook, records the attempt, and either finishes the
dispatch (publishing `dispatch.delivered` or `dispatch.failed` through the outbox, in
the same transaction) or stores the time of the next try.

The webhook request is a CloudEvents HTTP binary-mode POST: the dispatch JSON as the
body, `ce-*` headers, and `Idempotency-Key: <dispatch_id>`; the same dispatch may
arrive more than once (a retry after a lost answer) and the agency deduplicates by
that key.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime

import asyncpg
import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas import topics
from schemas.envelope import derived_event_id, encode
from schemas.events import DispatchDelivered, DispatchFailed
from services.common.consumer import TRANSIENT_ERRORS
from services.common.outbox import enqueue
from services.notifier import store
from services.notifier.policy import RetryPolicy, Verdict, classify_status

log = logging.getLogger(__name__)
SOURCE = "e112/notifier"
CHANNEL = "webhook"


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.attempts = Counter(
            "e112_dispatch_delivery_attempts_total", "Delivery attempts, by agency and outcome",
            ["agency", "outcome"], registry=registry,
        )  # fmt: skip
        self.finished = Counter(
            "e112_dispatches_finished_total", "Dispatches finished, by agency and state (delivered, failed)",
            ["agency", "state"], registry=registry,
        )  # fmt: skip
        self.delivery_seconds = Histogram(
            "e112_dispatch_delivery_seconds", "Time from report received to the agency's webhook accepting it",
            ["agency"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900), registry=registry,
        )  # fmt: skip
        self.pending = Gauge("e112_dispatches_pending", "Dispatches not yet delivered or failed", registry=registry)


class Deliverer:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        schema: str,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
        metrics: DeliveryMetrics,
        concurrency: int = 16,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
    ):
        self.pool = pool
        self.dsn = dsn
        self.schema = schema
        self.client = client
        self.policy = policy
        self.metrics = metrics
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()

    async def run(self) -> None:
        while True:
            listener = None
            try:
                listener = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
                await listener.add_listener(f"{self.schema}_dispatches", lambda *_: self._wake.set())
                while True:
                    self._wake.clear()
                    await self._round()
                    async with self.pool.acquire() as conn:
                        next_due = await store.seconds_until_next_due(conn)
                        self.metrics.pending.set(
                            await conn.fetchval("SELECT count(*) FROM dispatches WHERE state = 'pending'")
                        )
                    wait = self.poll_interval if next_due is None else min(self.poll_interval, next_due)
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                log.warning("deliverer lost the database; retrying", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(1)
            finally:
                if listener is not None:
                    await listener.close(timeout=2)

    async def _round(self) -> None:
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return
        async with self.pool.acquire() as conn:
            due = await store.claim_due(conn, free, self.lease_seconds)
        for dispatch in due:
            task = asyncio.create_task(self._deliver_safely(dispatch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free

    async def drain(self) -> None:
        """Wait for attempts in flight (at shutdown); unfinished ones come due again."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=10)

    async def _deliver_safely(self, dispatch: store.DueDispatch) -> None:
        try:
            await self.deliver(dispatch)
        except TRANSIENT_ERRORS as exc:
            # The lease expires and the dispatch comes due again: nothing lost.
            log.warning(
                "could not record a delivery; it will be retried",
                extra={"fields": {"dispatch_id": str(dispatch.dispatch_id), "error": type(exc).__name__}},
            )

    async def deliver(self, dispatch: store.DueDispatch) -> None:
        async with self.pool.acquire() as conn:
            url = await store.webhook_url(conn, dispatch.agency)
        started = datetime.now(UTC)
        clock = time.perf_counter()
        status_code: int | None = None
        if url is None:
            verdict, error = Verdict.PERMANENT, "no webhook configured for this agency"
        else:
            verdict, status_code, error = await self._post(url, dispatch)
        duration_ms = int((time.perf_counter() - clock) * 1000)

        if verdict is Verdict.RETRYABLE and self.policy.gives_up(dispatch.attempts):
            outcome, error = "gave_up", f"{error} (after {dispatch.attempts} attempts)"
        else:
            outcome = {Verdict.DELIVERED: "delivered", Verdict.RETRYABLE: "retry", Verdict.PERMANENT: "permanent"}[
                verdict
            ]
        self.metrics.attempts.labels(dispatch.agency, outcome).inc()

        async with self.pool.acquire() as conn, conn.transaction():
            await store.record_attempt(
                conn, dispatch_id=dispatch.dispatch_id, attempt=dispatch.attempts, channel=CHANNEL,
                target=url, started_at=started, duration_ms=duration_ms, outcome=outcome,
                status_code=status_code, error=error,
            )  # fmt: skip
            if outcome == "retry":
                await store.schedule_retry(conn, dispatch.dispatch_id, self.policy.delay(dispatch.attempts), error)
                return
            state = "delivered" if outcome == "delivered" else "failed"
            if not await store.finish(conn, dispatch.dispatch_id, state, error):
                return  # finished by another attempt already
            await enqueue(conn, [self._status_record(dispatch, state, error)])
        self.metrics.finished.labels(dispatch.agency, state).inc()
        if state == "delivered":
            self.metrics.delivery_seconds.labels(dispatch.agency).observe(
                (datetime.now(UTC) - dispatch.received_at).total_seconds()
            )
        log.info("dispatch finished", extra={"fields": {
            "dispatch_id": str(dispatch.dispatch_id), "report_id": str(dispatch.report_id),
            "agency": dispatch.agency, "state": state, "attempts": dispatch.attempts}})  # fmt: skip

    async def _post(self, url: str, dispatch: store.DueDispatch) -> tuple[Verdict, int | None, str | None]:
        headers = {
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": dispatch.event_id,
            "ce-source": dispatch.event_source,
            "ce-type": dispatch.event_type,
            "idempotency-key": str(dispatch.dispatch_id),
            "user-agent": "e112-notifier/0.1",
        }
        if dispatch.event_time:
            headers["ce-time"] = dispatch.event_time.isoformat().replace("+00:00", "Z")
        try:
            response = await self.client.post(url, content=dispatch.body, headers=headers)
        except httpx.InvalidURL as exc:
            return Verdict.PERMANENT, None, f"invalid URL: {exc}"
        except httpx.UnsupportedProtocol as exc:
            return Verdict.PERMANENT, None, f"unsupported URL: {exc}"
        except httpx.TimeoutException:
            return Verdict.RETRYABLE, None, "timeout"
        except httpx.HTTPError as exc:
            return Verdict.RETRYABLE, None, f"{type(exc).__name__}: {exc}"[:300]
        verdict = classify_status(response.status_code)
        error = None if verdict is Verdict.DELIVERED else f"HTTP {response.status_code}"
        return verdict, response.status_code, error

    @staticmethod
    def _status_record(dispatch: store.DueDispatch, state: str, error: str | None):
        now = datetime.now(UTC)
        if state == "delivered":
            event = DispatchDelivered(
                dispatch_id=dispatch.dispatch_id,
                report_id=dispatch.report_id,
                agency=dispatch.agency,
                channel=CHANNEL,
                attempts=dispatch.attempts,
                delivered_at=now,
            )
        else:
            event = DispatchFailed(
                dispatch_id=dispatch.dispatch_id,
                report_id=dispatch.report_id,
                agency=dispatch.agency,
                reason=error or "unknown",
                attempts=dispatch.attempts,
                failed_at=now,
            )
        # One status event per dispatch: its ce_id derives from the dispatch, so a
        # replay can never announce a second outcome under a new id.
        return encode(
            event,
            topic=topics.DISPATCH_STATUS,
            key=str(dispatch.report_id),
            source=SOURCE,
            event_id=derived_event_id(str(dispatch.dispatch_id), "outcome"),
            time=now,
        )
