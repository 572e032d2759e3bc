"""What the router tells the operators about a message it dead-letters
(services/router/deadletters.py), and how the re-drive command picks and rebuilds the
originals (services/common/redrive.py)."""

import uuid
from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord

from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import EventCaller, EventLocation, ReportReceived, ReportUnrouted
from services.common.consumer import deadletter_record
from services.common.redrive import DeadLetter, deadletter_claim, default_schema, parse_deadletter, select
from services.router.deadletters import failed_report, operators_reason

REPORT = uuid.UUID("0b4f4c6e-2f0a-4a4e-9a51-3f3c1d7e9a10")
T0 = datetime(2026, 1, 31, 1, 0, tzinfo=UTC)


def consumed(record: KafkaRecord, *, offset: int = 7, partition: int = 1, timestamp: datetime = T0) -> ConsumerRecord:
    return ConsumerRecord(
        record.topic,
        partition,
        offset,
        int(timestamp.timestamp() * 1000),
        0,
        record.key,
        record.value,
        None,
        len(record.key),
        len(record.value),
        record.headers,
    )


def report(kind: str = "emergency", category: str | None = "kebakaran") -> KafkaRecord:
    event = ReportReceived(
        report_id=REPORT,
        kind=kind,
        category=category,
        subtype=None,
        description="uji",
        location=EventLocation(kecamatan="Talun"),
        caller=EventCaller(name="Sri", phone="+6281234567890"),
        channel="call",
        received_at=T0,
    )
    return encode(event, topic=topics.REPORTS, key=str(REPORT), source="test", event_id="ev-1")


def test_a_report_that_fails_is_known_by_id_and_category():
    assert failed_report(consumed(report())) == (REPORT, "kebakaran")


def test_a_prank_that_fails_is_not_for_the_operators():
    assert failed_report(consumed(report(kind="prank", category=None))) is None


def test_an_unreadable_report_is_known_by_its_key():
    broken = KafkaRecord(topics.REPORTS, str(REPORT).encode(), [("ce_id", b"x")], b"not json")
    assert failed_report(consumed(broken)) == (REPORT, None)


def test_an_unreadable_message_with_a_key_that_is_no_report_id_tells_nobody():
    assert failed_report(consumed(KafkaRecord(topics.REPORTS, b"x", [("ce_id", b"x")], b"{"))) is None


def test_a_broken_event_of_another_type_is_not_a_report_waiting_for_routing():
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_type", b"id.go.blitarkab.e112.report.routed.v1")]
    assert failed_report(consumed(KafkaRecord(topics.REPORTS, str(REPORT).encode(), headers, b"{}"))) is None


def test_the_routers_own_events_are_not_reports_to_route():
    event = ReportUnrouted(report_id=REPORT, category=None, reason="x", at=T0)
    record = encode(event, topic=topics.REPORTS, key=str(REPORT), source="test")
    assert failed_report(consumed(record)) is None


def test_messages_on_other_topics_are_not_reports():
    record = report()
    elsewhere = KafkaRecord(topics.SHIFTS, record.key, record.headers, record.value)
    assert failed_report(consumed(elsewhere)) is None


def test_the_operators_read_only_the_errors_first_line():
    error = "data does not match its schema: 1 validation error\ncaller.phone\n  input_value='+6281234567890'"
    reason = operators_reason(error)
    assert "dead-lettered" in reason and "1 validation error" in reason
    assert "6281234567890" not in reason


# --- the re-drive command's pure parts ---------------------------------------------------


def dead(record: KafkaRecord, *, consumer: str = "router", at: datetime = T0, offset: int = 3) -> ConsumerRecord:
    letter = deadletter_record(consumed(record, offset=41), consumer=consumer, error="Boom: no table\nmore")
    return consumed(letter, offset=offset, partition=0, timestamp=at)


def test_a_dead_letter_gives_back_the_original_message_unchanged():
    original = report()
    letter = parse_deadletter(dead(original))
    assert letter.consumer == "router" and letter.error.startswith("Boom")
    assert letter.original == original  # topic, key, headers (no e112_*), value
    assert letter.ce_id == "ev-1"
    assert letter.at == T0


def test_a_message_that_is_no_dead_letter_is_ignored():
    assert parse_deadletter(consumed(report())) is None


def test_selection_by_consumer_and_time_keeps_one_per_event_oldest_first():
    later, first, other_event = (
        report(),
        report(),
        encode(
            ReportUnrouted(report_id=REPORT, category=None, reason="x", at=T0),
            topic=topics.REPORTS,
            key=str(REPORT),
            source="t",
            event_id="ev-2",
        ),
    )
    letters = [
        parse_deadletter(dead(later, at=T0 + timedelta(minutes=5), offset=9)),
        parse_deadletter(dead(first, at=T0, offset=2)),
        parse_deadletter(dead(other_event, at=T0 + timedelta(minutes=1), offset=4)),
        parse_deadletter(dead(report(), consumer="notifier", at=T0, offset=1)),
    ]
    chosen = select(letters, consumer="router")
    assert [(d.ce_id, d.offset) for d in chosen] == [("ev-1", 2), ("ev-2", 4)]
    assert [d.ce_id for d in select(letters, consumer="router", since=T0 + timedelta(seconds=30))] == ["ev-2", "ev-1"]
    assert select(letters, consumer="router", until=T0 - timedelta(seconds=1)) == []
    assert [d.ce_id for d in select(letters, consumer="router", ce_ids={"ev-2"})] == ["ev-2"]
    assert [d.consumer for d in select(letters, consumer="notifier")] == ["notifier"]


def test_a_dead_letter_without_ce_id_is_selected_under_its_position():
    broken = KafkaRecord(topics.REPORTS, b"x", [], b"junk")
    letter: DeadLetter = parse_deadletter(dead(broken))
    assert letter.ce_id is None
    assert len(select([letter], consumer="router")) == 1


def test_dead_letter_claims_never_collide_with_event_ids():
    assert deadletter_claim("ev-1") == "deadletter:ev-1" != "ev-1"


def test_the_schema_is_the_service_part_of_the_consumer_name():
    assert default_schema("router") == "router"
    assert default_schema("intake-timeline") == "intake"
