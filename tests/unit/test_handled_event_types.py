"""The event types each service's consumer skips unread (`handles`) are exactly those its
handler does nothing with: a skipped type the handler acted on would be an event lost."""

from datetime import UTC, datetime

import pytest

from schemas.envelope import Envelope
from schemas.events import EVENT_MODELS
from services.intake import timeline
from services.notifier import handler as notifier_handler
from services.notifier.clock import OffsetClock
from services.router import handler as router_handler
from services.shifts import tasks


class Untouchable:
    """A connection that fails the test on any use: the handler must not act."""

    def __getattr__(self, name):
        raise AssertionError(f"the handler used the connection ({name}) for a type it claims not to handle")


def envelope_of(ce_type: str) -> Envelope:
    data = EVENT_MODELS[ce_type].model_construct()
    return Envelope(id="x", type=ce_type, source="test", time=None, key=None, data=data)


HANDLERS = {
    "intake": (timeline.record, timeline.HANDLES),
    "router": (router_handler.build_handler(metrics=None), router_handler.HANDLES),
    "notifier": (notifier_handler.make_handler(OffsetClock(), 600), notifier_handler.HANDLES),
    "shifts": (tasks.make_handler(assigner=None, clock=lambda: datetime.now(UTC)), tasks.HANDLES),
}


@pytest.mark.parametrize("service", sorted(HANDLERS))
async def test_every_type_skipped_unread_is_one_the_handler_ignores(service):
    handle, handles = HANDLERS[service]
    assert handles and handles <= EVENT_MODELS.keys()
    for ce_type in sorted(EVENT_MODELS.keys() - handles):
        await handle(Untouchable(), envelope_of(ce_type))


@pytest.mark.parametrize("service", sorted(HANDLERS))
async def test_every_type_handled_is_acted_on(service):
    """The other way round: a type in `handles` the handler ignored would cost a
    transaction for nothing; each one reaches the connection (or the data) here."""
    handle, handles = HANDLERS[service]
    for ce_type in sorted(handles):
        with pytest.raises((AssertionError, AttributeError)):
            await handle(Untouchable(), envelope_of(ce_type))
