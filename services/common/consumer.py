"""The consumer loop every service uses: decode, deduplicate, act, then commit.

Policy, chosen on purpose (at-least-once with idempotent effects):
- A partition's events of one fetch are handled in one PostgreSQL transaction that also
  records their ce_ids in the inbox; a redelivered event finds its ce_id there and does
  nothing. If that transaction fails, each event gets a transaction of its own, so a
  failure is retried or dead-lettered for that event alone.
- Offsets are committed only after every event of the batch is handled.
- A database or network failure is transient: the same event is retried with backoff,
  holding its partition (order kept, nothing skipped).
- An event that can never be handled (not a CloudEvent, data that breaks its schema,
  a handler error that is not transient) is dead-lettered to `e112.deadletter` through
  the outbox with the error, so one poison message cannot stall a partition.
- Events of a type this code does not know are skipped (the contract lets producers
  add types), and so are known types missing from the service's handler table
  (services/common/handlers.py): read from the ce_type header before decoding, with no
  transaction and no inbox row. Most events on `e112.reports` and `e112.dispatch-status` are for someone
  else: handled, each would cost every consumer a commit (bench/).
- On a rebalance, partitions being taken away wait for the batch in hand to finish
  and commit (the lock), so no other member redoes it.
"""

import asyncio
import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas import topics
from schemas.envelope import Envelope, InvalidEvent, KafkaRecord, decode
from services.common.handlers import HandlerTable
from services.common.kafka import PLAINTEXT, FetchPacing, KafkaSecurity, broker_reachable, ensure_topics, new_consumer
from services.common.outbox import enqueue, wait_or_timeout

log = logging.getLogger(__name__)


