"""An operator's status while at work, as a pure transition rule.

`offline` is not being checked in; check-in makes an operator `available` and check-out
`offline`, from any status (open tasks are then reassigned). In between:
available ⇄ break, available ⇄ handling_report. A report is finished (back to available)
before a break, and a break is ended before taking a report.
"""

from enum import StrEnum


class Status(StrEnum):
    AVAILABLE = "available"
    HANDLING_REPORT = "handling_report"
    BREAK = "break"
    OFFLINE = "offline"


ALLOWED: dict[Status, set[Status]] = {
    Status.AVAILABLE: {Status.HANDLING_REPORT, Status.BREAK},
    Status.HANDLING_REPORT: {Status.AVAILABLE},
    Status.BREAK: {Status.AVAILABLE},
    Status.OFFLINE: set(),
}


class InvalidTransition(ValueError):
    """Not allowed from the current status; the message says what to do instead."""


def check_transition(
    current: Status, target: Status, current_report=None, report=None, by_assignment: bool = False
) -> bool:
    """True if `target` is a change, False if the operator already has it (setting a
    status twice is harmless); raises InvalidTransition if it is not allowed. `report`
    is the report handled (with handling_report), `current_report` the one now.
    `by_assignment`: the current handling_report comes from assigned tasks, which a
    break hands to colleagues (services/shifts/assignment.py), so a break is allowed."""
    if by_assignment and current is Status.HANDLING_REPORT and target is Status.BREAK:
        return True
    if current is Status.OFFLINE:
        raise InvalidTransition("The operator is not checked in: check in first.")
    if target is Status.OFFLINE:
        raise InvalidTransition("To go offline, check out (POST .../check-out).")
    if target is current:
        if target is Status.HANDLING_REPORT and report != current_report:
            raise InvalidTransition("Already handling another report: finish it (status available) first.")
        return False
    if target not in ALLOWED[current]:
        advice = {
            (Status.HANDLING_REPORT, Status.BREAK): "finish the report (status available) before a break",
            (Status.BREAK, Status.HANDLING_REPORT): "end the break (status available) before taking a report",
        }[(current, target)]
        raise InvalidTransition(f"From {current} to {target} is not allowed: {advice}.")
    return True
