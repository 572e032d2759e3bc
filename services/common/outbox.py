"""The transactional outbox: write events with the effect, publish them after.

`enqueue` runs inside the caller's transaction. `OutboxRelay` publishes committed rows
in id order and marks them published once the broker has acknowledged them (acks=all).
It wakes on the NOTIFY that the insert trigger sends at commit, with a polling timer as
the fallback. Only one relay per service publishes at a time (a PostgreSQL advisory
lock held on its connection), so replicas neither double-publish nor reorder; if the
holder dies its connection closes, the lock frees and another replica takes over.

A broker may lose writes it has acknowledged: the development broker (Tansu) keeps
nothing across a restart, and a production cluster can lose a partition's tail in an
unclean leader election. An event acknowledged but not yet read would then be gone for
good, and the readers cannot know. So a published row is kept for a window
(`retention_seconds`, OUTBOX_RETENTION_SECONDS, 10 minutes by default) with the
partition and offset the broker gave it, and the leading relay watches the partitions
it wrote to: every `loss_check_interval` seconds it asks the broker where each one
ends (one ListOffsets request). A healthy log never ends at or before an offset it
acknowledged (compared with the first offset of the relay's latest write there: see
_replay_lost), and never acknowledges an offset twice (seen at the next write); when
one does, the relay marks every retained row it had put on that partition pending
again, and publishes them again in id order (a topic that is gone is recreated first).
The copies carry the same ce_id, so every consumer's inbox drops those it had already
processed (at-least-once, by design). The offsets acknowledged are kept in memory and,
at each start of leadership, seeded from the retained rows, so a relay that restarted
along with the broker still sees the loss.
What was published longer ago than the window, or by a relay of another service on a
shared topic, is not watched: the window bounds the loss, not every loss.

A crash between the broker's ack and the update republishes the same rows with the
same ce_id: consumers deduplicate here too.
"""

import asyncio
import json
import logging
import time
from collections.abc import Iterable

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.envelope import KafkaRecord
from services.common.kafka import PLAINTEXT, KafkaSecurity, ensure_topics, new_producer, new_reader

log = logging.getLogger(__name__)


async def wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Wait for `event` at most `seconds`. Not `asyncio.wait_for`: on Python 3.11 it can
    swallow a cancellation that lands as the wait ends, and the loop never stops."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


async def enqueue(conn: asyncpg.Connection, records: Iterable[KafkaRecord]) -> None:
    """Write `records` to the outbox, in this order (ids follow it: the relay publishes
    in id order), in one statement: a row each was a statement and a trigger call each,
    the most frequent statement of a surge (bench --profile)."""
    records = list(records)
    if not records:
        return
    await conn.execute(
        """
        INSERT INTO outbox (topic, key, headers, value)
        SELECT topic, key, headers::jsonb, value
        FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bytea[])
             WITH ORDINALITY AS r(topic, key, headers, value, n)
        ORDER BY n
        """,
        [r.topic for r in records],
        [r.key for r in records],
        [headers_json(r) for r in records],
        [r.value for r in records],
    )


def headers_json(record: KafkaRecord) -> str:
    """The `outbox.headers` column of `record`: `[[name, utf-8 value], …]`."""
    return json.dumps([[n, v.decode("utf-8", "backslashreplace")] for n, v in record.headers])


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.published = Counter(
            "e112_outbox_published_total", "Events the outbox relay published", ["topic"], registry=registry
        )
        self.replayed = Counter(
            "e112_outbox_replayed_total",
            "Events the outbox relay published again because the broker lost them after acknowledging",
            ["topic"],
            registry=registry,
        )
        self.pending = Gauge("e112_outbox_pending", "Events written but not yet published", registry=registry)
        self.oldest_age = Gauge(
            "e112_outbox_oldest_age_seconds", "Age of the oldest unpublished event", registry=registry
        )
        self.publish_failures = Counter(
            "e112_outbox_publish_failures_total", "Relay rounds that failed to publish", registry=registry
        )


