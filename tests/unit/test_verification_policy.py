"""Which reports wait for an operator's verdict (services/intake/verification.py)."""

import pytest
from pydantic import ValidationError

from schemas.catalog import CATEGORIES, PUBLIC_CHANNELS
from services.intake.verification import (
    LIFE_THREATENING,
    PolicyChange,
    PolicyRule,
    VerdictIn,
    default_rules,
    verification_for,
)

OPERATOR = "0b5b3b9e-1f00-4a8e-9a53-0d2a4c8c1111"


@pytest.mark.parametrize("category", CATEGORIES)
def test_a_call_is_never_held_whatever_the_policy_says(category):
    hold_everything = [PolicyRule(channel=c, verification="before_dispatch") for c in PUBLIC_CHANNELS]
    assert verification_for(hold_everything, kind="emergency", channel="call", category=category) == "not_required"


@pytest.mark.parametrize("kind", ["prank", "ghost", "information"])
def test_only_emergencies_are_verified(kind):
    assert verification_for(default_rules(), kind=kind, channel="sms", category=None) == "not_required"


@pytest.mark.parametrize("channel", PUBLIC_CHANNELS)
@pytest.mark.parametrize("category", CATEGORIES)
def test_default_life_threatening_categories_go_out_at_once_the_rest_wait(channel, category):
    expected = "after_dispatch" if category in LIFE_THREATENING else "before_dispatch"
    assert verification_for(default_rules(), kind="emergency", channel=channel, category=category) == expected


def test_the_category_rule_beats_the_channels_catch_all():
    rules = [
        PolicyRule(channel="web", verification="not_required"),
        PolicyRule(channel="web", category="kerusuhan", verification="before_dispatch"),
    ]
    assert verification_for(rules, kind="emergency", channel="web", category="kerusuhan") == "before_dispatch"
    assert verification_for(rules, kind="emergency", channel="web", category="penyakit") == "not_required"


def test_a_public_channel_without_a_rule_is_held():
    rules = [PolicyRule(channel="sms", verification="not_required")]
    assert verification_for(rules, kind="emergency", channel="whatsapp", category="penyakit") == "before_dispatch"


def test_a_rule_for_calls_is_refused():
    with pytest.raises(ValidationError, match="channel"):
        PolicyRule(channel="call", verification="before_dispatch")


def test_two_rules_for_the_same_channel_and_category_are_refused():
    rule = {"channel": "sms", "category": "kebakaran", "verification": "after_dispatch"}
    with pytest.raises(ValidationError, match="two rules for channel sms, category kebakaran"):
        PolicyChange(rules=[rule, rule], changed_by="Sari", reason="x")


def test_a_duplicate_verdict_names_its_report_and_only_it_does():
    with pytest.raises(ValidationError, match="duplicate_of"):
        VerdictIn(verdict="duplicate")
    with pytest.raises(ValidationError, match="duplicate_of goes with verdict duplicate only"):
        VerdictIn(verdict="prank", duplicate_of=OPERATOR)
    assert VerdictIn(verdict="duplicate", duplicate_of=OPERATOR).duplicate_of
