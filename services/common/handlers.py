"""A consumer's handler as a table: which function acts on which event model.

The types a consumer skips unread (no transaction, no inbox row) are the ones missing
from its table, so what is handled and what is skipped cannot drift apart. A function
that acts on a type only sometimes (a `report.received` that needs verification)
decides inside; the type is still in the table, so it is never skipped unread.
"""

from collections.abc import Awaitable, Callable, Mapping

import asyncpg

from schemas.envelope import Envelope
from schemas.events import Event

EventFunction = Callable[[asyncpg.Connection, Envelope], Awaitable[None]]


class HandlerTable:
    """Called by the consumer in the event's transaction, like a plain handler."""

    def __init__(self, functions: Mapping[type[Event], EventFunction]):
        if not functions:
            raise ValueError("a handler table names at least one event model")
        self._functions: dict[type, EventFunction] = dict(functions)
        self.handles: frozenset[str] = frozenset(model.ce_type for model in functions)

    async def __call__(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        function = self._functions.get(type(envelope.data))
        if function is not None:
            await function(conn, envelope)

    def function_for(self, model: type[Event]) -> EventFunction | None:
        return self._functions.get(model)
