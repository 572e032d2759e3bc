"""services/shifts/rotation.py: the monthly roster and the rest rule."""

from collections import Counter
from datetime import date, datetime, time, timedelta

import pytest

from services.shifts.roster import JAKARTA, ShiftTemplate
from services.shifts.rotation import (
    RestRule,
    RosterEntry,
    RosterInfeasible,
    coverage_gaps,
    cycle,
    generate,
    generate_month,
    month_days,
    occurrence,
    rest_violations,
    violations_caused,
)

PAGI = ShiftTemplate("pagi", time(7), time(15))
SIANG = ShiftTemplate("siang", time(15), time(23))
MALAM = ShiftTemplate("malam", time(23), time(7))
TEMPLATES = [PAGI, SIANG, MALAM]
SIX = ["ani", "budi", "cici", "dewi", "eka", "fajar"]
RULE = RestRule()  # 8 h and one shift a day
STRICT = RestRule(timedelta(hours=16))


def shifts_of(entries, operator):
    return sorted((occurrence(e, TEMPLATES) for e in entries if e.operator_id == operator), key=lambda o: o.starts_at)


def rests(entries, operator):
    mine = shifts_of(entries, operator)
    return [b.starts_at - a.ends_at for a, b in zip(mine, mine[1:], strict=False)]


