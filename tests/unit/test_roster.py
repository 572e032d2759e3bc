"""services/shifts/roster.py: which shift is on duty, in Asia/Jakarta time (UTC+7)."""

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from services.shifts.roster import ShiftTemplate, shift_at

WIB = timezone(timedelta(hours=7))  # fixed offset, independent of the tz database
PAGI = ShiftTemplate("pagi", time(7), time(15))
SIANG = ShiftTemplate("siang", time(15), time(23))
MALAM = ShiftTemplate("malam", time(23), time(7))
TEMPLATES = [PAGI, SIANG, MALAM]


def wib(*args) -> datetime:
    return datetime(*args, tzinfo=WIB)


def on_duty(moment: datetime):
    return shift_at(moment, TEMPLATES)


def test_morning_in_wib_is_pagi():
    occ = on_duty(wib(2026, 3, 5, 9, 30))
    assert occ.code == "pagi"
    assert occ.starts_at == wib(2026, 3, 5, 7)
    assert occ.ends_at == wib(2026, 3, 5, 15)


def test_utc_time_is_read_in_jakarta_time():
    # 01:00 UTC is 08:00 WIB: pagi, although 01:00 would be malam if read as local.
    occ = on_duty(datetime(2026, 3, 5, 1, 0, tzinfo=UTC))
    assert occ.code == "pagi"
    assert occ.starts_at == wib(2026, 3, 5, 7)


def test_utc_evening_is_next_day_in_jakarta():
    # 17:30 UTC on the 4th is 00:30 WIB on the 5th: the malam shift begun 23:00 WIB on the 4th.
    occ = on_duty(datetime(2026, 3, 4, 17, 30, tzinfo=UTC))
    assert occ.code == "malam"
    assert occ.starts_at == wib(2026, 3, 4, 23)
    assert occ.ends_at == wib(2026, 3, 5, 7)


def test_utc_16_is_the_start_of_malam():
    occ = on_duty(datetime(2026, 3, 4, 16, 0, tzinfo=UTC))  # 23:00 WIB
    assert occ.code == "malam"
    assert occ.starts_at == wib(2026, 3, 4, 23)


def test_0200_belongs_to_malam_started_the_previous_evening():
    occ = on_duty(wib(2026, 3, 5, 2, 0))
    assert occ.code == "malam"
    assert occ.starts_at == wib(2026, 3, 4, 23)
    assert occ.ends_at == wib(2026, 3, 5, 7)


def test_month_end_night_shift_crosses_into_next_month():
    occ = on_duty(wib(2026, 3, 1, 3, 0))
    assert occ.code == "malam"
    assert occ.starts_at == wib(2026, 2, 28, 23)
    assert occ.ends_at == wib(2026, 3, 1, 7)


def test_year_end_night_shift_crosses_into_next_year():
    occ = on_duty(wib(2026, 12, 31, 23, 30))
    assert occ.code == "malam"
    assert occ.starts_at == wib(2026, 12, 31, 23)
    assert occ.ends_at == wib(2027, 1, 1, 7)


def test_new_years_morning_belongs_to_last_years_night_shift():
    occ = on_duty(wib(2027, 1, 1, 6, 59))
    assert occ.code == "malam"
    assert occ.starts_at == wib(2026, 12, 31, 23)


def test_leap_day_night_shift():
    occ = on_duty(wib(2028, 3, 1, 1, 0))
    assert occ.starts_at == wib(2028, 2, 29, 23)


@pytest.mark.parametrize(
    ("hour", "minute", "code", "start_day", "start_hour"),
    [
        (7, 0, "pagi", 5, 7),  # 07:00 starts pagi, malam has ended
        (6, 59, "malam", 4, 23),
        (15, 0, "siang", 5, 15),  # 15:00 starts siang
        (14, 59, "pagi", 5, 7),
        (23, 0, "malam", 5, 23),  # 23:00 starts the malam of that same day
        (22, 59, "siang", 5, 15),
        (0, 0, "malam", 4, 23),  # midnight is inside malam of the previous day
    ],
)
def test_boundaries(hour, minute, code, start_day, start_hour):
    occ = on_duty(wib(2026, 3, 5, hour, minute))
    assert occ.code == code
    assert occ.starts_at == wib(2026, 3, start_day, start_hour)
    assert occ.starts_at <= wib(2026, 3, 5, hour, minute) < occ.ends_at


def test_every_minute_of_a_day_has_exactly_one_shift_of_eight_hours():
    start = wib(2026, 3, 5, 0, 0)
    for minute in range(0, 24 * 60, 7):
        moment = start + timedelta(minutes=minute)
        occ = on_duty(moment)
        assert occ.starts_at <= moment < occ.ends_at
        assert occ.ends_at - occ.starts_at == timedelta(hours=8)


def test_occurrence_times_are_aware():
    occ = on_duty(datetime(2026, 3, 5, 1, 0, tzinfo=UTC))
    assert occ.starts_at.utcoffset() == timedelta(hours=7)


def test_naive_datetime_is_rejected():
    with pytest.raises(ValueError):
        on_duty(datetime(2026, 3, 5, 9, 0))


def test_malam_crosses_midnight_and_pagi_does_not():
    assert MALAM.crosses_midnight
    assert not PAGI.crosses_midnight
    assert not SIANG.crosses_midnight


def test_templates_with_a_gap_raise():
    with pytest.raises(ValueError):
        shift_at(wib(2026, 3, 5, 2, 0), [PAGI, SIANG])
