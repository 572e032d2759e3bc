"""What the console pushes to browsers for each event, and the fan-out to them."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from schemas import topics
from schemas.envelope import decode, encode
from schemas.events import (
    DispatchAcknowledged,
    DispatchEscalated,
    DispatchFieldStatus,
    EventCaller,
    EventLocation,
    OperatorCheckedIn,
    ReportClosed,
    ReportReceived,
    ReportReopened,
    RosterChanged,
    ShiftCoverageAlert,
)
from services.console.live import Broadcaster, LiveMetrics, translate

AT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
REPORT, DISPATCH, OPERATOR = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def envelope(event, topic=topics.REPORTS, key=None):
    record = encode(event, topic=topic, key=str(key or REPORT), source="test")
    return decode(record.headers, record.value, record.key)


def test_an_acknowledgement_is_a_dispatch_step():
    event = DispatchAcknowledged(dispatch_id=DISPATCH, report_id=REPORT, agency="damkar", via="api", acknowledged_at=AT)
    assert translate(envelope(event, topics.DISPATCH_STATUS)) == {
        "type": "dispatch",
        "step": "acknowledged",
        "report_id": str(REPORT),
        "dispatch_id": str(DISPATCH),
        "agency": "damkar",
        "at": AT.isoformat(),
    }


def test_field_status_and_escalation_steps():
    on_scene = DispatchFieldStatus(dispatch_id=DISPATCH, report_id=REPORT, agency="pln", status="on_scene", at=AT)
    resent = DispatchEscalated(
        dispatch_id=DISPATCH, report_id=REPORT, agency="pln", step="resent", reason="x", escalated_at=AT
    )
    escalated = resent.model_copy(update={"step": "escalated"})
    assert translate(envelope(on_scene, topics.DISPATCH_STATUS))["step"] == "on_scene"
    assert translate(envelope(resent, topics.DISPATCH_STATUS))["step"] == "resent"
    assert translate(envelope(escalated, topics.DISPATCH_STATUS))["step"] == "escalated"


def test_a_new_report_reaches_browsers_without_the_caller_or_the_free_text():
    event = ReportReceived(
        report_id=REPORT,
        kind="emergency",
        category="kebakaran",
        subtype="rumah",
        description="Rumah Pak Budi di Jl. Melati 3 terbakar",
        channel="sms",
        received_at=AT,
        location=EventLocation(kecamatan="Wlingi", desa="Beru", address="Jl. Melati 3", lat=-8.07, lon=112.3),
        caller=EventCaller(name="Budi Santoso", phone="+6281234567890"),
        verification="before_dispatch",
    )
    message = translate(envelope(event))
    assert message["event"] == "received" and message["kecamatan"] == "Wlingi"
    assert message["verification"] == "before_dispatch"
    text = json.dumps(message)
    for personal in ("Budi", "+6281234567890", "81234567890", "Melati", "-8.07"):
        assert personal not in text


def test_an_incident_closed_and_reopened_reaches_browsers_with_its_callers_but_not_the_free_text():
    caller = uuid.uuid4()
    closed = ReportClosed(
        report_id=REPORT,
        outcome="false_alarm",
        note="Pak Budi salah lihat, asap dari sampah",
        operator_id=OPERATOR,
        linked_reports=[caller],
        closed_at=AT,
    )
    assert translate(envelope(closed)) == {
        "type": "report",
        "event": "closed",
        "report_id": str(REPORT),
        "at": AT.isoformat(),
        "outcome": "false_alarm",
        "operator_id": str(OPERATOR),
        "linked_reports": [str(caller)],
    }
    on_its_own = ReportClosed(report_id=REPORT, outcome="resolved", closed_at=AT)
    assert translate(envelope(on_its_own))["operator_id"] is None
    reopened = ReportReopened(
        report_id=REPORT,
        reason="Api menyala lagi di rumah Pak Budi",
        operator_id=OPERATOR,
        linked_reports=[caller],
        reopened_at=AT,
    )
    assert translate(envelope(reopened)) == {
        "type": "report",
        "event": "reopened",
        "report_id": str(REPORT),
        "at": AT.isoformat(),
        "operator_id": str(OPERATOR),
        "linked_reports": [str(caller)],
    }


def test_shift_events_and_the_coverage_alert():
    checked_in = OperatorCheckedIn(operator_id=OPERATOR, shift="pagi", at=AT)
    message = translate(envelope(checked_in, topics.SHIFTS, OPERATOR))
    assert message == {"type": "shift", "event": "checked_in", "operator_id": str(OPERATOR), "at": AT.isoformat()}
    alert = ShiftCoverageAlert(
        shift="pagi",
        shift_starts_at=AT,
        shift_ends_at=AT,
        needed=2,
        checked_in=0,
        reason="nobody",
        missing_operator_ids=[OPERATOR],
        at=AT,
    )
    assert translate(envelope(alert, topics.SHIFTS, "coverage"))["event"] == "coverage_alert"


def test_events_the_screens_do_not_show_are_dropped():
    roster = RosterChanged(
        change_id=1,
        kind="generated",
        month="2026-12",
        entries=[],
        changed_by="x",
        reason="y",
        override=False,
        violations=0,
        at=AT,
    )
    assert translate(envelope(roster, topics.SHIFTS, "roster")) is None


async def test_every_stream_gets_every_message_and_closing_ends_them():
    broadcaster = Broadcaster(10, LiveMetrics(CollectorRegistry()))
    got: dict[int, list] = {1: [], 2: []}

    async def stream(number):
        async with broadcaster.subscribe() as subscription:
            async for message in subscription:
                got[number].append(message["n"])

    tasks = [asyncio.create_task(stream(1)), asyncio.create_task(stream(2))]
    while len(broadcaster.subscribers) < 2:
        await asyncio.sleep(0)
    for n in range(3):
        broadcaster.publish({"type": "report", "n": n})
    broadcaster.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert got == {1: [0, 1, 2], 2: [0, 1, 2]}
    assert not broadcaster.subscribers


async def test_a_browser_that_falls_behind_is_told_to_reload_instead_of_queueing_forever():
    broadcaster = Broadcaster(3, LiveMetrics(CollectorRegistry()))
    async with broadcaster.subscribe() as subscription:
        for n in range(10):
            broadcaster.publish({"type": "dispatch", "n": n})
        assert subscription.queue.qsize() == 1
        first = await subscription.queue.get()
        assert first == {"type": "resync"}
        broadcaster.publish({"type": "dispatch", "n": 99})
        assert subscription.queue.qsize() == 0  # dropped until the resync is read by the stream


def test_the_feed_state_is_told_once_per_change():
    broadcaster = Broadcaster(10, LiveMetrics(CollectorRegistry()))
    sent = []
    broadcaster.publish = sent.append
    broadcaster.set_feed(True)
    broadcaster.set_feed(True)
    broadcaster.set_feed(False)
    assert sent == [{"type": "feed", "live": True}, {"type": "feed", "live": False}]
