"""The field statuses an agency reports, and which changes make sense: pure rules.

on_the_way -> on_scene -> done, in that order; a step may be skipped (a unit already
on scene when it learns of the dispatch), but not undone. Sending the current status
again changes nothing (a retried request). Any field status also acknowledges the
dispatch: a unit on its way plainly has it.
"""

from enum import StrEnum

ORDER = ("on_the_way", "on_scene", "done")


class Change(StrEnum):
    FORWARD = "forward"
    SAME = "same"
    BACKWARD = "backward"


def change(current: str | None, new: str) -> Change:
    if new not in ORDER:
        raise ValueError(f"unknown field status {new!r}")
    if current == new:
        return Change.SAME
    if current is not None and ORDER.index(new) < ORDER.index(current):
        return Change.BACKWARD
    return Change.FORWARD
