"""services/common/web.py field_errors: pydantic errors as [{field, message}], no input echoed."""

import pytest
from pydantic import ValidationError

from schemas.reports import ReportCreate
from services.common.web import field_errors

PHONE = "0999-12345678901"  # an invalid number, still a caller's personal data


def errors_of(body: dict) -> list[dict]:
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(body)
    # As FastAPI reports body errors: loc starts with "body".
    return [{**e, "loc": ("body", *e["loc"])} for e in exc.value.errors()]


def test_nested_location_becomes_a_dotted_field():
    out = field_errors(errors_of({"location": {"kecamatan": "Kepanjen"}}))
    assert [e["field"] for e in out] == ["location.kecamatan"]


def test_body_prefix_is_dropped():
    out = field_errors([{"type": "missing", "loc": ("body", "category"), "msg": "Field required"}])
    assert out == [{"field": "category", "message": "Field required"}]


def test_list_indexes_appear_in_the_path():
    out = field_errors([{"type": "x", "loc": ("body", "dispatches", 0, "agency"), "msg": "bad"}])
    assert out[0]["field"] == "dispatches.0.agency"


def test_error_on_the_whole_body_is_named_body():
    out = field_errors([{"type": "model_type", "loc": ("body",), "msg": "Input should be an object"}])
    assert out == [{"field": "(body)", "message": "Input should be an object"}]


def test_unknown_field_says_unknown_field():
    out = field_errors(errors_of({"phone_number": PHONE}))
    assert out == [{"field": "phone_number", "message": "unknown field"}]


def test_every_entry_has_exactly_field_and_message():
    out = field_errors(errors_of({"casualties": "3", "channel": "fax", "location": {"lat": -8.1}}))
    assert len(out) == 3
    assert all(set(e) == {"field", "message"} for e in out)
    assert {e["field"] for e in out} == {"casualties", "channel", "location"}


def test_input_value_is_not_echoed():
    raw = errors_of({"caller": {"phone": PHONE, "name": "x" * 101}, "description": "d" * 2001})
    assert any(e.get("input") == PHONE for e in raw)  # pydantic does carry it
    out = field_errors(raw)
    text = repr(out)
    assert PHONE not in text
    assert "x" * 101 not in text
    assert "d" * 2001 not in text
    assert {e["field"] for e in out} == {"caller.phone", "caller.name", "description"}


def test_missing_message_falls_back():
    assert field_errors([{"loc": ("body", "kind")}]) == [{"field": "kind", "message": "invalid"}]
