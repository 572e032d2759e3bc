"""What the notifier does with each event on an agency topic: queue it for delivery."""

import asyncpg

from schemas.envelope import Envelope
from schemas.events import DispatchRequested
from services.notifier import store


async def queue_dispatch(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data = envelope.data
    if not isinstance(data, DispatchRequested):
        return  # later dispatch updates are other types; this version does not deliver them
    await store.enqueue_dispatch(
        conn, dispatch_id=data.dispatch_id, report_id=data.report_id, agency=data.agency,
        event_id=envelope.id, event_type=envelope.type, event_source=envelope.source, event_time=envelope.time,
        body=envelope.raw_data, received_at=data.received_at,
    )  # fmt: skip
