"""CloudEvents 1.0 in Kafka binary content mode: the one place every service encodes
and decodes its events.

The CloudEvents SDK's Kafka binding maps attributes to `ce_*` headers and
`datacontenttype` to `content-type`, and validates the required attributes on read.
The data itself is serialised by pydantic (faster, and exactly the published JSON
Schema).
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from schemas.events import EVENT_MODELS, Event

CONTENT_TYPE = "application/json"
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """A message ready for any Kafka producer."""

    topic: str
    key: bytes
    headers: Headers
    value: bytes

    @property
    def event_id(self) -> str:
        return dict(self.headers)["ce_id"].decode()


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded event. `data` is None when the type is not one this code knows:
    readers skip such events (the contract lets producers add types)."""

    id: str
    type: str
    source: str
    time: datetime | None
    key: str | None
    data: Event | None
    raw_data: bytes = b""  # the JSON exactly as published, for forwarding unchanged


class InvalidEvent(ValueError):
    """A message that is not a valid CloudEvent of a known shape: dead-letter it."""


def new_event_id() -> str:
    return str(uuid.uuid4())


def derived_event_id(cause_id: str, discriminator: str) -> str:
    """A deterministic id for an event caused by another one, so that reprocessing the
    cause (after a crash, or a replay) emits the very same ce_id and every consumer's
    deduplication drops the copy."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"e112:{cause_id}:{discriminator}"))


def encode(
    event: Event,
    *,
    topic: str,
    key: str,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> KafkaRecord:
    attributes = {
        "specversion": "1.0",
        "id": event_id or new_event_id(),
        "source": source,
        "type": event.ce_type,
        "time": time or datetime.now(UTC),
        "datacontenttype": CONTENT_TYPE,
    }
    message = ce_kafka.to_binary(
        CloudEvent(attributes=attributes, data=event.model_dump_json().encode()),
        ce_kafka.JSONFormat(),
        key_mapper=lambda _event: None,
    )
    return KafkaRecord(
        topic=topic,
        key=key.encode(),
        headers=[(name, value) for name, value in message.headers.items()],
        value=message.value,
    )


def decode(headers: Headers | tuple, value: bytes | None, key: bytes | None = None) -> Envelope:
    """Parse a Kafka message; raise InvalidEvent for anything not a valid known event."""
    header_map = {name: bytes(raw) for name, raw in headers}
    # The SDK fills in a missing id (a random one: fatal for deduplication) and a
    # missing or older specversion; the contract requires both, so check them first.
    if header_map.get("ce_specversion") != b"1.0":
        raise InvalidEvent("ce_specversion must be 1.0")
    if not header_map.get("ce_id"):
        raise InvalidEvent("ce_id is missing: it is the deduplication key")
    try:
        event = ce_kafka.from_binary(
            ce_kafka.KafkaMessage(headers=header_map, key=None, value=value or b""),
            _RawData(),
        )
    except (BaseCloudEventException, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidEvent(f"not a CloudEvents 1.0 binary-mode message: {exc}") from None
    if header_map.get("content-type", b"").split(b";")[0].strip() != CONTENT_TYPE.encode():
        raise InvalidEvent(f"content-type must be {CONTENT_TYPE}")
    model = EVENT_MODELS.get(event.get_type())
    data = None
    if model is not None:
        try:
            data = model.model_validate_json(value or b"")
        except ValidationError as exc:
            raise InvalidEvent(f"{event.get_type()} data does not match its schema: {exc}") from None
    return Envelope(
        id=event.get_id(),
        type=event.get_type(),
        source=event.get_source(),
        time=event.get_time(),
        key=key.decode(errors="replace") if key is not None else None,
        data=data,
        raw_data=value or b"",
    )


class _RawData(ce_kafka.JSONFormat):
    """Leave the data as bytes: pydantic parses it once, against the event's model."""

    def read_data(self, body, content_type):  # noqa: D401 - SDK hook
        return bytes(body) if body is not None else None