TRANSIENT_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    # A pool connection caught mid-operation by a PostgreSQL restart
    # (MagicStack/asyncpg#784): the next try gets a fresh connection.
    asyncpg.InternalClientError,
)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.events = Counter(
            "e112_consumer_events_total",
            "Events a consumer finished, by outcome (handled, duplicate, skipped, deadlettered)",
            ["consumer", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "e112_consumer_retries_total", "Transient failures retried", ["consumer"], registry=registry
        )
        self.paused = Gauge(
            "e112_consumer_paused",
            "1 while the consumer holds off fetching (its service's queue is full)",
            ["consumer"],
            registry=registry,
        )
        self.lag_seconds = Histogram(
            "e112_consumer_event_age_seconds",
            "Time from an event's ce_time to the end of its handling",
            ["consumer"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )


class _FinishBatchOnRevoke(ConsumerRebalanceListener):
    def __init__(self, batch_lock: asyncio.Lock):
        self.batch_lock = batch_lock

    async def on_partitions_revoked(self, revoked):
        async with self.batch_lock:  # the batch in hand finishes and commits first
            pass

    async def on_partitions_assigned(self, assigned):
        pass


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        handler: HandlerTable,
        bootstrap: str,
        fetch_max_wait_ms: int,
        session_timeout_ms: int,
        idle_fetch_max_wait_ms: int | None = None,
        idle_after_seconds: float = 5.0,
        metrics: ConsumerMetrics,
        topics_: list[str] | None = None,
        pattern: str | None = None,
        create_topics: list[str] | None = None,
        partitions: int = 3,
        max_records: int = 200,
        inbox_retention_days: float = 35,
        pause_while: Callable[[], bool] | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ):
        """`pause_while`: while it says so, the consumer keeps its group membership but
        fetches nothing (backpressure from the service's own queue)."""
        if (topics_ is None) == (pattern is None):
            raise ValueError("give topics or a pattern")
        self.name = name
        self.pool = pool
        self.handler = handler
        self.bootstrap = bootstrap
        self.security = security
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.idle_fetch_max_wait_ms = idle_fetch_max_wait_ms or fetch_max_wait_ms
        self.idle_after_seconds = idle_after_seconds
        self.session_timeout_ms = session_timeout_ms
        self.metrics = metrics
        self.topics = topics_
        self.pattern = pattern
        self.create_topics = create_topics or topics_ or []
        self.partitions = partitions
        self.max_records = max_records
        self.handles = handler.handles
        self.inbox_retention_days = inbox_retention_days
        self.pause_while = pause_while
        self._pruned_at = 0.0
        self._consumer = None
        self._batch_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._stranded_since: float | None = None

    async def ready(self) -> bool:
        return await broker_reachable(self._consumer)

    async def shutdown(self, task: asyncio.Task, grace: float = 10.0) -> None:
        """Stop `task` (running `run()`): a batch in hand may finish and commit within
        `grace` seconds; a consumer that is only waiting (for the broker, a group join
        or new messages) is cancelled at once, since it holds no unfinished work."""
        self._stopping.set()
        if not self._batch_lock.locked():
            task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
        except asyncio.CancelledError:
            pass
        await asyncio.gather(task, return_exceptions=True)

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = new_consumer(
                self.bootstrap,
                f"e112-{self.name}",
                f"e112-{self.name}",
                self.fetch_max_wait_ms,
                self.session_timeout_ms,
                security=self.security,
            )
            try:
                await self._start(consumer)
                backoff = 0.5
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning(
                    "consumer lost the broker; restarting",
                    extra={"fields": {"consumer": self.name, "error": f"{type(exc).__name__}: {exc}"}},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            except Exception as exc:  # noqa: BLE001 - a consumer task must never end silently
                # Anything else (an asyncpg client error while dead-lettering during a
                # PostgreSQL restart, a client bug) would end this task while /readyz
                # only said "broker: false": the service would stop consuming for good.
                # The uncommitted batch is fetched again after the restart; the inbox dedups.
                log.error(
                    "consumer failed; restarting it",
                    extra={
                        "fields": {
                            "consumer": self.name,
                            "error": type(exc).__name__,
                            "where": "".join(traceback.format_tb(exc.__traceback__, limit=-3)),
                        }
                    },
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                self._consumer = None
                try:
                    await consumer.stop()
                except Exception:  # noqa: BLE001 - stopping a broken client must not mask the cause
                    pass

    async def _start(self, consumer) -> None:
        await ensure_topics(self.bootstrap, self.create_topics, self.partitions, security=self.security)
        listener = _FinishBatchOnRevoke(self._batch_lock)
        if self.pattern:
            consumer.subscribe(pattern=self.pattern, listener=listener)
        else:
            consumer.subscribe(self.topics, listener=listener)
        await consumer.start()
        self._consumer = consumer
        log.info("consumer started", extra={"fields": {"consumer": self.name}})

    async def _consume(self, consumer) -> None:
        """Fetch and handle batches until stopped (or the client fails: run() restarts it)."""
        pacing = FetchPacing(
            consumer,
            busy_ms=self.fetch_max_wait_ms,
            idle_ms=self.idle_fetch_max_wait_ms,
            idle_after=self.idle_after_seconds,
        )
        while not self._stopping.is_set():
            self._apply_backpressure(consumer)
            batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
            pacing.saw(sum(map(len, batch.values())))
            if batch:
                await self._process_batch(consumer, batch)
            await rewind_past_end(consumer, self.name)
            self._restart_if_stranded(consumer)
            await self._prune_inbox()

    async def _process_batch(self, consumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # The partitions of a batch are handled side by side, each in order (as replicas
        # owning them would): one partition at a time left the pool and the database
        # waiting on each other (bench/). Then one commit for what was finished.
        async with self._batch_lock:
            results = await asyncio.gather(
                *(self._process_partition(records) for records in batch.values()), return_exceptions=True
            )
            offsets = {
                tp: done.offset + 1 for tp, done in zip(batch, results, strict=True) if isinstance(done, ConsumerRecord)
            }
            if offsets:
                await consumer.commit(offsets)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def _process_partition(self, records: list[ConsumerRecord]) -> ConsumerRecord | None:
        """Handle one partition's records in order; the last one finished. All of them
        in one transaction when that works; one transaction each when it does not."""
        if len(records) > 1 and not self._stopping.is_set() and await self._process_together(records):
            return records[-1]
        # One by one, where each copy would cost a transaction to find: the copies are
        # looked up first (a failed batch, or a lone record, is rarely one of a flood).
        seen = await self._already_processed(records) if len(records) > 1 else set()
        return await self._process_one_by_one(records, seen)

    async def _process_together(self, records: list[ConsumerRecord]) -> bool:
        """Handle `records` (one partition's, in order) in one transaction: every ce_id
        claimed in one statement, the handler table run over the claimed events, one
        commit. False, with nothing written, when anything goes wrong: the caller then takes
        them one by one, where a transient failure is retried and an event that can
        never be handled goes alone to the dead letters.

        Why: a transaction per event cost each consumed event a BEGIN, an inbox
        INSERT, a COMMIT and a connection release, most of a report's round trips; under
        a surge a fetch brings tens of events per partition (bench/)."""
        envelopes: list[Envelope] = []
        outcomes: dict[str, int] = {}
        for record in records:
            if self._not_for_us(record):
                outcomes["skipped"] = outcomes.get("skipped", 0) + 1
                continue
            try:
                envelope = decode(record.headers, record.value, record.key)
            except InvalidEvent:
                return False  # a dead letter: one by one
            if envelope.data is None:
                outcomes["skipped"] = outcomes.get("skipped", 0) + 1
                continue
            envelopes.append(envelope)
        handled: list[Envelope] = []
        try:
            if envelopes:  # else all skipped unread: no transaction at all
                async with self.pool.acquire() as conn, conn.transaction():
                    claimed = await claim_all(conn, self.name, [e.id for e in envelopes])
                    for envelope in envelopes:
                        if envelope.id not in claimed:
                            outcomes["duplicate"] = outcomes.get("duplicate", 0) + 1
                            continue
                        claimed.discard(envelope.id)  # a second copy in this very batch is a duplicate
                        handled.append(envelope)
                    if handled:
                        await self.handler.handle_all(conn, handled)
        except Exception as exc:  # noqa: BLE001 - rolled back: the one-by-one path sorts it out
            log.info(
                "batch rolled back; handling its events one by one",
                extra={"fields": {"consumer": self.name, "events": len(records), "error": type(exc).__name__}},
            )
            return False
        outcomes["handled"] = len(handled)
        for outcome, count in outcomes.items():
            if count:
                self.metrics.events.labels(self.name, outcome).inc(count)
        now = datetime.now(UTC)
        for envelope in handled:
            if envelope.time is not None:
                self.metrics.lag_seconds.labels(self.name).observe(max(0.0, (now - envelope.time).total_seconds()))
        return True

    async def _process_one_by_one(self, records: list[ConsumerRecord], seen: set[str]) -> ConsumerRecord | None:
        done = None
        for record in records:
            if _header(record, "ce_id") in seen:
                self.metrics.events.labels(self.name, "duplicate").inc()
                done = record
                continue
            if not await self._process_with_retry(record):
                break  # stopping: leave the rest uncommitted for the next owner
            done = record
        return done

    async def _already_processed(self, records: list[ConsumerRecord]) -> set[str]:
        """The ce_ids of `records` this consumer's inbox holds already, in one query.

        Why: copies come in floods, not one by one: an outbox relay re-publishing what a
        broker lost (minutes of events at once), the watchdog re-driving every dispatch
        of an agency that was down. Found one by one, each copy costs a transaction to
        find its inbox row; the chaos suite's broker restart left the notifier minutes
        behind on them that way. An id found here was committed, so skipping it is safe; one that is not
        (or a failed lookup) goes the usual way, where claim() still decides."""
        ids = [i for r in records if (i := _header(r, "ce_id")) and self._wanted(r)]
        if not ids:
            return set()
        try:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[])", self.name, ids
                )
        except TRANSIENT_ERRORS:
            return set()
        return {r["event_id"] for r in rows}

    def _apply_backpressure(self, consumer) -> None:
        """Pause every assigned partition while `pause_while()` holds, resume after.
        Paused, getmany() still runs (heartbeats, rebalances) and returns nothing."""
        if self.pause_while is None:
            return
        if self.pause_while():
            unpaused = consumer.assignment() - consumer.paused()  # a rebalance may have added some
            if unpaused:
                consumer.pause(*unpaused)
                self.metrics.paused.labels(self.name).set(1)
        elif consumer.paused():
            consumer.resume(*consumer.paused())
            self.metrics.paused.labels(self.name).set(0)

    async def _prune_inbox(self) -> None:
        """Forget, once an hour, the ce_ids handled longer ago than the retention: the
        inbox would otherwise grow for years, and every lookup with it."""
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        try:
            async with self.pool.acquire() as conn:
                await prune_inbox(conn, self.name, self.inbox_retention_days)
        except TRANSIENT_ERRORS:
            self._pruned_at = 0.0  # the next loop tries again

    def _wanted(self, record: ConsumerRecord) -> bool:
        return _header(record, "ce_type") in self.handles

    async def _process_with_retry(self, record: ConsumerRecord) -> bool:
        delay = 0.2
        while True:
            try:
                outcome = await self._process(record)
                self.metrics.events.labels(self.name, outcome).inc()
                return True
            except TRANSIENT_ERRORS as exc:
                self.metrics.retries.labels(self.name).inc()
                log.warning(
                    "transient failure; retrying the same event",
                    extra={
                        "fields": {
                            "consumer": self.name,
                            "topic": record.topic,
                            "offset": record.offset,
                            "error": f"{type(exc).__name__}: {exc}",
                        }
                    },
                )
                if self._stopping.is_set():
                    return False
                await wait_or_timeout(self._stopping, delay)
                delay = min(delay * 2, 10)

    def _not_for_us(self, record: ConsumerRecord) -> bool:
        """A known CloudEvent type this service's handler does nothing with: skipped
        unread. No ce_type at all is not a CloudEvent: decode() dead-letters it."""
        return (ce_type := _header(record, "ce_type")) is not None and ce_type not in self.handles

    async def _process(self, record: ConsumerRecord) -> str:
        if self._not_for_us(record):
            return "skipped"
        try:
            envelope = decode(record.headers, record.value, record.key)
        except InvalidEvent as exc:
            dedup_key = dict(record.headers).get("ce_id", b"").decode(errors="replace") or (
                f"{record.topic}/{record.partition}/{record.offset}"
            )
            return await self._deadletter(record, dedup_key, str(exc))
        if envelope.data is None:
            return "skipped"
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if not await claim(conn, self.name, envelope.id):
                    return "duplicate"
                await self.handler(conn, envelope)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - a non-transient failure is dead-lettered, not lost
            # Where it failed, but not the message's later lines: a schema error quotes
            # its input, which may be a caller's name or number.
            log.warning(
                "event could not be handled; dead-lettering",
                extra={
                    "fields": {
                        "consumer": self.name,
                        "ce_id": envelope.id,
                        "ce_type": envelope.type,
                        "error": first_line(exc),
                        "where": "".join(traceback.format_tb(exc.__traceback__, limit=-3)),
                    }
                },
            )
            return await self._deadletter(record, envelope.id, f"{type(exc).__name__}: {exc}")
        if envelope.time is not None:
            self.metrics.lag_seconds.labels(self.name).observe(
                max(0.0, (datetime.now(UTC) - envelope.time).total_seconds())
            )
        return "handled"

    async def _deadletter(self, record: ConsumerRecord, dedup_key: str, error: str) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            # Claimed under its own key, never the ce_id itself: a re-drive after the
            # fix (services/common/redrive.py) deletes this claim and the event is
            # handled, once.
            if not await claim(conn, self.name, deadletter_claim(dedup_key)):
                return "duplicate"
            extra = await self.on_deadletter(conn, record, dedup_key, error)
            await enqueue(conn, [deadletter_record(record, consumer=self.name, error=error), *extra])
        log.warning(
            "event dead-lettered",
            extra={
                "fields": {
                    "consumer": self.name,
                    "topic": record.topic,
                    "offset": record.offset,
                    "error": first_line(error),
                }
            },
        )
        return "deadlettered"

    async def on_deadletter(
        self, conn: asyncpg.Connection, record: ConsumerRecord, dedup_key: str, error: str
    ) -> list[KafkaRecord]:
        """Hook for a service: more effects of a dead letter, in its transaction (e.g.
        telling the operators); returns more events to publish with it."""
        return []

    def _restart_if_stranded(self, consumer) -> None:
        """Start over (a new client, the run loop's restart) when this member leads the
        group, has no partitions and its topics have some.

        Why: after a broker restarted empty, a group that joined while the topics were
        missing was seen (Tansu, aiokafka 0.14) to be assigned nothing, again at every
        rejoin, although the topics had been recreated: the leader's client assigns from
        metadata that still shows them without partitions. Such a group would consume
        nothing, for good. At most every STRANDED_RESTART_EVERY seconds, since a leader
        may also be a spare member of a group larger than its partitions."""
        coordinator = getattr(consumer, "_coordinator", None)  # aiokafka has no public hook for this
        if (
            consumer.assignment()
            or getattr(coordinator, "_group_subscription", None) is None  # not the leader
            or not any(consumer.partitions_for_topic(t) for t in consumer.subscription())
        ):
            self._stranded_since = None
            return
        now = asyncio.get_running_loop().time()
        if self._stranded_since is None or now - self._stranded_since < STRANDED_RESTART_EVERY:
            self._stranded_since = self._stranded_since or now
            return
        self._stranded_since = None
        raise KafkaError("group leader without partitions while its topics have some")


STRANDED_RESTART_EVERY = 10.0
PRUNE_EVERY_SECONDS = 3600.0


async def prune_inbox(conn: asyncpg.Connection, consumer: str, retention_days: float) -> int:
    """Delete this consumer's inbox rows older than the retention; how many."""
    status = await conn.execute(
        "DELETE FROM inbox WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)",
        consumer,
        retention_days * 86400.0,
    )
    return int(status.split()[-1])


async def rewind_past_end(consumer, name: str) -> None:
    """Seek to the beginning every assigned partition whose position is past its end.

    Why: a broker that restarts empty (Tansu keeps nothing in memory) recreates the
    topics from offset 0, but a consumer that stays up keeps its old positions, and a
    commit of the batch in hand can even reach the new broker and outlive the group's
    rejoin. Tansu does not answer OFFSET_OUT_OF_RANGE (which would reset the position
    by `auto_offset_reset`): it answers empty, so without this the consumer silently
    skips the first new messages of each partition until the offsets pass the old
    ones. A partition's end (high watermark) comes with every fetch answer, so the
    check costs no request; a healthy log never ends before a position. A recreated
    topic holds only new messages, and the inbox drops any already handled."""
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        position = await consumer.position(tp)
        if position > end:
            log.warning(
                "position past the end of the partition (the broker lost its log); reading it from the beginning",
                extra={
                    "fields": {
                        "consumer": name,
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "position": position,
                        "end": end,
                    }
                },
            )
            await consumer.seek_to_beginning(tp)


def _header(record: ConsumerRecord, wanted: str) -> str | None:
    for name, value in record.headers or ():
        if name == wanted:
            return bytes(value).decode(errors="replace")
    return None


DEADLETTER_CLAIM_PREFIX = "deadletter:"


def deadletter_claim(dedup_key: str) -> str:
    """The inbox key under which a consumer records that it dead-lettered an event."""
    return DEADLETTER_CLAIM_PREFIX + dedup_key


def first_line(error: object, limit: int = 300) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    prefix = f"{type(error).__name__}: " if isinstance(error, BaseException) else ""
    return (prefix + line)[:limit]


async def claim_all(conn: asyncpg.Connection, consumer: str, event_ids: list[str]) -> set[str]:
    """Record the events as processed by this consumer; the ids that were not yet."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING "
        "RETURNING event_id",
        consumer,
        event_ids,
    )
    return {r["event_id"] for r in rows}


async def claim(conn: asyncpg.Connection, consumer: str, event_id: str) -> bool:
    """Record the event as processed by this consumer; False if it already was."""
    inserted = await conn.fetchval(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event_id,
    )
    return bool(inserted)


def deadletter_record(record: ConsumerRecord, *, consumer: str, error: str) -> KafkaRecord:
    """The original message, unchanged, with headers saying where it came from and why
    it failed, on e112.deadletter under its original key."""
    headers = [(n, bytes(v)) for n, v in (record.headers or ())]
    headers += [
        ("e112_error", error[:2000].encode()),
        ("e112_consumer", consumer.encode()),
        ("e112_original_topic", record.topic.encode()),
        ("e112_original_partition", str(record.partition).encode()),
        ("e112_original_offset", str(record.offset).encode()),
    ]
    return KafkaRecord(topic=topics.DEADLETTER, key=record.key or b"", headers=headers, value=record.value or b"")
