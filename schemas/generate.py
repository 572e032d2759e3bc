"""Writes the published documents from the models: `json/*.schema.json` (JSON Schema
2020-12) and `asyncapi.json` (AsyncAPI 3.0). Run `make schemas` after changing a
model; a test fails while the committed files are stale.

    python -m schemas.generate           # write
    python -m schemas.generate --check   # exit 1 if a file would change
"""

import argparse
import json
import sys
from pathlib import Path

from schemas import topics
from schemas.catalog import AGENCIES
from schemas.events import EVENT_MODELS
from schemas.reports import ReportAccepted, ReportCreate, ReportPublic

HERE = Path(__file__).parent
REST_MODELS = {"report-create": ReportCreate, "report-accepted": ReportAccepted, "report": ReportPublic}
TOPIC_ORDER = [topics.REPORTS, topics.DISPATCH_TEMPLATE, topics.DISPATCH_STATUS, topics.SHIFTS]
EVENTS_BY_TOPIC = {topic: [m for m in EVENT_MODELS.values() if m.topic == topic] for topic in TOPIC_ORDER}
assert sum(map(len, EVENTS_BY_TOPIC.values())) == len(EVENT_MODELS), "an event model on an unknown topic"


def event_file_name(model) -> str:
    return model.ce_type.removeprefix("id.go.blitarkab.e112.") + ".schema.json"


def json_schema(model, schema_id: str) -> dict:
    schema = model.model_json_schema(mode="serialization" if model is not ReportCreate else "validation")
    head = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id}
    if hasattr(model, "ce_type"):
        head["x-cloudevents-type"] = model.ce_type
    return {**head, **schema}


def documents() -> dict[str, dict]:
    docs = {
        f"json/{name}.schema.json": json_schema(model, f"{name}.schema.json") for name, model in REST_MODELS.items()
    }
    for models in EVENTS_BY_TOPIC.values():
        for model in models:
            name = event_file_name(model)
            docs[f"json/{name}"] = json_schema(model, name)
    docs["asyncapi.json"] = asyncapi()
    return docs


def asyncapi() -> dict:
    channels, operations, messages = {}, {}, {}
    for address, models in EVENTS_BY_TOPIC.items():
        channel_id = address.replace("{agency}", "agency").replace(".", "_").replace("-", "_")
        channels[channel_id] = _event_channel(address, models)
        operations[f"receive_{channel_id}"] = _receive(channel_id)
        messages.update({model.__name__: _event_message(model) for model in models})
    channels["e112_deadletter"] = {
        "address": topics.DEADLETTER,
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
    }
    messages["DeadLetter"] = _deadletter_message()
    operations["receive_e112_deadletter"] = _receive("e112_deadletter")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Layanan 112 Kabupaten Blitar: events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in Kafka binary content mode: attributes in ce_* headers, "
            "the JSON data as the value. Delivery is at least once: deduplicate by ce_id. "
            "Skip ce_types you do not know.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _receive(channel_id: str) -> dict:
    return {"action": "receive", "channel": {"$ref": f"#/channels/{channel_id}"}}


def _event_channel(address: str, models) -> dict:
    channel = {
        "address": address,
        "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"} for model in models},
    }
    if "{agency}" in address:
        channel["parameters"] = {"agency": {"enum": list(AGENCIES), "description": "The agency's code"}}
    return channel


def _ce_headers() -> dict:
    """The CloudEvents attributes every event carries in its Kafka headers."""
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {"type": "string", "description": "Unique; the deduplication key"},
            "ce_source": {"type": "string", "description": "The producing service, e.g. e112/router"},
            "ce_type": {"type": "string"},
            "ce_time": {"type": "string", "format": "date-time"},
            "content-type": {"const": "application/json"},
        },
    }


def _event_message(model) -> dict:
    ce_headers = _ce_headers()
    return {
        "name": model.ce_type,
        "title": model.__name__,
        "summary": (model.__doc__ or "").strip(),
        "contentType": "application/json",
        "headers": {
            **ce_headers,
            "properties": {**ce_headers["properties"], "ce_type": {"const": model.ce_type}},
        },
        "payload": {"$ref": f"json/{event_file_name(model)}"},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "report id; on e112.shifts: operator id, `coverage` or `roster`",
                }
            }
        },
    }


def _deadletter_message() -> dict:
    return {
        "name": "deadletter",
        "title": "DeadLetter",
        "summary": "An event a consumer could not process, unchanged (its headers, key and value), with "
        "where it came from and why it failed in e112_* headers. Re-driven by an operator after the fix.",
        "headers": {
            "type": "object",
            "required": [
                "e112_error",
                "e112_consumer",
                "e112_original_topic",
                "e112_original_partition",
                "e112_original_offset",
            ],
            "properties": {
                "e112_error": {"type": "string", "description": "Why it failed (first 2000 characters)"},
                "e112_consumer": {"type": "string", "description": "The consumer that gave up on it"},
                "e112_original_topic": {"type": "string"},
                "e112_original_partition": {"type": "string", "description": "A decimal number"},
                "e112_original_offset": {"type": "string", "description": "A decimal number"},
            },
            "additionalProperties": {"type": "string", "description": "The original headers (ce_* and others)"},
        },
        "payload": {"description": "The original value, byte for byte (it may not be valid JSON)"},
        "bindings": {"kafka": {"key": {"type": "string", "description": "The original key"}}},
    }


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def stale_files() -> list[str]:
    return [
        path
        for path, doc in documents().items()
        if not (HERE / path).exists() or (HERE / path).read_text() != render(doc)
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: schemas/{path} (run `make schemas`)", file=sys.stderr)
        return 1 if stale else 0
    (HERE / "json").mkdir(exist_ok=True)
    for path, doc in documents().items():
        (HERE / path).write_text(render(doc))
        print(f"wrote schemas/{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
