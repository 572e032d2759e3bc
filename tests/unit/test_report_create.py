"""schemas/reports.py ReportCreate: strict validation of what apps post."""

import pytest
from pydantic import ValidationError

from schemas.reports import ReportCreate

CONTRACT_EXAMPLE = {
    "category": "kebakaran",
    "subtype": "rumah",
    "description": "Rumah terbakar dekat pasar, asap tebal",
    "location": {"kecamatan": "Wlingi", "desa": "Beru", "address": "Jl. Raya Beru 12", "lat": -8.078, "lon": 112.318},
    "caller": {"name": "Budi", "phone": "081234567890"},
    "channel": "call",
}


def example(**changes) -> dict:
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in CONTRACT_EXAMPLE.items()}
    body.update(changes)
    return body


def with_location(**changes) -> dict:
    return example(location={**CONTRACT_EXAMPLE["location"], **changes})


def error_locs(exc: pytest.ExceptionInfo) -> list[tuple]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


def test_contract_example_is_accepted():
    report = ReportCreate.model_validate(CONTRACT_EXAMPLE)
    assert report.kind == "emergency"
    assert report.category == "kebakaran"
    assert report.location.kecamatan == "Wlingi"
    assert report.missing_for_emergency() == []


def test_defaults_are_emergency_and_call():
    report = ReportCreate.model_validate({})
    assert report.kind == "emergency"
    assert report.channel == "call"


@pytest.mark.parametrize("spelling", ["wlingi", "WLINGI", "wLiNgI", " Wlingi "])
def test_kecamatan_in_any_case_is_normalised(spelling):
    report = ReportCreate.model_validate(with_location(kecamatan=spelling))
    assert report.location.kecamatan == "Wlingi"


def test_unknown_kecamatan_is_rejected_naming_the_field():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(with_location(kecamatan="Kepanjen"))
    assert error_locs(exc) == [("location", "kecamatan")]


def test_boolean_latitude_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(with_location(lat=False))
    assert ("location", "lat") in error_locs(exc)


def test_string_latitude_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(with_location(lat="-8.078"))
    assert ("location", "lat") in error_locs(exc)


def test_string_casualties_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(casualties="3"))
    assert error_locs(exc) == [("casualties",)]


def test_boolean_casualties_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(casualties=True))
    assert error_locs(exc) == [("casualties",)]


def test_negative_casualties_is_rejected():
    with pytest.raises(ValidationError):
        ReportCreate.model_validate(example(casualties=-1))


def test_integer_casualties_is_accepted():
    assert ReportCreate.model_validate(example(casualties=3)).casualties == 3


def test_unknown_top_level_field_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(phone_number="081234567890"))
    errors = exc.value.errors()
    assert [(tuple(e["loc"]), e["type"]) for e in errors] == [(("phone_number",), "extra_forbidden")]


def test_unknown_nested_field_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(with_location(kelurahan="Beru"))
    assert error_locs(exc) == [("location", "kelurahan")]


def test_latitude_without_longitude_is_rejected():
    body = example(location={"kecamatan": "Wlingi", "lat": -8.078})
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(body)
    assert error_locs(exc) == [("location",)]


def test_longitude_without_latitude_is_rejected():
    body = example(location={"kecamatan": "Wlingi", "lon": 112.318})
    with pytest.raises(ValidationError):
        ReportCreate.model_validate(body)


def test_location_without_coordinates_is_accepted():
    report = ReportCreate.model_validate(example(location={"kecamatan": "Wlingi"}))
    assert report.location.lat is None and report.location.lon is None


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (8.078, 112.318),  # northern hemisphere: sign dropped
        (112.318, -8.078),  # lat and lon swapped
        (-6.2, 106.8),  # Jakarta
        (-7.25, 112.75),  # Surabaya
        (-9.5, 112.3),  # in the Indian Ocean
    ],
)
def test_coordinates_outside_the_regency_are_rejected(lat, lon):
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(with_location(lat=lat, lon=lon))
    assert {loc[:1] for loc in error_locs(exc)} == {("location",)}


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(-8.078, 112.318), (-8.25, 112.05), (-7.98, 112.45)],  # Wlingi, Wonotirto area, Nglegok area
)
def test_coordinates_inside_the_regency_are_accepted(lat, lon):
    report = ReportCreate.model_validate(with_location(lat=lat, lon=lon))
    assert (report.location.lat, report.location.lon) == (lat, lon)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("081234567890", "+6281234567890"),
        ("+6281234567890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("(0342) 801234", "+62342801234"),
    ],
)
def test_caller_phone_is_stored_in_e164(raw, e164):
    report = ReportCreate.model_validate(example(caller={"phone": raw}))
    assert report.caller.phone == e164


def test_invalid_caller_phone_is_rejected_naming_the_field():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(caller={"phone": "12345"}))
    assert error_locs(exc) == [("caller", "phone")]


def test_numeric_phone_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(caller={"phone": 81234567890}))
    assert error_locs(exc) == [("caller", "phone")]


def test_unknown_category_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(category="gempa"))
    assert error_locs(exc) == [("category",)]


def test_unknown_channel_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(channel="fax"))
    assert error_locs(exc) == [("channel",)]


def test_unknown_kind_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(kind="spam"))
    assert error_locs(exc) == [("kind",)]


def test_description_of_2000_characters_is_accepted():
    assert len(ReportCreate.model_validate(example(description="a" * 2000)).description) == 2000


def test_description_too_long_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(description="a" * 2001))
    assert error_locs(exc) == [("description",)]


def test_blank_description_is_rejected():
    with pytest.raises(ValidationError) as exc:
        ReportCreate.model_validate(example(description="   "))
    assert error_locs(exc) == [("description",)]


def test_empty_emergency_misses_all_four_required_fields():
    report = ReportCreate.model_validate({})
    assert sorted(report.missing_for_emergency()) == sorted(
        ["category", "description", "location.kecamatan", "caller.phone"]
    )


def test_explicit_emergency_with_only_a_phone_misses_the_rest():
    report = ReportCreate.model_validate({"kind": "emergency", "caller": {"phone": "081234567890"}})
    assert sorted(report.missing_for_emergency()) == ["category", "description", "location.kecamatan"]


def test_emergency_with_location_but_no_kecamatan_misses_kecamatan():
    body = example(location={"desa": "Beru", "lat": -8.078, "lon": 112.318})
    assert ReportCreate.model_validate(body).missing_for_emergency() == ["location.kecamatan"]


def test_emergency_with_caller_name_but_no_phone_misses_phone():
    body = example(caller={"name": "Budi"})
    assert ReportCreate.model_validate(body).missing_for_emergency() == ["caller.phone"]


@pytest.mark.parametrize("kind", ["prank", "ghost", "information"])
def test_non_emergency_with_only_a_phone_misses_nothing(kind):
    report = ReportCreate.model_validate({"kind": kind, "caller": {"phone": "081234567890"}, "channel": "sms"})
    assert report.missing_for_emergency() == []
    assert report.caller.phone == "+6281234567890"
