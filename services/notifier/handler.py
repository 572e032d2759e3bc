"""What the notifier does with each event on an agency topic: queue it for delivery,
with its acknowledgement timer, in the consumer's transaction."""

import asyncpg

from schemas.envelope import Envelope
from schemas.events import DispatchRequested
from services.common.consumer import Handler
from services.notifier import escalation, store
from services.notifier.clock import Clock


def make_handler(clock: Clock, default_ack_deadline_seconds: int) -> Handler:
    async def queue_dispatch(conn: asyncpg.Connection, envelope: Envelope) -> None:
        data = envelope.data
        if not isinstance(data, DispatchRequested):
            return  # later dispatch updates are other types; this version does not deliver them
        config = await store.agency_config(conn, data.agency)
        deadline = config.ack_deadline_seconds or default_ack_deadline_seconds
        now = clock.now()
        await store.enqueue_dispatch(
            conn, dispatch_id=data.dispatch_id, report_id=data.report_id, agency=data.agency,
            event_id=envelope.id, event_type=envelope.type, event_source=envelope.source, event_time=envelope.time,
            body=envelope.raw_data, received_at=data.received_at, now=now, ack_deadline_seconds=deadline,
            escalation_due_at=escalation.first_due(now, deadline),
        )  # fmt: skip

    return queue_dispatch
