"""The monthly roster and the rest rule, as pure functions.

Why the rotation is what it is. The Command Center needs two call takers on each of
three 8-hour shifts: 48 operator-hours a day, exactly what six call takers give working
8 hours each. With no slack everyone works one shift every day, and 16 hours' rest
between shifts (what the textbook pagi,pagi,siang,siang,malam,malam,off,off rotation
guarantees; it needs eight people) cannot coexist with any rotation: with 16 hours' rest
a person starts at most every third shift, covering needs all six to start every third
shift, so each would work the same shift for ever and no swap could ever be made.

The rule, therefore (`RestRule`, held by every generated roster and every edit):

* at least `min_rest` between the end of one shift and the start of the next (8 hours
  by default: never a double shift), and
* at most one shift starting on any calendar day (Asia/Jakarta).

The rotation (`cycle`), one shift a day per operator, operator k being k days into it:

* exactly as many operators as the day's shifts need (six): a backward rotation in
  blocks as long as each shift's need: pagi, pagi, malam, malam, siang, siang. Every day
  each shift has exactly its two; in every six days each operator works each shift
  twice; rests are 16 h inside a block, 32 h from pagi to malam, and 8 h from malam to
  siang and from siang to pagi. A forward rotation would need malam straight into pagi
  (a 0-hour double) instead: two 8-hour rests per cycle are the least a rotation costs.
* more operators (a seventh, an eighth): forward, pagi, pagi, siang, siang, malam, malam,
  then one day off per extra operator: at least 16 h rest everywhere.

The cycle position counts days from a fixed epoch, so consecutive months join up with
no break in the rotation (the month boundary is checked anyway: operators may change).
"""

import calendar
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.shifts.roster import ShiftOccurrence, ShiftTemplate, occurrence_on

EPOCH = date(2024, 1, 1)
OFF = None


class RosterInfeasible(ValueError):
    """These operators cannot cover these shifts under this rule."""


@dataclass(frozen=True)
class RestRule:
    min_rest: timedelta = timedelta(hours=8)

    def describe(self) -> str:
        hours = self.min_rest / timedelta(hours=1)
        return f"at least {hours:g} h between shifts and at most one shift starting per day"


@dataclass(frozen=True)
class RosterEntry:
    """One operator on the shift `shift` that starts on local date `day`."""

    day: date
    shift: str
    operator_id: Hashable


@dataclass(frozen=True)
class Violation:
    operator_id: Hashable
    first: RosterEntry
    second: RosterEntry
    rest: timedelta  # negative when the two shifts overlap
    rule: str  # "min_rest" or "one_per_day"

    def as_dict(self) -> dict:
        return {
            "operator_id": str(self.operator_id),
            "rule": self.rule,
            "first": {"day": self.first.day.isoformat(), "shift": self.first.shift},
            "second": {"day": self.second.day.isoformat(), "shift": self.second.shift},
            "rest_hours": self.rest / timedelta(hours=1),
        }


def month_days(year: int, month: int) -> list[date]:
    return [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]


def cycle(templates: Sequence[ShiftTemplate], operators: int) -> tuple[str | None, ...]:
    """The rotation each operator follows, one entry a day (None: a day off)."""
    by_start = sorted((t for t in templates if t.operators_needed > 0), key=lambda t: t.starts)
    needed = sum(t.operators_needed for t in by_start)
    if operators < needed:
        raise RosterInfeasible(f"{operators} operators cannot cover {needed} operator-shifts a day")
    # Zero slack: backward (earliest shift, then the latest, going back); see the module doc.
    order = by_start if operators > needed else by_start[:1] + by_start[:0:-1]
    days = [t.code for t in order for _ in range(t.operators_needed)]
    return tuple(days + [OFF] * (operators - needed))


def generate(
    days: Iterable[date], operators: Sequence[Hashable], templates: Sequence[ShiftTemplate], rule: RestRule
) -> list[RosterEntry]:
    """The roster for `days` (consecutive local dates): `operators` in a stable order
    (the same order every month keeps the rotation continuous). Raises RosterInfeasible
    if the result would not cover every shift exactly or would break `rule`."""
    days = list(days)
    pattern = cycle(templates, len(operators))
    entries = [
        RosterEntry(day, code, operator)
        for day in days
        for k, operator in enumerate(operators)
        if (code := pattern[((day - EPOCH).days + k) % len(pattern)]) is not OFF
    ]
    if gaps := coverage_gaps(entries, days, templates):
        raise RosterInfeasible(f"shifts not covered exactly: {gaps[:3]}")
    if broken := rest_violations(entries, templates, rule):
        raise RosterInfeasible(
            f"{len(operators)} operators cannot rotate under the rule ({rule.describe()}): "
            f"e.g. {broken[0].first.shift} on {broken[0].first.day} then {broken[0].second.shift} "
            f"after {broken[0].rest / timedelta(hours=1):g} h; more operators or a shorter minimum rest are needed"
        )
    return entries


def generate_month(
    year: int, month: int, operators: Sequence[Hashable], templates: Sequence[ShiftTemplate], rule: RestRule
) -> list[RosterEntry]:
    return generate(month_days(year, month), operators, templates, rule)


def occurrence(entry: RosterEntry, templates: Sequence[ShiftTemplate]) -> ShiftOccurrence:
    template = next((t for t in templates if t.code == entry.shift), None)
    if template is None:
        raise ValueError(f"no shift template {entry.shift!r}")
    return occurrence_on(template, entry.day)


def rest_violations(
    entries: Iterable[RosterEntry], templates: Sequence[ShiftTemplate], rule: RestRule
) -> list[Violation]:
    """Every pair of one operator's consecutive shifts that breaks `rule`."""
    by_operator: dict[Hashable, list[tuple[ShiftOccurrence, RosterEntry]]] = defaultdict(list)
    for entry in entries:
        by_operator[entry.operator_id].append((occurrence(entry, templates), entry))
    found = []
    for operator, shifts in by_operator.items():
        shifts.sort(key=lambda pair: pair[0].starts_at)
        for (first, a), (second, b) in zip(shifts, shifts[1:], strict=False):
            rest = second.starts_at - first.ends_at
            if a.day == b.day:
                found.append(Violation(operator, a, b, rest, "one_per_day"))
            elif rest < rule.min_rest:
                found.append(Violation(operator, a, b, rest, "min_rest"))
    return found


def violations_caused(
    before: Iterable[RosterEntry],
    after: Iterable[RosterEntry],
    templates: Sequence[ShiftTemplate],
    rule: RestRule,
) -> list[Violation]:
    """The violations an edit (the entries `before` becoming `after`) introduces; one
    already there (allowed earlier with an override) does not block a later edit."""
    existing = set(rest_violations(before, templates, rule))
    return [v for v in rest_violations(after, templates, rule) if v not in existing]


def coverage_gaps(
    entries: Iterable[RosterEntry], days: Iterable[date], templates: Sequence[ShiftTemplate]
) -> list[tuple[date, str, int, int]]:
    """(day, shift, rostered, needed) for every shift of `days` not rostered exactly."""
    count: dict[tuple[date, str], int] = defaultdict(int)
    for entry in entries:
        count[(entry.day, entry.shift)] += 1
    return [
        (day, t.code, count[(day, t.code)], t.operators_needed)
        for day in days
        for t in templates
        if count[(day, t.code)] != t.operators_needed
    ]
