"""Business calendars: hours, holidays, time zones, DST days and 24x7."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from server.support import calendar as cal
from server.support.policies import PolicyError, duration, parse

pytestmark = pytest.mark.server

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else \
        dt.datetime.fromisoformat(text)


def test_time_inside_business_hours_runs_like_the_wall_clock():
    office = cal.office()
    assert cal.add_business_time(at("2026-01-05T10:00"), 3600, office) == at("2026-01-05T11:00")


def test_time_past_closing_continues_the_next_business_morning():
    office = cal.office()
    assert cal.add_business_time(at("2026-01-05T16:00"), 2 * 3600, office) == at("2026-01-06T10:00")


def test_a_friday_evening_deadline_moves_over_the_weekend():
    office = cal.office()
    assert cal.add_business_time(at("2026-01-09T16:30"), 3600, office) == at("2026-01-12T09:30")


def test_a_start_before_opening_counts_from_opening():
    office = cal.office()
    assert cal.add_business_time(at("2026-01-05T03:00"), 60, office) == at("2026-01-05T09:01")


def test_holidays_from_the_holidays_package_are_closed():
    berlin = cal.office(timezone="Europe/Berlin", country="DE")
    # 2026-12-24 17:00 Berlin is closing time; 25th and 26th are holidays, 27th is a Sunday.
    due = cal.add_business_time(at("2026-12-24T15:30"), 3 * 3600, berlin)
    assert due == at("2026-12-28T10:30")  # 30 min on the 24th, then 09:00+2.5h Berlin (UTC+1)
    # New Year's Day is closed as well; the Friday after it is open.
    assert cal.add_business_time(at("2026-12-31T16:00"), 3600, berlin) == at("2027-01-04T09:00")


def test_extra_holidays_are_closed():
    office = cal.parse("o", {"hours": {d: ["09:00-17:00"] for d in cal.DAYS[:5]},
                             "extra_holidays": ["2026-01-06"]})
    assert cal.add_business_time(at("2026-01-05T16:00"), 2 * 3600, office) == at("2026-01-07T10:00")


def test_the_calendars_time_zone_decides_the_hours():
    tokyo = cal.office(timezone="Asia/Tokyo")
    # 09:00 Tokyo is 00:00 UTC.
    assert cal.add_business_time(at("2026-01-04T23:00"), 1800, tokyo) == at("2026-01-05T00:30")


def test_dst_spring_forward_day_counts_real_hours():
    # Europe/Berlin jumps 02:00 -> 03:00 on 2026-03-29 (Sunday); an interval 00:00-06:00 lasts 5 h.
    night = cal.parse("n", {"timezone": "Europe/Berlin", "hours": {d: ["00:00-06:00"] for d in cal.DAYS}})
    start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=dt.timezone.utc) - dt.timedelta(hours=1)  # 00:00 CET
    end = start + dt.timedelta(hours=5)  # 06:00 CEST
    assert cal.business_seconds_between(start, end + dt.timedelta(hours=1), night) == 5 * 3600
    assert cal.add_business_time(start, 5 * 3600, night) == end


def test_dst_fall_back_day_counts_the_repeated_hour():
    night = cal.parse("n", {"timezone": "Europe/Berlin", "hours": {d: ["00:00-06:00"] for d in cal.DAYS}})
    start = at("2026-10-24T22:00")  # 00:00 CEST on 2026-10-25
    assert cal.business_seconds_between(start, at("2026-10-25T12:00"), night) == 7 * 3600


def test_office_hours_keep_local_time_across_dst():
    berlin = cal.office(timezone="Europe/Berlin")
    # Friday 16:00 CET + 2h -> Monday 10:00 CEST (after the 2026-03-29 change) = 08:00 UTC.
    assert cal.add_business_time(at("2026-03-27T15:00"), 2 * 3600, berlin) == at("2026-03-30T08:00")


def test_always_is_plain_elapsed_time():
    start = at("2026-12-25T23:59")
    assert cal.add_business_time(start, 90, cal.ALWAYS) == start + dt.timedelta(seconds=90)
    assert cal.business_seconds_between(start, start + dt.timedelta(days=3), cal.ALWAYS) == 3 * 86400


def test_adding_and_measuring_agree_on_random_spans():
    rng = random.Random(14)
    berlin = cal.office(timezone="Europe/Berlin", country="DE")
    for _ in range(200):
        start = at("2026-01-01T00:00") + dt.timedelta(seconds=rng.randrange(365 * 86400))
        seconds = rng.randrange(1, 60 * 3600)
        due = cal.add_business_time(start, seconds, berlin)
        assert due > start
        assert cal.business_seconds_between(start, due, berlin) == pytest.approx(seconds, abs=1e-3)


def test_naive_times_are_refused():
    with pytest.raises(cal.CalendarError):
        cal.add_business_time(dt.datetime(2026, 1, 5, 10), 60, cal.office())


@pytest.mark.parametrize("spec, words", [
    ({"timezone": "Mars/Olympus", "hours": {"mon": ["09:00-17:00"]}}, "time zone"),
    ({"hours": {"mon": ["17:00-09:00"]}}, "HH:MM-HH:MM"),
    ({"hours": {"funday": ["09:00-17:00"]}}, "mon..sun"),
    ({"hours": {}}, "no open hours"),
    ({"hours": {"mon": ["09:00-17:00"]}, "holidays": "XX"}, "holidays"),
    ({"hours": {"mon": ["09:00-17:00"]}, "colour": "red"}, "unknown setting"),
])
def test_a_bad_calendar_is_refused_with_the_reason(spec, words):
    with pytest.raises(cal.CalendarError, match=words):
        cal.parse("bad", spec)


def test_policies_choose_by_plan_and_severity_and_refuse_bad_settings():
    chosen = parse({"policies": [
        {"name": "urgent", "severity": "urgent", "first_reply": "30m", "next_reply": "1h",
         "calendar": "24x7"},
        {"name": "gold", "plan": "gold", "first_reply": "2h", "next_reply": "4h"},
        {"name": "default", "first_reply": "4h", "next_reply": "1d"}]})
    assert chosen.choose("gold", "urgent").name == "urgent"
    assert chosen.choose("gold", "normal").name == "gold"
    assert chosen.choose("standard", "low").target("next") == 86400
    assert duration(90, "x") == 90 and duration("45m", "x") == 2700
    with pytest.raises(PolicyError, match="duration"):
        parse({"policies": [{"first_reply": "soon", "next_reply": "1h"}]})
    with pytest.raises(PolicyError, match="no calendar"):
        parse({"policies": [{"first_reply": "1h", "next_reply": "1h", "calendar": "moon"}]})
