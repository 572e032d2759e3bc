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
        ReportUnlinked(report_id=uuid.uuid4(), incident_report_id=uuid.uuid4(), unlinked_by="x",
                       unlinked_at=datetime.now(UTC))
    )  # fmt: skip
    await table("conn", unlinked)
    await table("conn", unrouted)
    await table("conn", Envelope(id="u", type="id.go.blitar.e112.unknown.v1", source="t", time=None, key=None,
                                 data=None))  # fmt: skip
    assert called == [("conn", unrouted.id)]
    assert table.handles == {ReportUnrouted.ce_type}


def test_an_empty_table_is_refused():
    with pytest.raises(ValueError):
        HandlerTable({})


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
