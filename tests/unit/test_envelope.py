"""schemas/envelope.py: CloudEvents 1.0 in Kafka binary content mode, per the contract."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.envelope import InvalidEvent, decode, derived_event_id, encode
from schemas.events import DispatchDelivered, DispatchRequested, EventCaller, EventLocation

WIB = timezone(timedelta(hours=7))
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
CONTRACT_HEADERS = {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"}

REPORT_ID = uuid.UUID("0b4f4c6e-2f0a-4a4e-9a51-3f3c1d7e9a10")


def delivered() -> DispatchDelivered:
    return DispatchDelivered(
        dispatch_id=uuid.uuid5(REPORT_ID, "dispatch:damkar"),
        report_id=REPORT_ID,
        agency="damkar",
        channel="webhook",
        attempts=2,
        delivered_at=datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC),
    )


def requested() -> DispatchRequested:
    return DispatchRequested(
        dispatch_id=uuid.uuid5(REPORT_ID, "dispatch:damkar"),
        report_id=REPORT_ID,
        agency="damkar",
        role="primary",
        category="kebakaran",
        subtype="rumah",
        description="Rumah terbakar dekat pasar",
        location=EventLocation(kecamatan="Wlingi", lat=-8.078, lon=112.318),
        caller=EventCaller(name="Budi", phone="+6281234567890"),
        channel="call",
        received_at=datetime(2026, 3, 1, 4, 0, tzinfo=UTC),
        requested_at=datetime(2026, 3, 1, 4, 0, 1, tzinfo=UTC),
    )


def record(event=None, **kwargs):
    args = {"topic": "e112.dispatch.damkar", "key": str(REPORT_ID), "source": "e112/router"} | kwargs
    return encode(event or requested(), **args)


def test_encode_sets_exactly_the_contract_headers():
    rec = record(event_id="evt-1")
    names = [name for name, _ in rec.headers]
    assert sorted(names) == sorted(CONTRACT_HEADERS)  # each once, nothing else
    headers = dict(rec.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == b"evt-1"
    assert headers["ce_source"] == b"e112/router"
    assert headers["ce_type"] == b"id.go.blitarkab.e112.dispatch.requested.v1"
    assert headers["content-type"] == b"application/json"


def test_header_values_are_bytes():
    assert all(isinstance(name, str) and isinstance(value, bytes) for name, value in record().headers)


def test_ce_time_is_rfc3339():
    headers = dict(record(time=datetime(2026, 3, 1, 4, 5, 6, 789000, tzinfo=UTC)).headers)
    text = headers["ce_time"].decode()
    assert RFC3339.match(text), text
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == datetime(2026, 3, 1, 4, 5, 6, 789000, tzinfo=UTC)


def test_default_ce_time_is_rfc3339_and_now():
    before = datetime.now(UTC)
    text = dict(record().headers)["ce_time"].decode()
    assert RFC3339.match(text), text
    stamped = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC) + timedelta(seconds=1)


def test_ce_time_keeps_the_instant_of_a_non_utc_time():
    moment = datetime(2026, 3, 1, 11, 5, 6, tzinfo=WIB)  # 04:05:06 UTC
    text = dict(record(time=moment).headers)["ce_time"].decode()
    assert RFC3339.match(text), text
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


def test_default_event_ids_are_unique():
    assert record().event_id != record().event_id


def test_event_id_property_reads_ce_id():
    assert record(event_id="evt-42").event_id == "evt-42"


def test_key_is_the_encoded_key_and_topic_is_kept():
    rec = record(key=str(REPORT_ID), topic="e112.dispatch.damkar")
    assert rec.key == str(REPORT_ID).encode()
    assert rec.topic == "e112.dispatch.damkar"


def test_value_is_the_plain_json_data():
    rec = record()
    data = json.loads(rec.value)  # readable by any Kafka client: no envelope around it
    assert "specversion" not in data and "data" not in data
    assert data["dispatch_id"] == str(uuid.uuid5(REPORT_ID, "dispatch:damkar"))
    assert data["report_id"] == str(REPORT_ID)
    assert data["agency"] == "damkar"
    assert data["role"] == "primary"
    assert data["caller"]["phone"] == "+6281234567890"
    assert data["location"]["kecamatan"] == "Wlingi"


def test_dispatch_requested_carries_the_contract_fields():
    data = json.loads(record().value)
    required = {
        "dispatch_id",
        "report_id",
        "agency",
        "role",
        "category",
        "subtype",
        "description",
        "location",
        "caller",
        "received_at",
    }
    assert required <= data.keys()


def test_decode_round_trips_into_the_right_model():
    moment = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)
    rec = record(event_id="evt-7", time=moment)
    env = decode(rec.headers, rec.value, rec.key)
    assert isinstance(env.data, DispatchRequested)
    assert env.data == requested()
    assert env.id == "evt-7"
    assert env.type == DispatchRequested.ce_type
    assert env.source == "e112/router"
    assert env.time == moment
    assert env.key == str(REPORT_ID)
    assert env.raw_data == rec.value


def test_decode_picks_the_model_by_ce_type():
    rec = record(delivered(), topic="e112.dispatch-status", source="e112/notifier")
    env = decode(rec.headers, rec.value, rec.key)
    assert isinstance(env.data, DispatchDelivered)
    assert env.data.attempts == 2


def test_decode_accepts_aiokafka_style_header_tuples():
    rec = record()
    env = decode(tuple((name, value) for name, value in rec.headers), rec.value)
    assert isinstance(env.data, DispatchRequested)
    assert env.key is None


def test_decode_accepts_json_content_type_with_charset():
    rec = record()
    headers = [(n, b"application/json; charset=utf-8" if n == "content-type" else v) for n, v in rec.headers]
    assert isinstance(decode(headers, rec.value).data, DispatchRequested)


def without(rec, name):
    return [(n, v) for n, v in rec.headers if n != name]


@pytest.mark.parametrize("missing", ["ce_type", "ce_source", "ce_id", "ce_specversion", "content-type"])
def test_missing_required_header_is_invalid(missing):
    rec = record()
    with pytest.raises(InvalidEvent):
        decode(without(rec, missing), rec.value, rec.key)


@pytest.mark.parametrize("content_type", [b"text/plain", b"application/xml", b"application/cloudevents+json"])
def test_wrong_content_type_is_invalid(content_type):
    rec = record()
    headers = [(n, content_type if n == "content-type" else v) for n, v in rec.headers]
    with pytest.raises(InvalidEvent):
        decode(headers, rec.value, rec.key)


def test_data_not_matching_the_model_is_invalid():
    rec = record()
    data = json.loads(rec.value)
    del data["dispatch_id"]
    with pytest.raises(InvalidEvent):
        decode(rec.headers, json.dumps(data).encode(), rec.key)


def test_data_with_wrong_agency_is_invalid():
    rec = record()
    data = json.loads(rec.value) | {"agency": "tni"}
    with pytest.raises(InvalidEvent):
        decode(rec.headers, json.dumps(data).encode(), rec.key)


@pytest.mark.parametrize("value", [b"not json", b"", None, b"[]"])
def test_value_that_is_not_the_models_json_is_invalid(value):
    rec = record()
    with pytest.raises(InvalidEvent):
        decode(rec.headers, value, rec.key)


def test_unknown_ce_type_decodes_with_data_none():
    rec = record()
    future = "id.go.blitarkab.e112.dispatch.rerouted.v1"
    headers = [(n, future.encode() if n == "ce_type" else v) for n, v in rec.headers]
    value = b'{"dispatch_id": "x", "reason": "duplicate call"}'
    env = decode(headers, value, rec.key)
    assert env.type == future
    assert env.data is None
    assert env.raw_data == value
    assert env.id == rec.event_id


def test_unknown_field_in_known_event_is_ignored():
    # Producers may add fields without breaking older readers (the contract).
    rec = record()
    data = json.loads(rec.value) | {"new_field": 1}
    env = decode(rec.headers, json.dumps(data).encode())
    assert env.data == requested()


def test_derived_event_id_is_deterministic():
    assert derived_event_id("cause-1", "damkar") == derived_event_id("cause-1", "damkar")


def test_derived_event_id_differs_per_discriminator_and_cause():
    ids = {
        derived_event_id("cause-1", "damkar"),
        derived_event_id("cause-1", "pln"),
        derived_event_id("cause-1", "routed"),
        derived_event_id("cause-2", "damkar"),
    }
    assert len(ids) == 4


def test_derived_event_id_is_a_uuid_and_not_the_cause():
    value = derived_event_id("cause-1", "damkar")
    assert str(uuid.UUID(value)) == value
    assert value != "cause-1"


@pytest.mark.parametrize("version", [b"0.3", b"2.0", b""])
def test_specversion_other_than_1_0_is_invalid(version):
    rec = record()
    headers = [(n, version if n == "ce_specversion" else v) for n, v in rec.headers]
    with pytest.raises(InvalidEvent):
        decode(headers, rec.value, rec.key)


def test_the_cloudevents_sdk_reads_what_encode_writes():
    """The binding is written by hand for speed (schemas/envelope.py); the SDK is the
    reference an agency in Python would use."""
    from cloudevents.core.bindings import kafka as ce_kafka

    event = requested()
    record = encode(event, topic="e112.dispatch.damkar", key=str(event.report_id), source="e112/router")
    read = ce_kafka.from_binary(
        ce_kafka.KafkaMessage(headers=dict(record.headers), key=None, value=record.value), ce_kafka.JSONFormat()
    )
    assert read.get_id() == record.event_id and read.get_type() == event.ce_type
    assert read.get_source() == "e112/router" and read.get_specversion() == "1.0"
    assert read.get_time() is not None and read.get_time().tzinfo is not None
    assert read.get_data() == json.loads(record.value)


def test_decode_reads_what_the_cloudevents_sdk_writes():
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.v1.event import CloudEvent

    event = requested()
    attributes = {
        "specversion": "1.0",
        "id": "sdk-1",
        "source": "agency-test",
        "type": event.ce_type,
        "time": datetime(2026, 12, 1, 7, 30, tzinfo=timezone(timedelta(hours=7))),
        "datacontenttype": "application/json",
    }
    message = ce_kafka.to_binary(
        CloudEvent(attributes=attributes, data=event.model_dump_json().encode()),
        ce_kafka.JSONFormat(),
        key_mapper=lambda _event: None,
    )
    envelope = decode(list(message.headers.items()), message.value, b"k")
    assert (envelope.id, envelope.source, envelope.type) == ("sdk-1", "agency-test", event.ce_type)
    assert envelope.time == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert envelope.data == event


@pytest.mark.parametrize("stamp", [b"2026-12-01", b"2026-12-01T10:00:00", b"yesterday", b"\xff"])
def test_a_ce_time_that_is_not_rfc3339_is_invalid(stamp):
    rec = record()
    headers = [(n, stamp if n == "ce_time" else v) for n, v in rec.headers]
    with pytest.raises(InvalidEvent):
        decode(headers, rec.value)
