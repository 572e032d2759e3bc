"""services/shifts/presence.py: which status changes an operator at work may make."""

import uuid

import pytest

from services.shifts.presence import InvalidTransition, Status, check_transition

A, H, B, OFF = Status.AVAILABLE, Status.HANDLING_REPORT, Status.BREAK, Status.OFFLINE


@pytest.mark.parametrize(("current", "target"), [(A, H), (A, B), (H, A), (B, A)])
def test_allowed_changes(current, target):
    assert check_transition(current, target) is True


@pytest.mark.parametrize("status", [A, B])
def test_the_same_status_again_is_no_change(status):
    assert check_transition(status, status) is False


def test_the_same_report_again_is_no_change():
    report = uuid.uuid4()
    assert check_transition(H, H, report, report) is False


def test_another_report_while_handling_one_is_refused():
    with pytest.raises(InvalidTransition, match="another report"):
        check_transition(H, H, uuid.uuid4(), uuid.uuid4())


@pytest.mark.parametrize(
    ("current", "target", "advice"),
    [
        (H, B, "finish the report"),
        (B, H, "end the break"),
        (A, OFF, "check out"),
        (B, OFF, "check out"),
        (H, OFF, "check out"),
        (OFF, A, "check in first"),
        (OFF, B, "check in first"),
        (OFF, H, "check in first"),
    ],
)
def test_refused_changes_say_what_to_do(current, target, advice):
    with pytest.raises(InvalidTransition, match=advice):
        check_transition(current, target)
