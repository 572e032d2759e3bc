"""Shift arithmetic as pure functions, in Asia/Jakarta time (WIB, UTC+7, no DST).

The Command Center runs three shifts: pagi 07–15, siang 15–23, malam 23–07. The night
shift crosses midnight: at 02:00 on the 5th the shift on duty is the malam shift that
began at 23:00 on the 4th."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

JAKARTA = ZoneInfo("Asia/Jakarta")


@dataclass(frozen=True)
class ShiftTemplate:
    code: str
    starts: time
    ends: time
    operators_needed: int = 2

    @property
    def crosses_midnight(self) -> bool:
        return self.ends <= self.starts


@dataclass(frozen=True)
class ShiftOccurrence:
    template: ShiftTemplate
    starts_at: datetime  # aware, Asia/Jakarta
    ends_at: datetime

    @property
    def code(self) -> str:
        return self.template.code


def occurrence_on(template: ShiftTemplate, day) -> ShiftOccurrence:
    """The shift of `template` that starts on local date `day`."""
    starts = datetime.combine(day, template.starts, JAKARTA)
    ends_day = day + timedelta(days=1) if template.crosses_midnight else day
    return ShiftOccurrence(template, starts, datetime.combine(ends_day, template.ends, JAKARTA))


def shift_at(moment: datetime, templates: list[ShiftTemplate]) -> ShiftOccurrence:
    """The shift on duty at `moment` (any aware datetime); templates come from the
    `shift_templates` table (seeded with pagi, siang, malam)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    local = moment.astimezone(JAKARTA)
    for day in (local.date(), local.date() - timedelta(days=1)):
        for template in templates:
            occurrence = occurrence_on(template, day)
            if occurrence.starts_at <= local < occurrence.ends_at:
                return occurrence
    raise ValueError("the shift templates do not cover every hour of the day")