class OutboxRelay:
    def __init__(
        self,
        *,
        dsn: str,
        schema: str,
        bootstrap: str,
        topics: list[str],
        partitions: int,
        metrics: OutboxMetrics,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        retention_seconds: float = 600.0,
        cleanup_interval: float = 30.0,
        loss_check_interval: float = 2.0,
        security: KafkaSecurity = PLAINTEXT,
    ):
        self.dsn = dsn
        self.security = security
        self.schema = schema
        self.bootstrap = bootstrap
        self.topics = topics
        self.partitions = partitions
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention_seconds = retention_seconds
        self.cleanup_interval = cleanup_interval
        self.loss_check_interval = loss_check_interval
        self._wake = asyncio.Event()
        self._lock_key = f"e112-outbox-{schema}"
        self.is_leader = False
        self.last_error: str | None = None
        # Per partition written while leading: (the first offset of the latest write the
        # broker acknowledged there, the highest offset it acknowledged). And the
        # partitions that then acknowledged an offset at or below that highest one.
        self._acked: dict[TopicPartition, tuple[int, int]] = {}
        self._suspect: set[TopicPartition] = set()
        # Topics the broker had at its last metadata answer (the loss check asks at least
        # every `loss_check_interval`): a batch for these alone is sent without asking.
        self._present: set[str] = set()

    async def run(self) -> None:
        """Publish until cancelled, riding out broker and database outages."""
        backoff = 0.2
        while True:
            try:
                await self._lead_and_publish()
            except asyncio.CancelledError:
                raise
            except (
                KafkaError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                TimeoutError,
            ) as exc:
                self.metrics.publish_failures.inc()
                message = f"{type(exc).__name__}: {exc}"
                if message != self.last_error:
                    log.warning("outbox relay interrupted; will retry", extra={"fields": {"error": message}})
                self.last_error = message
                self.is_leader = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.2

    async def _lead_and_publish(self) -> None:
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        producer = reader = None
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_key):
                await asyncio.sleep(self.poll_interval)  # another replica is publishing
            self.is_leader = True
            await conn.add_listener(f"{self.schema}_outbox", lambda *_: self._wake.set())
            producer = new_producer(self.bootstrap, client_id=f"e112-{self.schema}-outbox", security=self.security)
            await producer.start()
            await ensure_topics(self.bootstrap, self.topics, self.partitions, security=self.security)
            # Asks the broker where the partitions end; no group, reads nothing.
            reader = new_reader(
                self.bootstrap,
                f"e112-{self.schema}-outbox-offsets",
                self.security,
                request_timeout_ms=10_000,
                retry_backoff_ms=200,
            )
            await reader.start()
            await self._seed_acked(conn)
            if self.last_error:
                log.info("outbox relay publishing again")
                self.last_error = None
            gauged_at = cleaned_at = checked_at = 0.0
            while True:
                self._wake.clear()
                if self._suspect or time.monotonic() - checked_at >= self.loss_check_interval:
                    await self._replay_lost(conn, producer, reader)
                    checked_at = time.monotonic()
                if time.monotonic() - cleaned_at >= self.cleanup_interval:
                    await conn.execute(
                        "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
                        float(self.retention_seconds),
                    )
                    cleaned_at = time.monotonic()
                published = await self._publish_batch(conn, producer)
                if published < self.batch_size:
                    # The backlog gauges once a second at most: under load the relay
                    # publishes many small batches, and each would pay for the query.
                    if time.monotonic() - gauged_at >= 1.0:
                        await self._refresh_backlog(conn)
                        gauged_at = time.monotonic()
                    await wait_or_timeout(self._wake, min(self.poll_interval, self.loss_check_interval))
        finally:
            self.is_leader = False
            self._acked.clear()  # another replica may publish now: what it acknowledges is not seen here
            self._suspect.clear()
            self._present.clear()
            try:
                if reader is not None:
                    await reader.stop()
                if producer is not None:
                    await producer.stop()  # its sends in flight end before another replica leads
                await conn.close(timeout=2)
            finally:
                # A stop cancelled again while it waits on the broker (stop_for_sure
                # repeats its cancel) must still give up the lock, or no other replica
                # of this service ever publishes while this process lives.
                if not conn.is_closed():
                    conn.terminate()

    async def _publish_batch(self, conn: asyncpg.Connection, producer) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, headers, value FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
            self.batch_size,
        )
        if not rows:
            return 0
        wanted = {row["topic"] for row in rows}
        if not wanted <= self._present:
            await self._ensure_topics_exist(wanted, producer)
        await self._send(conn, producer, rows)
        for row in rows:
            self.metrics.published.labels(row["topic"]).inc()
        return len(rows)

    async def _send(self, conn: asyncpg.Connection, producer, rows: list[asyncpg.Record]) -> None:
        """Publish `rows` in order, wait for every acknowledgement, then mark the rows
        published with where the broker put them (one UPDATE for the batch)."""
        futures = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in orjson.loads(row["headers"])]
            futures.append(await producer.send(row["topic"], value=row["value"], key=row["key"], headers=headers))
        placed = await asyncio.gather(*futures)  # in send order: offsets grow per partition
        # `id = ANY($1)` beside the join: with the join alone, the prepared statement's
        # generic plan reads the whole table (every retained row) to mark a batch, and
        # the marking cost grew with the retention window (bench --profile).
        await conn.execute(
            "UPDATE outbox SET published_at = now(), kafka_partition = m.partition, kafka_offset = m.kafka_offset "
            "FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS m(id, partition, kafka_offset) "
            "WHERE outbox.id = m.id AND outbox.id = ANY($1::bigint[])",
            [row["id"] for row in rows],
            [m.partition for m in placed],
            [m.offset for m in placed],
        )
        written: dict[TopicPartition, tuple[int, int]] = {}
        for m in placed:
            written[m.topic_partition] = (written.get(m.topic_partition, (m.offset,))[0], m.offset)
        for tp, (first, highest) in written.items():
            if first <= self._acked.get(tp, (-1, -1))[1]:
                # Offsets only grow in a healthy log: this one restarted below what it
                # had acknowledged (the end offset check misses it once it grows past).
                self._suspect.add(tp)
            else:
                self._acked[tp] = (first, highest)

    async def _seed_acked(self, conn: asyncpg.Connection) -> None:
        """What was acknowledged before this leadership (this relay's restart, or
        another replica's), from the retained rows."""
        # The rows of one write share their published_at (one UPDATE): the latest write's
        # first offset is the least offset at the partition's latest published_at.
        rows = await conn.fetch(
            "SELECT topic, kafka_partition, min(kafka_offset) FILTER (WHERE published_at = latest) AS first, "
            "max(kafka_offset) AS highest "
            "FROM (SELECT topic, kafka_partition, kafka_offset, published_at, "
            "max(published_at) OVER (PARTITION BY topic, kafka_partition) AS latest FROM outbox "
            "WHERE published_at >= now() - make_interval(secs => $1)) AS retained "
            "GROUP BY topic, kafka_partition",
            float(self.retention_seconds),
        )
        self._acked = {TopicPartition(r["topic"], r["kafka_partition"]): (r["first"], r["highest"]) for r in rows}
        self._suspect.clear()

    async def _replay_lost(self, conn: asyncpg.Connection, producer, reader: AIOKafkaConsumer) -> None:
        """Mark pending again the retained rows of every partition that lost acknowledged
        writes. One metadata and one ListOffsets request when nothing is lost."""
        if not self._acked:
            return
        # Recreate a topic that is gone: asked for the end of a partition that does not
        # exist, the reader would retry until its timeout.
        metadata = await self._ensure_topics_exist({tp.topic for tp in self._acked}, producer)
        present = [tp for tp in self._acked if tp.partition in (metadata.partitions_for_topic(tp.topic) or ())]
        ends = await reader.end_offsets(present) if present else {}
        # A healthy log ends after the last offset it acknowledged, but Tansu answers
        # with the first offset of its last record batch, plus one. So the end is
        # compared with the first offset of the relay's latest write to the partition:
        # that write's batches (and any later one) start there or after. A tail lost
        # within that write shows at the relay's next write there (_send).
        lost = [tp for tp, (first, _) in self._acked.items() if tp in self._suspect or ends.get(tp, -1) <= first]
        for tp in lost:
            _, acked = self._acked.pop(tp)
            self._suspect.discard(tp)
            # Marked pending again in the table, not sent from here: the next batches
            # publish them in id order ahead of newer rows, and a relay interrupted
            # half-way through (the broker that just lost them often fails the first
            # writes too) still has them pending when it leads again, instead of rows
            # whose stale offsets a log regrown past them would vouch for.
            status = await conn.execute(
                "UPDATE outbox SET published_at = NULL, kafka_partition = NULL, kafka_offset = NULL "
                "WHERE topic = $1 AND kafka_partition = $2 AND published_at IS NOT NULL",
                tp.topic,
                tp.partition,
            )
            replayed = int(status.split()[-1])
            self.metrics.replayed.labels(tp.topic).inc(replayed)
            # Topic, partition and counts only: keys and values can hold personal data.
            log.warning(
                "the broker lost events it had acknowledged; publishing them again",
                extra={
                    "fields": {
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "end": ends.get(tp),
                        "acked": acked,
                        "replayed": replayed,
                    }
                },
            )

    async def _ensure_topics_exist(self, wanted: set[str], producer) -> ClusterMetadata:
        """Ask the broker (not the producer's cache) whether the topics exist, and create
        the missing ones before sending. A broker that restarted empty (Tansu keeps
        nothing) would otherwise take the producer's writes for topics it no longer
        has, on its old metadata, and lose them.

        Asked before a batch only for a topic not seen at the last answer, and by every
        loss check: under a surge the relays publish many small batches, and a metadata
        request each was work for the relay and the broker on every one. A broker that
        restarts empty between two checks may take a batch for a topic it lost; the
        next check (at most `loss_check_interval` later) finds the topic gone or the log
        too short, recreates it and publishes the rows again. Returns the metadata as it
        was before any creation."""
        metadata = ClusterMetadata()
        if not await producer.client._metadata_update(metadata, sorted(wanted)):
            raise KafkaError("no broker answered a metadata request")
        if not wanted <= metadata.topics():
            await ensure_topics(
                self.bootstrap, sorted(wanted | set(self.topics)), self.partitions, security=self.security
            )
        self._present |= wanted
        return metadata

    async def _refresh_backlog(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age "
            "FROM outbox WHERE published_at IS NULL"
        )
        self.metrics.pending.set(row["n"])
        self.metrics.oldest_age.set(float(row["age"]))
