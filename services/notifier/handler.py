"""What the notifier does with each event on an agency topic: queue it for delivery,
with its acknowledgement timer, in the consumer's transaction.

A `dispatch.requested` becomes a dispatch; a `dispatch.caller_added` (another caller
reported an incident already dispatched to the agency) becomes an update to that
dispatch, delivered through the same queue but with no timer of its own and without
touching the dispatch's. An update is delivered even when the dispatch is already
acknowledged or its field status is `done`: it is new information (a second caller
may report more casualties or a fire spreading again), and the agency is the one to
judge it. A `dispatch.cancelled` (a dispatch sent unverified and found false) and a
`dispatch.closed` (its incident closed at the 112 centre, with an outcome) each stop the
dispatch (no re-send, no escalation; not delivered at all if it has not been yet) and
are delivered to the agency as a notice through the same queue: one cancellation per
dispatch, one closing per closing (an incident reopened and closed again is closed
anew). Other types on the topic are not for delivery."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from schemas.envelope import Envelope
from schemas.events import DispatchCallerAdded, DispatchCancelled, DispatchClosed, DispatchRequested
from services.common.handlers import HandlerTable
from services.notifier import escalation, store
from services.notifier.agency_configs import AgencyConfigs
from services.notifier.clock import Clock


def update_id(dispatch_id: uuid.UUID, new_report_id: uuid.UUID) -> uuid.UUID:
    """The update's stable id and Idempotency-Key: the same caller added to the same
    dispatch is the same update, whatever ce_id the event arrives under (a router
    replay derives a new one)."""
    return uuid.uuid5(dispatch_id, f"caller_added:{new_report_id}")


def handler_table(
    clock: Clock, default_ack_deadline_seconds: int, configs: AgencyConfigs | None = None
) -> HandlerTable:
    return DispatchQueue(clock, default_ack_deadline_seconds, configs).table()


class DispatchQueue:
    """What the notifier's consumer does with the agency topics' events: each dispatch,
    caller added, cancellation and closing notice becomes a row of the delivery queue."""

    def __init__(self, clock: Clock, default_ack_deadline_seconds: int, configs: AgencyConfigs | None = None):
        self.clock = clock
        self.default_ack_deadline_seconds = default_ack_deadline_seconds
        self.configs = configs or AgencyConfigs(ttl_seconds=0)

    def table(self) -> HandlerTable:
        # A cancellation or a closing goes alone, in its place: it must follow the
        # dispatch it stops.
        return HandlerTable(
            {DispatchCancelled: self.queue_cancellation, DispatchClosed: self.queue_closing},
            batched={DispatchRequested: self.queue, DispatchCallerAdded: self.queue},
        )

    async def queue(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        """Dispatches and callers added, a batch's consecutive ones, queued together."""
        now = self.clock.now()
        rows = []
        for envelope in envelopes:
            data: DispatchRequested | DispatchCallerAdded = envelope.data
            common = dict(
                report_id=data.report_id,
                agency=data.agency,
                event_id=envelope.id,
                event_type=envelope.type,
                event_source=envelope.source,
                event_time=envelope.time,
                body=envelope.raw_data,
                received_at=data.received_at,
            )
            if isinstance(data, DispatchRequested):
                config = await self.configs.get(conn, data.agency)
                deadline = config.ack_deadline_seconds or self.default_ack_deadline_seconds
                rows.append(
                    store.NewDispatch(
                        dispatch_id=data.dispatch_id,
                        **common,
                        ack_deadline_seconds=deadline,
                        escalation_due_at=escalation.first_due(now, deadline),
                    )
                )
            else:
                rows.append(
                    store.NewDispatch(
                        dispatch_id=update_id(data.dispatch_id, data.new_report_id),
                        **common,
                        update_of=data.dispatch_id,
                        new_report_id=data.new_report_id,
                    )
                )
        await store.enqueue(conn, rows, now)

    async def stop_and_notify(
        self, conn: asyncpg.Connection, envelope: Envelope, notice_id: uuid.UUID, at: datetime
    ) -> None:
        """Stop the dispatch and queue the notice (`envelope`'s data) for the agency."""
        data: DispatchCancelled | DispatchClosed = envelope.data
        now = self.clock.now()
        await store.stop_dispatch(conn, data.dispatch_id, now)
        # Sent even when the dispatch was stopped before delivery: a delivery may be in
        # flight at this moment, and a notice for a dispatch never seen is harmless.
        notice = store.NewDispatch(
            dispatch_id=notice_id,
            report_id=data.report_id,
            agency=data.agency,
            event_id=envelope.id,
            event_type=envelope.type,
            event_source=envelope.source,
            event_time=envelope.time,
            body=envelope.raw_data,
            received_at=at,
            update_of=data.dispatch_id,
        )
        await store.enqueue(conn, [notice], now)

    async def queue_cancellation(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        data: DispatchCancelled = envelope.data
        await self.stop_and_notify(conn, envelope, cancellation_id(data.dispatch_id), data.cancelled_at)

    async def queue_closing(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        data: DispatchClosed = envelope.data
        await self.stop_and_notify(conn, envelope, closing_id(data.dispatch_id, data.closed_at), data.closed_at)


def cancellation_id(dispatch_id: uuid.UUID) -> uuid.UUID:
    """One cancellation notice per dispatch, whatever ce_id it arrives under."""
    return uuid.uuid5(dispatch_id, "cancelled")


def closing_id(dispatch_id: uuid.UUID, closed_at: datetime) -> uuid.UUID:
    """One closing notice per closing of the incident, whatever ce_id it arrives under: a
    redelivered `dispatch.closed` is the same notice, a closing after a reopening (a
    later `closed_at`) a new one."""
    return uuid.uuid5(dispatch_id, f"closed:{closed_at.isoformat()}")
