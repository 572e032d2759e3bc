"""The router and verification: a held report goes out only on a genuine verdict (with
the dispatch ids it would have had), a duplicate joins its incident, a prank never goes
out; a report dispatched unverified is cancelled at every agency when found false."""

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from schemas import topics
from schemas.envelope import encode
from schemas.events import EventCaller, EventLocation, ReportReceived, ReportVerified
from services.router.app import create_app
from tests.conftest import API_KEY
from tests.integration.test_router_linked import outcome, settings
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration

OPERATOR = uuid.uuid4()
RIOT_TOPICS = [topics.dispatch_topic(a) for a in ("polres", "satpolpp")]
FIRE_TOPICS = [topics.dispatch_topic(a) for a in ("damkar", "pln", "polres")]


def report(category: str, verification: str, channel: str = "sms", linked_to=None) -> ReportReceived:
    return ReportReceived(
        report_id=uuid.uuid4(),
        kind="emergency",
        category=category,
        subtype=None,
        description="dilaporkan via SMS",
        location=EventLocation(kecamatan="Wlingi", desa="Beru"),
        caller=EventCaller(phone="+6281234567890"),
        channel=channel,
        received_at=datetime.now(UTC),
        verification=verification,
        linked_to=linked_to,
    )


def verdict(of: ReportReceived, value: str, duplicate_of=None) -> ReportVerified:
    return ReportVerified(
        report_id=of.report_id,
        verdict=value,
        duplicate_of=duplicate_of,
        operator_id=OPERATOR,
        verification=of.verification,
        verified_at=datetime.now(UTC),
    )


def record(event) -> object:
    return encode(event, topic=topics.REPORTS, key=str(event.report_id), source="e112/intake")


def of_type(messages, suffix):
    return [m for m in messages if m.headers["ce_type"].endswith(suffix)]


def distinct(messages):
    """One message per ce_id (a republished copy carries the same one)."""
    return list({m.headers["ce_id"]: m for m in messages}.values())


async def test_a_held_report_goes_out_on_genuine_and_a_prank_never(database_url, broker):
    genuine, prank = report("kerusuhan", "before_dispatch"), report("kerusuhan", "before_dispatch")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY) as client:
        await produce(broker.bootstrap, [record(genuine), record(prank)])
        await eventually(lambda: _outcome_is(database_url, prank.report_id, "awaiting_verification"))
        held = (await client.get(f"/v1/decisions/{genuine.report_id}")).json()
        await produce(broker.bootstrap, [record(verdict(genuine, "genuine")), record(verdict(prank, "prank"))])
        messages = await read_topics(
            broker.bootstrap,
            [*RIOT_TOPICS, topics.REPORTS],
            settle=1.5,
            until=lambda ms: len(of_type(ms, "dispatch.requested.v1")) >= 2,
        )
        await eventually(lambda: _outcome_is(database_url, prank.report_id, "not_dispatched"))
    assert held["outcome"] == "awaiting_verification"
    dispatched = of_type(messages, "dispatch.requested.v1")
    assert {m.key for m in dispatched} == {str(genuine.report_id)}
    assert {m.data["agency"] for m in dispatched} == {"polres", "satpolpp"}
    assert all(m.data["verified"] is True for m in dispatched)
    # One routing of the genuine report. Counted by ce_id: a relay interrupted mid-batch
    # (a topic not yet in the broker's metadata at start) publishes the batch again under
    # the same ids, which the contract allows (at-least-once) and every reader drops.
    routed = {m.headers["ce_id"]: m.key for m in of_type(messages, "report.routed.v1")}
    assert list(routed.values()) == [str(genuine.report_id)]


async def test_an_unverified_dispatch_found_false_is_cancelled_at_every_agency_once(database_url, broker):
    fire = report("kebakaran", "after_dispatch", channel="whatsapp")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record(fire)])
        # Counted by ce_id: a relay interrupted at start (topic not yet in the metadata)
        # publishes its batch again under the same ids, as the contract allows.
        first = await read_topics(
            broker.bootstrap, FIRE_TOPICS, until=lambda ms: len(distinct(of_type(ms, "dispatch.requested.v1"))) == 3
        )
        false_alarm = record(verdict(fire, "prank"))
        await produce(broker.bootstrap, [false_alarm, false_alarm])  # redelivered: cancels once
        messages = await read_topics(
            broker.bootstrap,
            FIRE_TOPICS,
            settle=1.5,
            until=lambda ms: len(distinct(of_type(ms, "dispatch.cancelled.v1"))) >= 3,
        )
        await eventually(lambda: _outcome_is(database_url, fire.report_id, "cancelled"))
    assert all(m.data["verified"] is False for m in of_type(first, "dispatch.requested.v1"))
    requested = {m.data["agency"]: m.data["dispatch_id"] for m in of_type(messages, "dispatch.requested.v1")}
    cancelled = distinct(of_type(messages, "dispatch.cancelled.v1"))
    assert len(cancelled) == 3
    assert {m.data["agency"]: m.data["dispatch_id"] for m in cancelled} == requested
    assert {m.data["reason"] for m in cancelled} == {"prank"}
    assert all(m.key == str(fire.report_id) for m in cancelled)


async def test_a_genuine_verdict_on_an_unverified_dispatch_cancels_nothing(database_url, broker):
    fire = report("kebakaran", "after_dispatch", channel="app")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record(fire)])
        await eventually(lambda: _outcome_is(database_url, fire.report_id, "routed"))
        genuine = record(verdict(fire, "genuine"))
        await produce(broker.bootstrap, [genuine])
        await eventually(lambda: _consumed(database_url, genuine.event_id))
        messages = await read_topics(
            broker.bootstrap,
            [*FIRE_TOPICS, topics.REPORTS],
            settle=1.0,
            until=lambda ms: len(of_type(ms, "dispatch.requested.v1")) == 3,
        )
    assert of_type(messages, "dispatch.cancelled.v1") == []
    assert await outcome(database_url, fire.report_id) == "routed"


async def test_a_held_duplicate_tells_the_incidents_agencies_instead_of_dispatching(database_url, broker):
    incident = report("kebakaran", "not_required", channel="call")
    sms = report("kerusuhan", "before_dispatch")
    async with running(create_app(settings(database_url, broker.bootstrap)), API_KEY):
        await produce(broker.bootstrap, [record(incident), record(sms)])
        await eventually(lambda: _outcome_is(database_url, sms.report_id, "awaiting_verification"))
        await produce(broker.bootstrap, [record(verdict(sms, "duplicate", duplicate_of=incident.report_id))])
        messages = await read_topics(
            broker.bootstrap,
            [*FIRE_TOPICS, *RIOT_TOPICS],
            settle=1.5,
            until=lambda ms: len(of_type(ms, "dispatch.caller_added.v1")) >= 3,
        )
        await eventually(lambda: _outcome_is(database_url, sms.report_id, "linked"))
    assert {m.key for m in of_type(messages, "dispatch.requested.v1")} == {str(incident.report_id)}
    added = of_type(messages, "dispatch.caller_added.v1")
    assert {m.data["agency"] for m in added} == {"damkar", "pln", "polres"}
    assert {m.data["new_report_id"] for m in added} == {str(sms.report_id)}


async def _consumed(database_url, event_id: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM router.inbox WHERE event_id = $1", event_id))
    finally:
        await conn.close()


async def _outcome_is(database_url, report_id, expected) -> bool:
    return await outcome(database_url, report_id) == expected
