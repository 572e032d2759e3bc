"""A dispatch sent unverified and found false (`dispatch.cancelled`): the agency gets one
signed cancellation notice (webhook or e-mail), the dispatch is neither re-sent nor
escalated, and one still waiting for delivery is never delivered."""

import json
import re
import uuid
from datetime import UTC, datetime

import pytest

from schemas import topics
from schemas.envelope import encode
from schemas.events import DispatchCancelled, DispatchRequested
from services.notifier import mail
from services.notifier.app import create_app
from services.notifier.clock import OffsetClock
from services.notifier.handler import cancellation_id
from tests.conftest import API_KEY
from tests.integration.notifier_support import (
    dispatch_event,
    notifier_settings,
    record_of,
    set_agency,
    text_of,
)
from tests.support import eventually, produce, running

pytestmark = pytest.mark.integration
CANCELLED = "id.go.blitarkab.e112.dispatch.cancelled.v1"


async def escalator_rounds(client) -> float:
    metrics = (await client.get("/metrics")).text
    return float(re.search(r"^e112_escalator_rounds_total (\S+)$", metrics, re.M).group(1))


async def _at_least(value, floor: float) -> bool:
    return await value >= floor


def cancel_record(dispatch: DispatchRequested, reason: str = "prank"):
    event = DispatchCancelled(
        dispatch_id=dispatch.dispatch_id,
        report_id=dispatch.report_id,
        agency=dispatch.agency,
        reason=reason,
        cancelled_at=datetime.now(UTC),
    )
    return encode(
        event, topic=topics.dispatch_topic(dispatch.agency), key=str(dispatch.report_id), source="e112/router"
    )


async def test_a_delivered_dispatch_gets_one_signed_notice_and_no_escalation(database_url, broker, endpoint):
    dispatch = dispatch_event("damkar")
    notice = cancel_record(dispatch)
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap)
    async with running(create_app(settings, clock), API_KEY) as client:
        secret = (
            await set_agency(client, "damkar", webhook_url=endpoint.url, channels=["webhook"], ack_deadline_seconds=60)
        )["webhook_secret"]
        endpoint.secrets = [secret]
        await produce(broker.bootstrap, [record_of(dispatch)])
        await eventually(lambda: len(endpoint.accepted()) == 1)
        await produce(broker.bootstrap, [notice, cancel_record(dispatch)])  # a second copy, new ce_id
        await eventually(lambda: len(endpoint.accepted()) == 2)
        row = (await client.get(f"/v1/dispatches/{dispatch.dispatch_id}")).json()
        # Long past the deadline: an unacknowledged dispatch would be re-sent (and
        # escalated) by the escalator's next rounds: two whole rounds after the jump.
        rounds = await escalator_rounds(client)
        clock.advance(1800)
        await eventually(lambda: _at_least(escalator_rounds(client), rounds + 2))
        after = (await client.get(f"/v1/dispatches/{dispatch.dispatch_id}")).json()
    hits = endpoint.accepted()
    assert len(endpoint.hits) == 2, "one dispatch, one notice: no re-send, no second notice"
    assert hits[1].headers["ce-type"] == CANCELLED and hits[1].signature_ok
    assert hits[1].headers["idempotency-key"] == str(cancellation_id(dispatch.dispatch_id))
    assert row["state"] == "delivered" and row["escalation_due_at"] is None
    assert after["escalation_steps"] == [] and after["state"] == "delivered"


async def test_a_dispatch_not_yet_delivered_is_never_delivered(database_url, broker, endpoint):
    dispatch = dispatch_event("bpbd")
    endpoint.status = 503  # the agency's system is down: the dispatch waits, retried
    settings = notifier_settings(
        database_url, broker.bootstrap, delivery_max_attempts=50, delivery_backoff_cap_seconds=0.3
    )
    async with running(create_app(settings, OffsetClock()), API_KEY) as client:
        await set_agency(client, "bpbd", webhook_url=endpoint.url, channels=["webhook"], ack_deadline_seconds=600)
        await produce(broker.bootstrap, [record_of(dispatch)])
        await eventually(lambda: len(endpoint.hits) >= 2)
        await produce(broker.bootstrap, [cancel_record(dispatch, reason="information")])
        await eventually(lambda: _state_is(client, dispatch, "cancelled"))
        endpoint.status = 200  # back: only the notice is delivered
        await eventually(lambda: len(endpoint.accepted()) == 1)
        row = (await client.get(f"/v1/dispatches/{dispatch.dispatch_id}")).json()
    (notice,) = endpoint.accepted()
    assert notice.headers["ce-type"] == CANCELLED
    assert json.loads(notice.body)["reason"] == "information"
    assert row["state"] == "cancelled"


def test_the_cancellation_email_says_what_was_called_off_in_both_languages():
    dispatch = dispatch_event("damkar")
    body = DispatchCancelled(
        dispatch_id=dispatch.dispatch_id,
        report_id=dispatch.report_id,
        agency="damkar",
        reason="duplicate",
        duplicate_of=uuid.uuid4(),
        cancelled_at=datetime.now(UTC),
    )
    message = mail.cancellation_email(
        sender="112@blitarkab.go.id",
        to=["damkar@example"],
        body=body.model_dump_json().encode(),
        notice_id=uuid.uuid4(),
        now=datetime.now(UTC),
    )
    text = text_of(message)
    assert message["Subject"] == "[112 DIBATALKAN / CANCELLED] DAMKAR: duplicate"
    assert "PEMBATALAN" in text and "CANCELLED" in text and str(dispatch.dispatch_id) in text
    assert str(body.duplicate_of) in text


async def _state_is(client, dispatch, state: str) -> bool:
    response = await client.get(f"/v1/dispatches/{dispatch.dispatch_id}")
    return response.status_code == 200 and response.json()["state"] == state
