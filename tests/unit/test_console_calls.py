"""The take-a-call form as intake gets it, and what the page gets back on an error."""

import uuid

import pytest
from pydantic import ValidationError

from schemas.catalog import CATEGORIES
from schemas.reports import ReportCreate
from services.common.web import Problem
from services.console.catalog import KIND_KEYS, SUBTYPES, form_catalog
from services.console.settings import ConsoleSettings
from services.console.work_api import CallIn, form_errors, report_create
from tests.support import PRODUCTION_SETTINGS

OPERATOR = uuid.UUID("aaaaaaaa-0000-0000-0000-000000000001")


def test_a_call_becomes_a_call_channel_report_filed_by_the_operator():
    call = CallIn(
        category="kebakaran",
        subtype="rumah",
        kecamatan="wlingi",
        desa="Beru",
        address="",
        phone="0812345",
        caller_name=" ",
        description="Rumah terbakar",
        casualties=2,
    )
    body = report_create(call, OPERATOR)
    assert body == {
        "kind": "emergency",
        "channel": "call",
        "operator_id": str(OPERATOR),
        "category": "kebakaran",
        "subtype": "rumah",
        "description": "Rumah terbakar",
        "casualties": 2,
        "location": {"kecamatan": "wlingi", "desa": "Beru"},
        "caller": {"phone": "0812345"},
    }


def test_noise_is_logged_with_what_was_learnt_only():
    body = report_create(CallIn(kind="prank", phone="081234567890"), OPERATOR)
    assert body == {
        "kind": "prank",
        "channel": "call",
        "operator_id": str(OPERATOR),
        "caller": {"phone": "081234567890"},
    }
    ReportCreate.model_validate_json(__import__("json").dumps(body))  # intake takes it as it is
    assert report_create(CallIn(kind="ghost"), OPERATOR) == {
        "kind": "ghost",
        "channel": "call",
        "operator_id": str(OPERATOR),
    }


def test_other_subtype_sends_no_subtype():
    assert "subtype" not in report_create(CallIn(category="penyakit", subtype="lainnya"), OPERATOR)


def test_the_call_s_start_goes_to_intake_with_its_time_zone_and_a_start_without_one_is_refused():
    body = report_create(CallIn(kind="prank", call_started_at="2026-12-03T08:15:02.125+07:00"), OPERATOR)
    assert body["call_started_at"] == "2026-12-03T08:15:02.125000+07:00"
    assert ReportCreate.model_validate_json(__import__("json").dumps(body)).call_started_at is not None
    assert "call_started_at" not in report_create(CallIn(kind="prank", call_started_at=""), OPERATOR)
    with pytest.raises(ValidationError):
        CallIn(call_started_at="2026-12-03T08:15:02")  # which zone?


def test_the_form_refuses_what_intake_would_never_take():
    with pytest.raises(ValidationError):
        CallIn(category="banjir")
    with pytest.raises(ValidationError):
        CallIn(kind="emergency", channel="sms")  # the console files calls only
    with pytest.raises(ValidationError):
        CallIn(casualties=-1)


def test_intake_field_errors_name_the_form_fields():
    problem = Problem(
        422,
        "Invalid report",
        "...",
        errors=[
            {"field": "location.kecamatan", "message": "not a kecamatan"},
            {"field": "caller.phone", "message": "bad"},
            {"field": "description", "message": "required"},
        ],
    )
    assert [e["field"] for e in form_errors(problem).extra["errors"]] == ["kecamatan", "phone", "description"]


def test_every_category_has_one_key_and_subtypes_one_more():
    catalog = form_catalog()
    assert [c["code"] for c in catalog["categories"]] == list(CATEGORIES)
    assert [c["key"] for c in catalog["categories"]] == ["1", "2", "3", "4", "5", "6"]
    for category in catalog["categories"]:
        assert 1 <= len(category["subtypes"]) <= 9  # one digit each
        assert category["subtypes"][-1] == "lainnya"
    assert len(set(KIND_KEYS)) == 4 and set(KIND_KEYS.values()) == {"emergency", "prank", "ghost", "information"}
    assert len(catalog["kecamatan"]) == 22


def test_the_router_s_line_subtypes_can_be_chosen():
    from services.router.routing import DEFAULT_EXTRA_RULES

    offered = {s for subtypes in SUBTYPES.values() for s in subtypes}
    ruled = {s for rule in DEFAULT_EXTRA_RULES for s in rule["when"].get("subtypes", [])}
    assert ruled <= offered


def test_production_refuses_development_upstreams_and_an_insecure_cookie():
    with pytest.raises(ValidationError) as refused:
        ConsoleSettings(**PRODUCTION_SETTINGS)
    text = str(refused.value)
    assert "INTAKE_URL" in text and "INTAKE_API_KEY" in text and "COOKIE_SECURE" in text
    ConsoleSettings(
        **PRODUCTION_SETTINGS,
        intake_url="http://intake",
        shifts_url="http://shifts",
        notifier_url="http://notifier",
        intake_api_key="e112_" + "c" * 40,
        cookie_secure=True,
    )
