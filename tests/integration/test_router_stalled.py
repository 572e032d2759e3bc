"""The router re-drives a report the intake watchdog found stalled: the same events again
(same ce_ids, same dispatch ids) when it had decided it, routed now when it never saw it,
released when its verdict was lost. Real PostgreSQL, real broker, the router in-process."""

import uuid
from datetime import UTC, datetime

import pytest

from schemas import topics
from schemas.envelope import derived_event_id, encode
from schemas.events import EventCaller, EventLocation, ReportReceived, ReportStalled
from services.router.app import create_app
from services.router.settings import RouterSettings
from services.router.stalled import watchdog_event_id
from tests.conftest import API_KEY
from tests.support import produce, read_topics, running

pytestmark = pytest.mark.integration

PREFIX = "id.go.blitarkab.e112."
DISPATCH, UNROUTED = PREFIX + "dispatch.requested.v1", PREFIX + "report.unrouted.v1"
CALLER_ADDED = PREFIX + "dispatch.caller_added.v1"
FIRE_TOPICS = [topics.dispatch_topic(a) for a in ("damkar", "pln", "polres")]


def settings(database_url, broker) -> RouterSettings:
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        kafka_session_timeout_ms=2000,
    )


def fire(**changes) -> ReportReceived:
    values = dict(
        report_id=uuid.uuid4(),
        kind="emergency",
        category="kebakaran",
        subtype="rumah",
        description="uji",
        location=EventLocation(kecamatan="Wlingi"),
        caller=EventCaller(name="Sri", phone="+6281234567890"),
        channel="call",
        received_at=datetime.now(UTC),
    )
    return ReportReceived(**(values | changes))


def stalled(report: ReportReceived, missing: list[str], attempt: int = 1):
    event = ReportStalled(
        report_id=report.report_id,
        missing=missing,
        attempt=attempt,
        age_seconds=61,
        detected_at=datetime.now(UTC),
        report=report,
    )
    return encode(event, topic=topics.REPORTS, key=str(report.report_id), source="e112/intake")


def received(report: ReportReceived):
    return encode(report, topic=topics.REPORTS, key=str(report.report_id), source="e112/intake")


def of(messages, ce_type, report: ReportReceived, topic: str | None = None) -> list:
    return [
        m
        for m in messages
        if m.headers.get("ce_type") == ce_type
        and m.key == str(report.report_id)
        and (topic is None or m.topic == topic)
    ]


async def test_stalled_reports_are_redriven_from_the_decision_or_routed_now(database_url, broker):
    routed, held, unknown, nowhere = (
        fire(),
        fire(channel="sms", verification="before_dispatch"),
        fire(),
        fire(category=None),
    )
    routed_in, held_in, nowhere_in = received(routed), received(held), received(nowhere)
    everything = [*FIRE_TOPICS, topics.REPORTS]
    async with running(create_app(settings(database_url, broker)), API_KEY):
        await produce(broker.bootstrap, [routed_in, held_in, nowhere_in])
        first = lambda ms: len(of(ms, DISPATCH, routed)) == 3 and of(ms, UNROUTED, nowhere)  # noqa: E731
        await read_topics(broker.bootstrap, everything, timeout=60, until=first)

        # pln's dispatch was lost; intake's verdict on the held report too; the unknown
        # report's report.received never reached the router; the unrouted one's notice was lost.
        await produce(
            broker.bootstrap,
            [
                stalled(routed, ["pln"]),
                stalled(held, ["routing"]),
                stalled(unknown, ["routing"]),
                stalled(nowhere, ["routing"]),
            ],
        )
        seen = await read_topics(
            broker.bootstrap,
            everything,
            timeout=60,
            settle=2.0,
            until=lambda ms: (
                len(of(ms, DISPATCH, routed)) == 4
                and len(of(ms, DISPATCH, held)) == 3
                and len(of(ms, DISPATCH, unknown)) == 3
                and len(of(ms, UNROUTED, nowhere)) == 2
            ),
        )

    # Routed: only pln's dispatch again, the very same event.
    pln = of(seen, DISPATCH, routed, topics.dispatch_topic("pln"))
    assert len(pln) == 2 and pln[0].raw == pln[1].raw and pln[0].headers["ce_id"] == pln[1].headers["ce_id"]
    assert pln[0].headers["ce_id"] == derived_event_id(routed_in.event_id, "dispatch:pln")
    assert len(of(seen, DISPATCH, routed, topics.dispatch_topic("damkar"))) == 1
    # Held: released as the lost verdict would have, under the report's own event id.
    assert {m.headers["ce_id"] for m in of(seen, DISPATCH, held)} == {
        derived_event_id(held_in.event_id, f"dispatch:{a}") for a in ("damkar", "pln", "polres")
    }
    assert all(m.data["verified"] for m in of(seen, DISPATCH, held))
    # Never seen: routed now from the report in the event, once.
    assert {m.headers["ce_id"] for m in of(seen, DISPATCH, unknown)} == {
        derived_event_id(watchdog_event_id(unknown.report_id), f"dispatch:{a}") for a in ("damkar", "pln", "polres")
    }
    assert of(seen, DISPATCH, unknown)[0].data["caller"]["phone"] == "+6281234567890"
    # Unrouted: the operators' notice again, the same one.
    notices = of(seen, UNROUTED, nowhere)
    assert (
        notices[0].headers["ce_id"] == notices[1].headers["ce_id"] == derived_event_id(nowhere_in.event_id, "routing")
    )


