"""How far behind the pipeline's consumer groups are: the events on their topics they
have not committed yet, asked of the broker.

The watchdog reads it to tell late from lost. While a group works through a backlog,
a dispatch that has not arrived yet is on its way, and re-driving it would only add a
copy to the very queue that is late. A broker that lost its log leaves no backlog
(nothing is left to read), so the watchdog then re-drives as it must.

Committed offsets are read per partition with a group-less consumer under each group's
id (`committed()`: an OffsetFetch, no join, no rebalance): the admin client's
list_consumer_group_offsets fails to decode Tansu's answer.
"""

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.common.kafka import PLAINTEXT, KafkaSecurity, new_reader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchedGroup:
    group_id: str
    # Its topics: every topic that starts with one of these (`e112.dispatch.` for the notifier).
    topic_prefixes: tuple[str, ...]


class BacklogProbe:
    def __init__(
        self, bootstrap: str, groups: list[WatchedGroup], *, timeout: float = 5.0, security: KafkaSecurity = PLAINTEXT
    ):
        self.bootstrap = bootstrap
        self.security = security
        self.groups = groups
        self.timeout = timeout
        self._reader: AIOKafkaConsumer | None = None
        self._committed: dict[str, AIOKafkaConsumer] = {}
        self._asking = asyncio.Lock()  # one question at a time: they share the clients

    async def backlog(self) -> dict[str, int] | None:
        """Events each group has yet to commit; None when the broker cannot say now."""
        async with self._asking:
            try:
                return await asyncio.wait_for(self._ask(), self.timeout)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.info("consumer backlog unknown", extra={"fields": {"error": type(exc).__name__}})
                await self.close()
                return None

    async def _ask(self) -> dict[str, int]:
        # A new reader each time: its start fetches every topic's partitions, where a
        # kept client would only know the topics of its first look (topics() does not
        # refresh what partitions_for_topic reads).
        await self._close_reader()
        reader = await self._client(None)
        topics = await reader.topics()
        result = {}
        for group in self.groups:
            partitions = [
                TopicPartition(topic, p)
                for topic in sorted(t for t in topics if t.startswith(group.topic_prefixes))
                for p in sorted(reader.partitions_for_topic(topic) or ())
            ]
            ends = await reader.end_offsets(partitions) if partitions else {}
            member = await self._client(group.group_id)
            behind = 0
            for tp in partitions:
                committed = await member.committed(tp)
                behind += max(0, ends.get(tp, 0) - (committed or 0))
            result[group.group_id] = behind
        return result

    async def _client(self, group_id: str | None) -> AIOKafkaConsumer:
        existing = self._reader if group_id is None else self._committed.get(group_id)
        if existing is not None:
            return existing
        client = new_reader(
            self.bootstrap,
            f"e112-backlog-{group_id or 'ends'}",
            self.security,
            group_id=group_id,
            request_timeout_ms=5_000,
            metadata_max_age_ms=10_000,
        )
        await client.start()
        if group_id is None:
            self._reader = client
        else:
            self._committed[group_id] = client
        return client

    async def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    async def close(self) -> None:
        clients = [c for c in (self._reader, *self._committed.values()) if c is not None]
        self._reader, self._committed = None, {}
        for client in clients:
            try:
                await client.stop()
            except Exception:  # noqa: BLE001 - closing a broken client must not mask the cause
                pass