def year_of_months(start: date, months: int):
    """Consecutive months generated one by one, as the supervisor does."""
    entries, days = [], []
    year, month = start.year, start.month
    for _ in range(months):
        entries += generate_month(year, month, SIX, TEMPLATES, RULE)
        days += month_days(year, month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return entries, days


# --- the rotation -----------------------------------------------------------------


def test_six_operators_rotate_backward_in_pairs_of_days():
    assert cycle(TEMPLATES, 6) == ("pagi", "pagi", "malam", "malam", "siang", "siang")


def test_seven_and_eight_operators_rotate_forward_with_days_off():
    assert cycle(TEMPLATES, 7) == ("pagi", "pagi", "siang", "siang", "malam", "malam", None)
    assert cycle(TEMPLATES, 8) == ("pagi", "pagi", "siang", "siang", "malam", "malam", None, None)


def test_template_order_does_not_matter():
    assert cycle([MALAM, PAGI, SIANG], 6) == cycle(TEMPLATES, 6)


@pytest.mark.parametrize(
    ("year", "month", "days"),
    [(2026, 1, 31), (2026, 2, 28), (2028, 2, 29), (2026, 4, 30), (2026, 12, 31)],
)
def test_every_shift_of_every_day_has_exactly_its_two(year, month, days):
    entries = generate_month(year, month, SIX, TEMPLATES, RULE)
    assert len(month_days(year, month)) == days
    assert len(entries) == days * 6
    per_shift = Counter((e.day, e.shift) for e in entries)
    assert set(per_shift.values()) == {2}
    assert {d for d, _ in per_shift} == set(month_days(year, month))
    assert coverage_gaps(entries, month_days(year, month), TEMPLATES) == []


def test_each_operator_works_exactly_one_shift_every_day():
    entries = generate_month(2026, 3, SIX, TEMPLATES, RULE)
    per_day = Counter((e.operator_id, e.day) for e in entries)
    assert set(per_day.values()) == {1}
    assert len(per_day) == 6 * 31


def test_rest_rule_holds_across_a_whole_year_of_months_generated_one_by_one():
    entries, days = year_of_months(date(2026, 1, 1), 13)  # Jan 2026 .. Jan 2027, across the year's end
    assert rest_violations(entries, TEMPLATES, RULE) == []
    assert coverage_gaps(entries, days, TEMPLATES) == []


def test_rests_are_16_hours_or_more_except_two_8_hour_quick_returns_per_six_days():
    entries = generate(month_days(2026, 3)[:13], SIX, TEMPLATES, RULE)
    for operator in SIX:
        gaps = rests(entries, operator)[:6]  # six consecutive transitions: one full cycle
        assert all(g >= timedelta(hours=8) for g in gaps)
        assert sorted(gaps).count(timedelta(hours=8)) == 2
        assert all(g >= timedelta(hours=16) for g in gaps if g != timedelta(hours=8))
        # never a shift directly after another, never two in a day
        assert min(gaps) > timedelta(0)


def test_the_rotation_is_fair_over_a_month():
    # Every six days each operator works each shift exactly twice; a month that is not a
    # whole number of cycles leaves at most one block (two days) of difference.
    for year, month in [(2026, 2), (2026, 3), (2026, 4), (2028, 2)]:
        entries = generate_month(year, month, SIX, TEMPLATES, RULE)
        assert set(Counter(e.operator_id for e in entries).values()) == {len(month_days(year, month))}
        for template in TEMPLATES:
            counts = Counter(e.operator_id for e in entries if e.shift == template.code)
            assert set(counts) == set(SIX)
            assert max(counts.values()) - min(counts.values()) <= 2, (year, month, template.code, counts)


def test_over_a_year_everyone_works_as_many_nights_as_anyone():
    entries, _ = year_of_months(date(2026, 1, 1), 12)
    nights = Counter(e.operator_id for e in entries if e.shift == "malam")
    assert max(nights.values()) - min(nights.values()) <= 2
    assert sum(nights.values()) == 365 * 2


def test_a_thirty_day_month_is_exactly_equal():
    entries = generate_month(2026, 4, SIX, TEMPLATES, RULE)
    assert {Counter(e.shift for e in entries if e.operator_id == op)["malam"] for op in SIX} == {10}


def test_night_shift_of_the_months_last_day_runs_into_the_next_month():
    entries = generate_month(2026, 3, SIX, TEMPLATES, RULE)
    last_night = [e for e in entries if e.day == date(2026, 3, 31) and e.shift == "malam"]
    assert len(last_night) == 2
    shift = occurrence(last_night[0], TEMPLATES)
    assert shift.starts_at == datetime(2026, 3, 31, 23, tzinfo=JAKARTA)
    assert shift.ends_at == datetime(2026, 4, 1, 7, tzinfo=JAKARTA)
    # The next month goes on from there: those two are not on pagi of the 1st (0 h rest),
    # and whatever they work next starts 8 h or more after 07:00 on the 1st.
    april = generate_month(2026, 4, SIX, TEMPLATES, RULE)
    for entry in last_night:
        first = next(e for e in april if e.operator_id == entry.operator_id and e.day == date(2026, 4, 1))
        assert first.shift != "pagi"
        assert occurrence(first, TEMPLATES).starts_at - shift.ends_at >= timedelta(hours=8)


def test_leap_day_night_runs_into_march():
    entries = generate_month(2028, 2, SIX, TEMPLATES, RULE)
    leap_night = [e for e in entries if e.day == date(2028, 2, 29) and e.shift == "malam"]
    assert len(leap_night) == 2
    assert occurrence(leap_night[0], TEMPLATES).ends_at == datetime(2028, 3, 1, 7, tzinfo=JAKARTA)
    march = generate_month(2028, 3, SIX, TEMPLATES, RULE)
    assert rest_violations(entries + march, TEMPLATES, RULE) == []


def test_six_operators_cannot_rotate_with_16_hours_rest():
    with pytest.raises(RosterInfeasible, match="6 operators cannot rotate"):
        generate_month(2026, 3, SIX, TEMPLATES, STRICT)


@pytest.mark.parametrize("operators", [7, 8, 9])
def test_with_spare_operators_every_rest_is_16_hours_and_coverage_is_exact(operators):
    names = [f"op{i}" for i in range(operators)]
    entries = []
    for month in (1, 2, 3):
        entries += generate_month(2026, month, names, TEMPLATES, STRICT)
    days = month_days(2026, 1) + month_days(2026, 2) + month_days(2026, 3)
    assert coverage_gaps(entries, days, TEMPLATES) == []
    assert rest_violations(entries, TEMPLATES, STRICT) == []
    assert all(r >= timedelta(hours=16) for name in names for r in rests(entries, name))


def test_too_few_operators_cannot_cover():
    with pytest.raises(RosterInfeasible, match="5 operators cannot cover 6"):
        generate_month(2026, 3, SIX[:5], TEMPLATES, RULE)


def test_the_need_of_each_shift_comes_from_its_template():
    busy_pagi = [ShiftTemplate("pagi", time(7), time(15), 3), SIANG, MALAM]
    entries = generate_month(2026, 3, [*SIX, "gita"], busy_pagi, RULE)
    per_shift = Counter((e.day, e.shift) for e in entries)
    assert {per_shift[(d, "pagi")] for d in month_days(2026, 3)} == {3}
    assert {per_shift[(d, "malam")] for d in month_days(2026, 3)} == {2}


# --- the rest rule ------------------------------------------------------------------


def entry(day: int, shift: str, who: str = "ani") -> RosterEntry:
    return RosterEntry(date(2026, 3, day), shift, who)


def test_malam_straight_into_pagi_is_a_zero_hour_rest():
    (violation,) = rest_violations([entry(4, "malam"), entry(5, "pagi")], TEMPLATES, RULE)
    assert violation.rule == "min_rest" and violation.rest == timedelta(0)
    assert violation.first.day == date(2026, 3, 4)


def test_siang_then_pagi_meets_8_hours_but_not_16():
    pair = [entry(4, "siang"), entry(5, "pagi")]
    assert rest_violations(pair, TEMPLATES, RULE) == []
    assert [v.rest for v in rest_violations(pair, TEMPLATES, STRICT)] == [timedelta(hours=8)]


def test_two_shifts_on_one_day_break_the_rule_even_with_8_hours_between():
    (violation,) = rest_violations([entry(4, "pagi"), entry(4, "malam")], TEMPLATES, RULE)
    assert violation.rule == "one_per_day" and violation.rest == timedelta(hours=8)


def test_the_same_shift_twice_is_caught():
    assert rest_violations([entry(4, "pagi"), entry(4, "pagi")], TEMPLATES, RULE)[0].rule == "one_per_day"


def test_other_operators_do_not_interfere():
    assert rest_violations([entry(4, "malam", "ani"), entry(5, "pagi", "budi")], TEMPLATES, RULE) == []


def test_violations_are_reported_by_operator_and_shift():
    (violation,) = rest_violations([entry(31, "malam"), RosterEntry(date(2026, 4, 1), "pagi", "ani")], TEMPLATES, RULE)
    assert violation.as_dict() == {
        "operator_id": "ani",
        "rule": "min_rest",
        "first": {"day": "2026-03-31", "shift": "malam"},
        "second": {"day": "2026-04-01", "shift": "pagi"},
        "rest_hours": 0.0,
    }


def test_an_edit_is_judged_by_the_violations_it_adds():
    already = [entry(3, "siang"), entry(4, "pagi"), entry(4, "malam")]  # one_per_day, overridden earlier
    after_fine_edit = [*already, entry(6, "siang")]
    after_bad_edit = [*already, entry(5, "pagi")]  # malam 4th → pagi 5th: 0 h
    assert violations_caused(already, after_fine_edit, TEMPLATES, RULE) == []
    (added,) = violations_caused(already, after_bad_edit, TEMPLATES, RULE)
    assert (added.first.day, added.second.shift) == (date(2026, 3, 4), "pagi")


def test_rule_describes_itself():
    assert RULE.describe() == "at least 8 h between shifts and at most one shift starting per day"