async def test_another_callers_lost_updates_are_sent_again_or_linked_now(database_url, broker):
    """A linked report intake still holds linked: its dispatch.caller_added to the agencies
    intake names is sent again under its first ce_id; one the router never saw is linked
    now (not routed on its own: the incident's agencies have it already)."""
    incident = fire()
    linked, unknown = fire(linked_to=incident.report_id), fire(linked_to=incident.report_id)
    incident_in, linked_in = received(incident), received(linked)
    async with running(create_app(settings(database_url, broker)), API_KEY):
        await produce(broker.bootstrap, [incident_in])
        await read_topics(
            broker.bootstrap, FIRE_TOPICS, timeout=60, until=lambda ms: len(of(ms, DISPATCH, incident)) == 3
        )
        await produce(broker.bootstrap, [linked_in])
        added = lambda ms: [m for m in ms if m.headers.get("ce_type") == CALLER_ADDED]  # noqa: E731
        await read_topics(broker.bootstrap, FIRE_TOPICS, timeout=60, until=lambda ms: len(added(ms)) == 3)

        await produce(broker.bootstrap, [stalled(linked, ["pln"]), stalled(unknown, ["damkar", "pln", "polres"])])
        seen = await read_topics(
            broker.bootstrap,
            [*FIRE_TOPICS, topics.REPORTS],
            timeout=60,
            settle=2.0,
            until=lambda ms: len(added(ms)) == 7,
        )

    def updates(report, agency=None):
        return [
            m
            for m in added(seen)
            if m.data["new_report_id"] == str(report.report_id)
            and (agency is None or m.topic == topics.dispatch_topic(agency))
        ]

    pln = updates(linked, "pln")
    assert len(pln) == 2 and pln[0].raw == pln[1].raw
    assert pln[0].headers["ce_id"] == derived_event_id(linked_in.event_id, "caller_added:pln")
    assert len(updates(linked, "damkar")) == len(updates(linked, "polres")) == 1
    # Never seen: linked now, under the watchdog's event id, to every agency of the incident.
    assert {m.headers["ce_id"] for m in updates(unknown)} == {
        derived_event_id(watchdog_event_id(unknown.report_id), f"caller_added:{a}") for a in ("damkar", "pln", "polres")
    }
    assert {m.data["dispatch_id"] for m in updates(unknown)} == {
        m.data["dispatch_id"] for m in of(seen, DISPATCH, incident)
    }
    # Neither was dispatched on its own.
    assert not of(seen, DISPATCH, linked) and not of(seen, DISPATCH, unknown)
