"""The committed JSON Schema and AsyncAPI documents must match the models
(schemas/generate.py). If this fails, run `make schemas` and commit the result."""

import json

from schemas import generate, topics


def test_committed_json_schema_and_asyncapi_files_are_not_stale():
    assert generate.stale_files() == [], "run `make schemas` and commit the regenerated files"


def test_stale_check_covers_every_rest_model_event_and_asyncapi():
    paths = set(generate.documents())
    assert "asyncapi.json" in paths
    assert {"json/report-create.schema.json", "json/report-accepted.schema.json", "json/report.schema.json"} <= paths
    assert "json/dispatch.requested.v1.schema.json" in paths


def test_stale_check_detects_a_changed_file(tmp_path, monkeypatch):
    # Point the generator at a copy of the committed files and change one of them.
    for path in generate.documents():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((generate.HERE / path).read_text())
    monkeypatch.setattr(generate, "HERE", tmp_path)
    assert generate.stale_files() == []
    doc = json.loads((tmp_path / "json/report-create.schema.json").read_text())
    doc["title"] = "Changed"
    (tmp_path / "json/report-create.schema.json").write_text(json.dumps(doc))
    (tmp_path / "asyncapi.json").unlink()
    assert sorted(generate.stale_files()) == ["asyncapi.json", "json/report-create.schema.json"]


def test_asyncapi_declares_the_contract_headers():
    doc = json.loads((generate.HERE / "asyncapi.json").read_text())
    message = doc["components"]["messages"]["DispatchRequested"]
    assert set(message["headers"]["required"]) == {
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "content-type",
    }
    assert message["headers"]["properties"]["ce_type"] == {"const": "id.go.blitarkab.e112.dispatch.requested.v1"}


def test_the_asyncapi_document_has_every_topic_the_services_use_dead_letters_included():
    addresses = {channel["address"] for channel in generate.asyncapi()["channels"].values()}
    expected = {topics.REPORTS, topics.DISPATCH_TEMPLATE, topics.DISPATCH_STATUS, topics.SHIFTS, topics.DEADLETTER}
    assert addresses == expected
