"""A consumer's handler as a table: which function acts on which event model.

The types a consumer skips unread (no transaction, no inbox row) are the ones missing
from its table, so what is handled and what is skipped cannot drift apart. A function
that acts on a type only sometimes (a `report.received` that needs verification)
decides inside; the type is still in the table, so it is never skipped unread.

A model may instead name a batch function (`batched`): it gets, in order, every
consecutive event of the consumer's transaction that maps to it, and can write them in
a few statements instead of a few each (bench --profile: intake's timeline entries were
a fifth of PostgreSQL's statements in a surge). Consecutive only: an event of another
function in between is run in its place, so the events' order is kept.

A table may also name a `settle` function: it runs once after all the events of the
call, with what the functions returned (None left out), in the same transaction. The
shifts consumer hands out its tasks there once per fetched batch instead of once per
event (each hand-out reads every operator and open task under a lock).
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from schemas.envelope import Envelope
from schemas.events import Event

EventFunction = Callable[[asyncpg.Connection, Envelope], Awaitable[Any]]
BatchFunction = Callable[[asyncpg.Connection, Sequence[Envelope]], Awaitable[Any]]
SettleFunction = Callable[[asyncpg.Connection, list[Any]], Awaitable[None]]


class HandlerTable:
    """Called by the consumer in the event's transaction, like a plain handler, or with
    all the events of a transaction at once (`handle_all`)."""

    def __init__(
        self,
        functions: Mapping[type[Event], EventFunction],
        batched: Mapping[type[Event], BatchFunction] | None = None,
        settle: SettleFunction | None = None,
    ):
        batched = dict(batched or {})
        if not functions and not batched:
            raise ValueError("a handler table names at least one event model")
        if both := functions.keys() & batched.keys():
            raise ValueError(f"a model has one function, not two: {sorted(m.__name__ for m in both)}")
        self._functions: dict[type, EventFunction] = dict(functions)
        self._batched: dict[type, BatchFunction] = batched
        self._settle = settle
        self.handles: frozenset[str] = frozenset(model.ce_type for model in [*functions, *batched])

    async def __call__(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        await self.handle_all(conn, [envelope])

    async def handle_all(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        """Run the table over `envelopes` in their order, in the caller's transaction,
        then `settle` over what the functions returned."""
        results: list[Any] = []
        run: list[Envelope] = []
        run_function: BatchFunction | None = None
        for envelope in envelopes:
            batch_function = self._batched.get(type(envelope.data))
            if run and batch_function is not run_function:
                results.append(await run_function(conn, run))
                run = []
            if batch_function is not None:
                run.append(envelope)
                run_function = batch_function
                continue
            function = self._functions.get(type(envelope.data))
            if function is not None:
                results.append(await function(conn, envelope))
        if run:
            results.append(await run_function(conn, run))
        if self._settle is not None:
            await self._settle(conn, [r for r in results if r is not None])
