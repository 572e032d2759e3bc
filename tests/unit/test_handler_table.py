"""A handler table calls the function of the event's model and nothing else; the types a
consumer skips unread are exactly those missing from it."""

import uuid
from datetime import UTC, datetime

import pytest

from schemas.envelope import Envelope
from schemas.events import EVENT_MODELS, ReportUnlinked, ReportUnrouted
from services.common.handlers import HandlerTable
from services.intake import timeline
from services.notifier.clock import OffsetClock
from services.notifier.handler import handler_table as notifier_table
from services.router.handler import ReportHandler
from services.shifts.tasks import handler_table as shifts_table


def envelope_of(data) -> Envelope:
    return Envelope(id=str(uuid.uuid4()), type=data.ce_type, source="test", time=None, key=None, data=data)


async def test_the_function_of_the_events_model_is_called_with_the_connection_and_envelope():
    called = []

    async def on_unrouted(conn, envelope):
        called.append((conn, envelope.id))

    table = HandlerTable({ReportUnrouted: on_unrouted})
    unrouted = envelope_of(ReportUnrouted(report_id=uuid.uuid4(), category=None, reason="t", at=datetime.now(UTC)))
    unlinked = envelope_of(
        ReportUnlinked(
            report_id=uuid.uuid4(), incident_report_id=uuid.uuid4(), unlinked_by="x", unlinked_at=datetime.now(UTC)
        )
    )
    await table("conn", unlinked)
    await table("conn", unrouted)
    await table(
        "conn", Envelope(id="u", type="id.go.blitar.e112.unknown.v1", source="t", time=None, key=None, data=None)
    )
    assert called == [("conn", unrouted.id)]
    assert table.handles == {ReportUnrouted.ce_type}


def unrouted() -> Envelope:
    return envelope_of(ReportUnrouted(report_id=uuid.uuid4(), category=None, reason="t", at=datetime.now(UTC)))


def unlinked() -> Envelope:
    return envelope_of(
        ReportUnlinked(
            report_id=uuid.uuid4(), incident_report_id=uuid.uuid4(), unlinked_by="x", unlinked_at=datetime.now(UTC)
        )
    )


async def test_consecutive_events_of_a_batch_function_go_to_it_together_and_in_order():
    calls = []

    async def on_unrouted_batch(conn, envelopes):
        calls.append(("batch", [e.id for e in envelopes]))

    async def on_unlinked(conn, envelope):
        calls.append(("one", [envelope.id]))

    table = HandlerTable({ReportUnlinked: on_unlinked}, batched={ReportUnrouted: on_unrouted_batch})
    u1, u2, l1, u3, u4, u5 = unrouted(), unrouted(), unlinked(), unrouted(), unrouted(), unrouted()
    await table.handle_all("conn", [u1, u2, l1, u3, u4, u5])
    # The event of the other function in between splits the run: the order is kept.
    assert calls == [("batch", [u1.id, u2.id]), ("one", [l1.id]), ("batch", [u3.id, u4.id, u5.id])]
    calls.clear()
    await table("conn", u1)  # one event alone goes to its batch function too
    assert calls == [("batch", [u1.id])]
    assert table.handles == {ReportUnrouted.ce_type, ReportUnlinked.ce_type}


def test_an_empty_table_is_refused():
    with pytest.raises(ValueError):
        HandlerTable({})


def test_a_model_with_a_function_and_a_batch_function_is_refused():
    async def f(conn, envelope): ...

    with pytest.raises(ValueError, match="ReportUnrouted"):
        HandlerTable({ReportUnrouted: f}, batched={ReportUnrouted: f})


@pytest.mark.parametrize(
    "table",
    [
        timeline.TABLE,
        ReportHandler(metrics=None).table,
        notifier_table(OffsetClock(), 600),
        shifts_table(assigner=None, clock=lambda: datetime.now(UTC)),
    ],
    ids=["intake", "router", "notifier", "shifts"],
)
def test_every_service_table_handles_known_types_only(table):
    assert table.handles and table.handles <= EVENT_MODELS.keys()


async def test_settle_runs_once_after_the_events_with_what_the_functions_returned():
    settled = []

    async def on_unrouted(conn, envelope):
        return envelope.id

    async def on_unlinked(conn, envelope):
        return None  # changed nothing: left out of what settle gets

    async def on_unrouted_batch(conn, envelopes):
        return [e.id for e in envelopes]

    async def settle(conn, results):
        settled.append((conn, results))

    table = HandlerTable({ReportUnrouted: on_unrouted, ReportUnlinked: on_unlinked}, settle=settle)
    u1, l1, u2 = unrouted(), unlinked(), unrouted()
    await table.handle_all("conn", [u1, l1, u2])
    assert settled == [("conn", [u1.id, u2.id])]
    settled.clear()
    await table("conn", l1)
    assert settled == [("conn", [])], "settle runs after every call, even when nothing changed"
    batched = HandlerTable({ReportUnlinked: on_unlinked}, batched={ReportUnrouted: on_unrouted_batch}, settle=settle)
    settled.clear()
    await batched.handle_all("conn", [u1, u2, l1])
    assert settled == [("conn", [[u1.id, u2.id]])]
