"""services/shifts/coverage.py: the shift a check-in is for, shortages and episodes."""

from datetime import datetime, time, timedelta

import pytest

from services.shifts.coverage import Step, next_step, shift_for_check_in, shortage
from services.shifts.roster import JAKARTA, ShiftTemplate, shift_at

TEMPLATES = [
    ShiftTemplate("pagi", time(7), time(15)),
    ShiftTemplate("siang", time(15), time(23)),
    ShiftTemplate("malam", time(23), time(7)),
]


def wib(*args) -> datetime:
    return datetime(*args, tzinfo=JAKARTA)


def at(*args):
    return shift_at(wib(*args), TEMPLATES)


@pytest.mark.parametrize(
    ("moment", "code", "starts"),
    [
        (wib(2026, 3, 5, 6, 45), "pagi", wib(2026, 3, 5, 7)),  # 15 min early: for pagi
        (wib(2026, 3, 5, 6, 30), "pagi", wib(2026, 3, 5, 7)),  # exactly 30 min early
        (wib(2026, 3, 5, 6, 29), "malam", wib(2026, 3, 4, 23)),  # earlier: still the night
        (wib(2026, 3, 5, 8, 0), "pagi", wib(2026, 3, 5, 7)),  # late arrival
        (wib(2026, 3, 31, 22, 40), "malam", wib(2026, 3, 31, 23)),  # early for the month's last night
        (wib(2026, 4, 1, 2, 0), "malam", wib(2026, 3, 31, 23)),
    ],
)
def test_the_shift_a_check_in_is_for(moment, code, starts):
    shift = shift_for_check_in(moment, TEMPLATES)
    assert (shift.code, shift.starts_at) == (code, starts)


def test_the_early_window_is_a_parameter():
    assert shift_for_check_in(wib(2026, 3, 5, 6, 45), TEMPLATES, timedelta(0)).code == "malam"


def test_no_shortage_in_the_first_ten_minutes():
    pagi = at(2026, 3, 5, 7, 0)
    assert shortage(wib(2026, 3, 5, 7, 0), pagi, 0) is None
    assert shortage(wib(2026, 3, 5, 7, 9, 59), pagi, 0) is None


def test_nobody_ten_minutes_after_the_start():
    pagi = at(2026, 3, 5, 7, 0)
    found = shortage(wib(2026, 3, 5, 7, 10), pagi, 0)
    assert found is not None and found.reason == "nobody" and found.needed == 2 and found.present == 0


def test_one_of_two_is_short():
    found = shortage(wib(2026, 3, 5, 11, 0), at(2026, 3, 5, 11, 0), 1)
    assert found.reason == "short" and found.present == 1


def test_enough_is_no_shortage_even_after_the_grace():
    assert shortage(wib(2026, 3, 5, 11, 0), at(2026, 3, 5, 11, 0), 2) is None
    assert shortage(wib(2026, 3, 5, 11, 0), at(2026, 3, 5, 11, 0), 3) is None


def test_the_night_shift_grace_crosses_midnight_at_month_end():
    malam = at(2026, 3, 31, 23, 5)
    assert shortage(wib(2026, 3, 31, 23, 9), malam, 0) is None
    assert shortage(wib(2026, 3, 31, 23, 10), malam, 0).reason == "nobody"
    assert shortage(wib(2026, 4, 1, 3, 0), malam, 1).shift.starts_at == wib(2026, 3, 31, 23)


def test_grace_is_a_parameter():
    pagi = at(2026, 3, 5, 7, 0)
    assert shortage(wib(2026, 3, 5, 7, 3), pagi, 0, grace=timedelta(minutes=2)) is not None


# --- episodes: one alert, one "restored" -------------------------------------------------

PAGI = at(2026, 3, 5, 9, 0)
SIANG = at(2026, 3, 5, 16, 0)


def test_a_shortage_with_no_open_episode_opens_one():
    assert next_step(None, PAGI, shortage(wib(2026, 3, 5, 9), PAGI, 0)) == Step(close=None, open=True)


def test_the_same_shortage_again_does_nothing():
    assert next_step(PAGI.starts_at, PAGI, shortage(wib(2026, 3, 5, 9), PAGI, 1)) == Step(close=None, open=False)


def test_staffed_again_closes_the_episode():
    assert next_step(PAGI.starts_at, PAGI, None) == Step(close="staffed", open=False)


def test_nothing_to_do_when_staffed_and_nothing_open():
    assert next_step(None, PAGI, None) == Step(close=None, open=False)


def test_a_new_shift_ends_the_last_shifts_episode():
    # siang in its grace: the pagi episode ends with its shift, no alert yet for siang
    assert next_step(PAGI.starts_at, SIANG, None) == Step(close="shift_ended", open=False)


def test_a_new_shift_short_too_ends_the_old_episode_and_opens_its_own():
    short = shortage(wib(2026, 3, 5, 16), SIANG, 0)
    assert next_step(PAGI.starts_at, SIANG, short) == Step(close="shift_ended", open=True)
