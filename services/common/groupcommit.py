"""Group commit: writes submitted while one is running are done together in the next.

Under load, dozens of requests (intake's POSTs) or finished deliveries (the notifier's)
each want a short write at the same moment. One transaction each is a few statements and
a commit each, most of the database's work in a surge (bench --profile). A GroupCommit
queues each item; a few writers each take what is waiting and write it with one call of
the service's `write(conn, items)`, in one transaction (or, for a write that is one
statement, none). A submitter is answered once the write that holds its item has
committed, as before. Alone (a quiet night) an item is written at once, by itself:
nothing waits for a batch to fill.

If a batch fails for anything but an unavailable database, its items are written again
one by one, so that an item that cannot be written fails alone. Before the writers run
and after they stop (at shutdown, while the last requests and deliveries finish), each
submitter writes its own item.

Hand-written: asyncpg and the usual task libraries offer pools and queues but not this
(a batch boundary that follows the load, with per-item answers and isolation)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import asyncpg
from prometheus_client import CollectorRegistry, Histogram

from services.common.consumer import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommitMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.batch_size = Histogram(
            "e112_group_commit_items",
            "Items written in one write of a group commit (services/common/groupcommit.py), by writer",
            ["writer"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )


class _WriteYourself(Exception):
    """The writers stopped before this item was written: its submitter writes it."""


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        write: Callable[[asyncpg.Connection, list[Item]], Awaitable[list[Result]]],
        metrics: GroupCommitMetrics,
        *,
        writers: int = 2,
        batch_max: int = 64,
        transaction: bool = True,
    ) -> None:
        self.name, self.pool, self.write, self.metrics = name, pool, write, metrics
        self.writers, self.batch_max, self.transaction = writers, batch_max, transaction
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] = asyncio.Queue()
        self._running = False

    async def submit(self, item: Item) -> Result:
        """Write `item`; returns its result once the write that holds it has committed."""
        if not self._running:
            return await self._write_alone(item)
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, done))
        try:
            return await done
        except _WriteYourself:
            return await self._write_alone(item)

    async def run(self) -> None:
        """The writers, until cancelled. A batch being written then is finished first: a
        commit cancelled half-way would leave its items in doubt."""
        self._running = True
        try:
            await asyncio.gather(*(self._writer() for _ in range(self.writers)))
        finally:
            self._running = False
            while not self._queue.empty():
                _, done = self._queue.get_nowait()
                if not done.done():
                    done.set_exception(_WriteYourself())

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            in_flight = asyncio.ensure_future(self._write_batch(batch))
            try:
                await asyncio.shield(in_flight)
            except asyncio.CancelledError:
                await in_flight
                raise

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        self.metrics.batch_size.labels(self.name).observe(len(batch))
        try:
            results = await self._written([item for item, _ in batch])
        except TRANSIENT_ERRORS as exc:
            _answer(batch, exc)
        except Exception as exc:
            if len(batch) == 1:
                _answer(batch, exc)
                return
            log.warning(
                "a group commit failed; writing its items one by one",
                extra={"fields": {"writer": self.name, "items": len(batch), "error": type(exc).__name__}},
            )
            for entry in batch:
                await self._write_batch([entry])
        else:
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)

    async def _write_alone(self, item: Item) -> Result:
        self.metrics.batch_size.labels(self.name).observe(1)
        return (await self._written([item]))[0]

    async def _written(self, items: list[Item]) -> list[Result]:
        async with self.pool.acquire() as conn:
            if not self.transaction:
                return await self.write(conn, items)
            async with conn.transaction():
                return await self.write(conn, items)


def _answer(batch: list[tuple[object, asyncio.Future]], exc: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(exc)
