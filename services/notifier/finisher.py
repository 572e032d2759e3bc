"""Records successful deliveries together: one transaction for all that finish within a
few milliseconds of each other.

Under a surge most attempts succeed at once, and each one's bookkeeping (its attempt
row, the dispatch marked delivered, the `dispatch.delivered` event in the outbox) was a
transaction of its own: a pool checkout, BEGIN, three statements and a COMMIT per
dispatch, the largest share of the notifier's and PostgreSQL's work per report (bench/).
Here the attempts of a short window are written with one statement per table and one
commit. `record` returns once its delivery is committed, or raises what the commit
raised: the caller is then where it was with its own transaction (the lease runs out
and the dispatch is tried again; the agency deduplicates by the Idempotency-Key).

Only the plain case comes here: delivered on the attempt just made, with no channel
passed over and no earlier error. Everything else keeps its own transaction in
deliverer.py, where those branches are.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from schemas.envelope import KafkaRecord
from services.common.outbox import enqueue
from services.notifier.store import DueDispatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivered:
    dispatch: DueDispatch
    channel: str
    target: str
    attempts: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    now: datetime


class DeliveredBatch:
    def __init__(
        self,
        pool: asyncpg.Pool,
        outcome: Callable[[Delivered], KafkaRecord],
        on_finished: Callable[[Delivered], None],
        *,
        linger_seconds: float = 0.003,
        max_batch: int = 128,
    ):
        """`outcome`: the event announcing a delivery; `on_finished`: metrics and log
        for each delivery this batch finished (not one acknowledged meanwhile)."""
        self.pool = pool
        self.outcome = outcome
        self.on_finished = on_finished
        self.linger_seconds = linger_seconds
        self.max_batch = max_batch
        self._waiting: list[tuple[Delivered, asyncio.Future]] = []
        self._flush_soon: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task] = set()

    async def record(self, delivered: Delivered) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((delivered, future))
        if len(self._waiting) >= self.max_batch:
            self._flush()
        elif self._flush_soon is None:
            self._flush_soon = asyncio.get_running_loop().call_later(self.linger_seconds, self._flush)
        await future

    def _flush(self) -> None:
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.create_task(self._write(batch))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, batch: list[tuple[Delivered, asyncio.Future]]) -> None:
        items = [d for d, _ in batch]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                finished = await write_delivered(conn, items, self.outcome)
        except BaseException as exc:  # every waiter learns it; none is left hanging
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for delivered, future in batch:
            if delivered.dispatch.dispatch_id in finished:
                self.on_finished(delivered)
            if not future.done():
                future.set_result(None)


async def write_delivered(
    conn: asyncpg.Connection, items: list[Delivered], outcome: Callable[[Delivered], KafkaRecord]
) -> set[UUID]:
    """Record each attempt, mark the dispatches still pending delivered (a success counts
    even from a worker whose lease ran out: the agency has it), and put the outcome of
    each one finished here in the outbox; the ids finished."""
    await conn.executemany(
        """
        INSERT INTO delivery_attempts (dispatch_id, attempt, channel, target, started_at, duration_ms, outcome,
                                       status_code, error)
        VALUES ($1, $2, $3, $4, $5, $6, 'delivered', $7, NULL)
        """,
        [(d.dispatch.dispatch_id, d.attempts, d.channel, d.target, d.started_at, d.duration_ms, d.status_code)
         for d in items],
    )  # fmt: skip
    rows = await conn.fetch(
        """
        UPDATE dispatches d SET state = 'delivered', channel = u.channel, attempts = greatest(d.attempts, u.attempts),
                                channel_errors = '{}', last_error = NULL, finished_at = u.at, claim_token = NULL
        FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[]) AS u(dispatch_id, channel, attempts, at)
        WHERE d.dispatch_id = u.dispatch_id AND d.state = 'pending'
        RETURNING d.dispatch_id
        """,
        [d.dispatch.dispatch_id for d in items], [d.channel for d in items], [d.attempts for d in items],
        [d.now for d in items],
    )  # fmt: skip
    finished = {r["dispatch_id"] for r in rows}
    await enqueue(conn, [outcome(d) for d in items if d.dispatch.dispatch_id in finished])
    return finished
