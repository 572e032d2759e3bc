"""The router and an incident's closing: every agency a report was routed to gets one
dispatch.closed per closing (a redelivered closing is the same one, a closing after a
reopening is another); a report held for its verdict and closed first is never
dispatched, whatever verdict comes after."""

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from schemas import topics
from schemas.envelope import derived_event_id
from schemas.events import ReportClosed, ReportReopened
from services.router.app import create_app
from tests.conftest import API_KEY
from tests.integration.test_router_linked import outcome, settings
from tests.integration.test_router_verification import OPERATOR, distinct, of_type, record, report, verdict
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration

FIRE_AGENCIES = {"damkar", "pln", "polres"}
FIRE_TOPICS = [topics.dispatch_topic(a) for a in sorted(FIRE_AGENCIES)]


def closing(of, outcome: str, note: str | None = None, operator_id=OPERATOR) -> ReportClosed:
    return ReportClosed(
        report_id=of.report_id, outcome=outcome, note=note, operator_id=operator_id, closed_at=datetime.now(UTC)
    )


async def test_each_agency_is_told_once_per_closing_and_again_after_a_reopening(database_url, broker):
    fire = report("kebakaran", "not_required", channel="call")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record(fire)])
        first = await read_topics(
            broker.bootstrap, FIRE_TOPICS, until=lambda ms: len(distinct(of_type(ms, "dispatch.requested.v1"))) == 3
        )
        closed = record(closing(fire, "false_alarm", "bakar sampah, sudah padam"))
        await produce(broker.bootstrap, [closed, closed])  # redelivered: the same closing
        reopened = ReportReopened(
            report_id=fire.report_id, reason="api menyala lagi", operator_id=OPERATOR, reopened_at=datetime.now(UTC)
        )
        # Closed on its own this time: every agency reported done.
        again = record(closing(fire, "resolved", operator_id=None))
        # The same key, so one partition, handled in order: once the second closing's
        # notices are out, both copies of the first were handled before them.
        await produce(broker.bootstrap, [record(reopened), again])
        messages = await read_topics(
            broker.bootstrap,
            FIRE_TOPICS,
            settle=1.0,
            until=lambda ms: len(distinct(of_type(ms, "dispatch.closed.v1"))) >= 6,
        )
        decided = await outcome(database_url, fire.report_id)
    requested = {m.data["agency"]: m.data["dispatch_id"] for m in of_type(first, "dispatch.requested.v1")}
    notices = distinct(of_type(messages, "dispatch.closed.v1"))
    assert len(notices) == 6, "three agencies, two closings, one notice each"
    for closed_as, note in (("false_alarm", "bakar sampah, sudah padam"), ("resolved", None)):
        told = [m for m in notices if m.data["outcome"] == closed_as]
        assert {m.data["agency"]: m.data["dispatch_id"] for m in told} == requested
        assert all(m.topic == topics.dispatch_topic(m.data["agency"]) for m in told)
        assert all(m.key == str(fire.report_id) and m.data["report_id"] == str(fire.report_id) for m in told)
        assert {m.data["note"] for m in told} == {note}
    # Derived from the closing and the agency: handled again, a closing sends the same ids.
    first_closing = {m.headers["ce_id"] for m in notices if m.data["outcome"] == "false_alarm"}
    assert first_closing == {derived_event_id(closed.event_id, f"closed:{a}") for a in FIRE_AGENCIES}
    assert decided == "routed", "a reopened incident may close again"


async def test_a_held_report_closed_before_its_verdict_is_never_dispatched(database_url, broker):
    sms = report("kerusuhan", "before_dispatch")
    unknown = report("kebakaran", "not_required")  # never received here
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        await produce(broker.bootstrap, [record(sms)])
        await eventually(lambda: _outcome_is(database_url, sms.report_id, "awaiting_verification"))
        closed, never_seen = record(closing(sms, "no_action_needed")), record(closing(unknown, "resolved"))
        genuine = record(verdict(sms, "genuine"))
        await produce(broker.bootstrap, [closed, genuine, never_seen])
        # Committed with the inbox row: whatever the verdict caused is in the outbox by now.
        await eventually(lambda: _consumed(database_url, genuine.event_id))
        await eventually(lambda: _consumed(database_url, never_seen.event_id))
        decision = (await client.get(f"/v1/decisions/{sms.report_id}")).json()
        sent = await _outbox_types(database_url)
    assert decision["outcome"] == "not_dispatched"
    assert decision["reason"] == "closed before its verdict"
    assert decision["dispatches"] == []
    assert [t for t in sent if ".dispatch." in t] == [], "nothing to any agency"
    assert await outcome(database_url, unknown.report_id) is None


async def _consumed(database_url, event_id: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM router.inbox WHERE event_id = $1", event_id))
    finally:
        await conn.close()


async def _outbox_types(database_url) -> list[str]:
    """The ce_type of every event the router wrote (published rows are kept for a while)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT headers FROM router.outbox ORDER BY id")
    finally:
        await conn.close()
    return [dict(json.loads(r["headers"]))["ce_type"] for r in rows]


async def _outcome_is(database_url, report_id: uuid.UUID, expected) -> bool:
    return await outcome(database_url, report_id) == expected
