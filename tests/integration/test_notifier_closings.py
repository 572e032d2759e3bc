"""An incident closed at the 112 centre (`dispatch.closed`): the agency gets a signed
closing notice with the outcome (webhook or e-mail), once per closing, the dispatch is
neither re-sent nor escalated, and one still waiting for delivery is never delivered."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas import topics
from schemas.envelope import encode
from schemas.events import DispatchClosed, DispatchRequested
from services.notifier.app import create_app
from services.notifier.clock import OffsetClock
from services.notifier.handler import closing_id
from services.notifier.webhook_verify import verify_webhook
from tests.conftest import API_KEY
from tests.integration.notifier_support import (
    ESCALATED,
    dispatch_event,
    notifier_settings,
    of_type,
    record_of,
    set_agency,
    status_events,
    text_of,
)
from tests.support import eventually, produce, running

pytestmark = pytest.mark.integration
CLOSED = "id.go.blitarkab.e112.dispatch.closed.v1"
UPDATE_DELIVERED = "id.go.blitarkab.e112.dispatch.update_delivered.v1"


def closed_event(
    dispatch: DispatchRequested,
    *,
    outcome: str = "resolved",
    note: str | None = "Api sudah padam",
    closed_at: datetime | None = None,
) -> DispatchClosed:
    return DispatchClosed(
        dispatch_id=dispatch.dispatch_id,
        report_id=dispatch.report_id,
        agency=dispatch.agency,
        outcome=outcome,
        note=note,
        closed_at=closed_at or datetime.now(UTC),
    )


def close_record(event: DispatchClosed):
    return encode(event, topic=topics.dispatch_topic(event.agency), key=str(event.report_id), source="e112/router")


async def dispatch_row(client, dispatch_id) -> dict:
    response = await client.get(f"/v1/dispatches/{dispatch_id}")
    assert response.status_code == 200, response.text
    return response.json()


def hits_for(endpoint, key) -> list:
    return [h for h in endpoint.hits if h.headers["idempotency-key"] == str(key)]


async def test_a_delivered_dispatch_gets_a_signed_closing_notice_and_no_escalation(database_url, broker, endpoint):
    dispatch, other = dispatch_event("damkar"), dispatch_event("damkar")  # `other` stays open: it shows time passed
    closing = closed_event(dispatch, outcome="false_alarm", note="Asap dari pembakaran sampah")
    record = close_record(closing)
    notice_key = str(closing_id(dispatch.dispatch_id, closing.closed_at))
    clock = OffsetClock()
    settings = notifier_settings(database_url, broker.bootstrap)
    async with running(create_app(settings, clock), API_KEY) as client:
        secret = (
            await set_agency(client, "damkar", webhook_url=endpoint.url, channels=["webhook"], ack_deadline_seconds=60)
        )["webhook_secret"]
        # The notifier signs with its own clock's time, which the test moves on: the agency's
        # clock agrees with it, as a real agency's agrees with the real one.
        endpoint.secrets, endpoint.now = [secret], lambda: clock.now().timestamp()
        await produce(broker.bootstrap, [record_of(dispatch), record_of(other)])
        await eventually(lambda: len(endpoint.accepted()) == 2)
        await produce(broker.bootstrap, [record])
        await eventually(lambda: notice_key in endpoint.accepted_keys())
        (notice,) = hits_for(endpoint, notice_key)
        verified_at = clock.now().timestamp()
        # Long past the deadline: an unacknowledged dispatch is re-sent by the escalator's
        # next round, which takes both dispatches' timers in one transaction (the closed
        # one's is the earlier): once `other` shows its step, the closed one has had its turn.
        clock.advance(1800)
        await eventually(lambda: _steps_are(client, other, ["resent"]))
        messages = await status_events(
            broker.bootstrap,
            lambda ms: (
                of_type(ms, UPDATE_DELIVERED, dispatch.dispatch_id) and of_type(ms, ESCALATED, other.dispatch_id)
            ),
        )
        after = await dispatch_row(client, dispatch.dispatch_id)

    # Raises if not genuine, or if the notice's own Idempotency-Key is not the one signed.
    key = notice.headers["idempotency-key"]
    verify_webhook(secret, notice.headers["e112-signature"], notice.body, idempotency_key=key, now=verified_at)
    assert notice.signature_ok and notice.headers["ce-type"] == CLOSED
    assert notice.body == record.value  # the event's data, as the router published it
    assert json.loads(notice.body)["outcome"] == "false_alarm"
    assert after["escalation_steps"] == [] and after["escalation_due_at"] is None
    assert after["state"] == "delivered" and after["round"] == 1
    assert len(hits_for(endpoint, dispatch.dispatch_id)) == 1, "the closed dispatch is not re-sent"
    assert of_type(messages, ESCALATED, dispatch.dispatch_id) == []
    [outcome] = [m.data for m in of_type(messages, UPDATE_DELIVERED, dispatch.dispatch_id)]
    assert outcome["update_type"] == "closed" and outcome["update_id"] == notice_key
    assert outcome["report_id"] == str(dispatch.report_id) and outcome["channel"] == "webhook"
    assert [(u["type"], u["state"]) for u in after["updates"]] == [("closed", "delivered")]


async def test_a_dispatch_still_waiting_for_its_endpoint_is_never_delivered_once_closed(database_url, broker, endpoint):
    dispatch, later = dispatch_event("bpbd"), dispatch_event("bpbd")
    closing = closed_event(dispatch, outcome="handed_over", note="Ditangani Polres")
    notice_key = str(closing_id(dispatch.dispatch_id, closing.closed_at))
    clock = OffsetClock()
    # One attempt at a time, in the order they come due, and a retry a minute away on
    # the notifier's clock: the test decides when the waiting dispatch would be due.
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        delivery_concurrency=1,
        delivery_max_attempts=50,
        delivery_backoff_base_seconds=60,
        delivery_backoff_cap_seconds=60,
    )
    endpoint.status = 503  # the agency's system is down: the dispatch waits for its retry
    async with running(create_app(settings, clock), API_KEY) as client:
        secret = (
            await set_agency(client, "bpbd", webhook_url=endpoint.url, channels=["webhook"], ack_deadline_seconds=600)
        )["webhook_secret"]
        endpoint.secrets, endpoint.now = [secret], lambda: clock.now().timestamp()
        await produce(broker.bootstrap, [record_of(dispatch)])
        # Its attempt recorded: nothing of it is in flight when it is closed.
        await eventually(lambda: _attempts_are(client, dispatch, 1))
        await produce(broker.bootstrap, [close_record(closing)])
        # The notice is queued in the transaction that stops the dispatch: once it is
        # tried, the dispatch is stopped (or, were it not, still waiting for its retry).
        await eventually(lambda: hits_for(endpoint, notice_key))
        endpoint.status = 200  # back, and past the dispatch's retry time
        clock.advance(120)
        # Queued now, after every retry that could be due: when it is delivered, the
        # closed dispatch would have been attempted before it.
        await produce(broker.bootstrap, [record_of(later)])
        await eventually(lambda: str(later.dispatch_id) in endpoint.accepted_keys())
        row = await dispatch_row(client, dispatch.dispatch_id)

    assert endpoint.accepted_keys() == [notice_key, str(later.dispatch_id)], "only the notice, then the later one"
    assert [h.status for h in hits_for(endpoint, dispatch.dispatch_id)] == [503]
    (notice,) = [h for h in endpoint.accepted() if h.headers["idempotency-key"] == notice_key]
    assert notice.signature_ok and notice.headers["ce-type"] == CLOSED
    assert json.loads(notice.body)["outcome"] == "handed_over"
    assert row["state"] == "cancelled" and row["escalation_due_at"] is None


async def test_a_closing_delivered_twice_is_one_notice_and_a_reclosing_another(database_url, broker, endpoint):
    dispatch = dispatch_event("pmi")
    closing = closed_event(dispatch)
    again = close_record(closing)
    # The incident reopened and closed again later: a closing of its own.
    reclosing = closed_event(
        dispatch, outcome="no_action_needed", note=None, closed_at=closing.closed_at + timedelta(minutes=20)
    )
    first_key = str(closing_id(dispatch.dispatch_id, closing.closed_at))
    second_key = str(closing_id(dispatch.dispatch_id, reclosing.closed_at))
    settings = notifier_settings(database_url, broker.bootstrap, delivery_concurrency=1)
    async with running(create_app(settings, OffsetClock()), API_KEY) as client:
        secret = (await set_agency(client, "pmi", webhook_url=endpoint.url, channels=["webhook"]))["webhook_secret"]
        endpoint.secrets = [secret]
        await produce(broker.bootstrap, [record_of(dispatch)])
        await eventually(lambda: len(endpoint.accepted()) == 1)
        # The same event twice (a consumer's redelivery), a copy under a new ce_id (a
        # republish), then the closing after a reopening: one attempt at a time, in the
        # order queued, so once the last notice is in, any duplicate would have come first.
        await produce(broker.bootstrap, [again, again, close_record(closing), close_record(reclosing)])
        await eventually(lambda: second_key in endpoint.accepted_keys())
        row = await dispatch_row(client, dispatch.dispatch_id)

    assert endpoint.accepted_keys() == [str(dispatch.dispatch_id), first_key, second_key]
    assert all(h.signature_ok for h in endpoint.hits)
    assert [json.loads(h.body)["outcome"] for h in endpoint.accepted()[1:]] == ["resolved", "no_action_needed"]
    assert [(u["update_id"], u["type"]) for u in row["updates"]] == [(first_key, "closed"), (second_key, "closed")]


async def test_an_agency_on_email_is_told_the_incident_is_closed(database_url, broker, smtp):
    dispatch = dispatch_event("pln")
    closing = closed_event(dispatch, outcome="resolved", note="Jaringan sudah diamankan")
    settings = notifier_settings(database_url, broker.bootstrap, smtp_host="127.0.0.1", smtp_port=smtp.port)
    async with running(create_app(settings, OffsetClock()), API_KEY) as client:
        await set_agency(client, "pln", email=["piket@pln.co.id"], channels=["email"])
        await produce(broker.bootstrap, [record_of(dispatch)])
        await eventually(lambda: len(smtp.to("piket@pln.co.id")) == 1)
        await produce(broker.bootstrap, [close_record(closing)])
        await eventually(lambda: len(smtp.to("piket@pln.co.id")) == 2)
        row = await eventually(lambda: _notice_delivered(client, dispatch))

    _, message = smtp.to("piket@pln.co.id")
    assert message["Message-ID"].endswith(".closed@e112.blitarkab.go.id>")
    text = text_of(message)
    assert message["Subject"] == "[112 DITUTUP / CLOSED] PLN: resolved"
    assert "DITUTUP" in text and "CLOSED" in text and "Jaringan sudah diamankan" in text
    assert str(dispatch.dispatch_id) in text and str(dispatch.report_id) in text
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "dispatch-closed.json"
    assert json.loads(attachment.get_content())["outcome"] == "resolved"
    assert [(u["type"], u["state"]) for u in row["updates"]] == [("closed", "delivered")]


async def _notice_delivered(client, dispatch) -> dict | None:
    row = await dispatch_row(client, dispatch.dispatch_id)
    return row if row["updates"] and row["updates"][0]["state"] == "delivered" else None


async def _attempts_are(client, dispatch, count: int) -> bool:
    response = await client.get(f"/v1/dispatches/{dispatch.dispatch_id}")
    return response.status_code == 200 and len(response.json()["history"]) == count


async def _steps_are(client, dispatch, steps: list[str]) -> bool:
    response = await client.get(f"/v1/dispatches/{dispatch.dispatch_id}")
    return response.status_code == 200 and response.json()["escalation_steps"] == steps
