"""The transactional outbox: write events with the effect, publish them after.

`enqueue` runs inside the caller's transaction. `OutboxRelay` publishes committed rows
in id order and deletes them once the broker has acknowledged them (acks=all). It
wakes on the NOTIFY that the insert trigger sends at commit, with a polling timer as
the fallback. Only one relay per service publishes at a time (a PostgreSQL advisory
lock held on its connection), so replicas neither double-publish nor reorder; if the
holder dies its connection closes, the lock frees and another replica takes over.

A crash between the broker's ack and the delete republishes the same rows with the
same ce_id: consumers deduplicate (at-least-once, by design).
"""

import asyncio
import json
import logging
import time
from collections.abc import Iterable

import asyncpg
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.envelope import KafkaRecord
from services.common.kafka import ensure_topics, new_producer

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
    rows = [
        (r.topic, r.key, json.dumps([[n, v.decode("utf-8", "backslashreplace")] for n, v in r.headers]), r.value)
        for r in records
    ]
    if rows:
        await conn.executemany("INSERT INTO outbox (topic, key, headers, value) VALUES ($1, $2, $3::jsonb, $4)", rows)


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.published = Counter(
            "e112_outbox_published_total", "Events the outbox relay published", ["topic"], registry=registry
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
    ):
        self.dsn = dsn
        self.schema = schema
        self.bootstrap = bootstrap
        self.topics = topics
        self.partitions = partitions
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._lock_key = f"e112-outbox-{schema}"
        self.is_leader = False
        self.last_error: str | None = None

    async def run(self) -> None:
        """Publish until cancelled, riding out broker and database outages."""
        backoff = 0.2
        while True:
            try:
                await self._lead_and_publish()
            except asyncio.CancelledError:
                raise
            except (
                KafkaError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                TimeoutError,
            ) as exc:  # fmt: skip
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
        producer = None
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_key):
                await asyncio.sleep(self.poll_interval)  # another replica is publishing
            self.is_leader = True
            await conn.add_listener(f"{self.schema}_outbox", lambda *_: self._wake.set())
            producer = new_producer(self.bootstrap, client_id=f"e112-{self.schema}-outbox")
            await producer.start()
            await ensure_topics(self.bootstrap, self.topics, self.partitions)
            if self.last_error:
                log.info("outbox relay publishing again")
                self.last_error = None
            gauged_at = 0.0
            while True:
                self._wake.clear()
                published = await self._publish_batch(conn, producer)
                if published < self.batch_size:
                    # The backlog gauges once a second at most: under load the relay
                    # publishes many small batches, and each would pay for the query.
                    if time.monotonic() - gauged_at >= 1.0:
                        await self._refresh_backlog(conn)
                        gauged_at = time.monotonic()
                    await wait_or_timeout(self._wake, self.poll_interval)
        finally:
            self.is_leader = False
            if producer is not None:
                await producer.stop()
            await conn.close(timeout=2)

    async def _publish_batch(self, conn: asyncpg.Connection, producer) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, headers, value FROM outbox ORDER BY id LIMIT $1", self.batch_size
        )
        if not rows:
            return 0
        await self._ensure_topics_exist({row["topic"] for row in rows}, producer)
        futures = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
            futures.append(await producer.send(row["topic"], value=row["value"], key=row["key"], headers=headers))
        await asyncio.gather(*futures)
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        for row in rows:
            self.metrics.published.labels(row["topic"]).inc()
        return len(rows)

    async def _ensure_topics_exist(self, wanted: set[str], producer) -> None:
        """Ask the broker (not the producer's cache) whether the topics exist, and create
        the missing ones before sending. A broker that restarted empty (Tansu keeps
        nothing) would otherwise take the producer's writes for topics it no longer
        has, on its old metadata, and lose them. One metadata round trip per batch, for
        the batch's topics only: asking for all of them cost the relay and the broker
        three times as much CPU, paid on every batch under load (bench/)."""
        metadata = ClusterMetadata()
        if not await producer.client._metadata_update(metadata, sorted(wanted)):
            raise KafkaError("no broker answered a metadata request")
        if not wanted <= metadata.topics():
            await ensure_topics(self.bootstrap, sorted(wanted | set(self.topics)), self.partitions)

    async def _refresh_backlog(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age FROM outbox"
        )
        self.metrics.pending.set(row["n"])
        self.metrics.oldest_age.set(float(row["age"]))
