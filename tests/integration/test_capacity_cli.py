"""`mydiag-server calendar set|show|time-off` on SQLite and PostgreSQL: an engineer's own hours,
zone, holidays and share replace the default business calendar; time off is listed; bad input
(unknown zones, hours that are not hours, shares out of range, unknown engineers, backwards
time off, control characters) leaves with one line and a documented exit code."""

from __future__ import annotations

import json

import pytest

from server import exitcodes
from tests.serverkit import make_server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def data(tmp_path_factory, backend):
    srv = make_server(tmp_path_factory.mktemp("calendar"), backend)
    srv.cli("engineer", "add", "bob")
    return srv


def test_an_engineer_without_a_calendar_works_the_default_business_hours(data):
    data.cli("engineer", "add", "carol")
    shown = json.loads(data.cli("calendar", "show", "carol", "--json").stdout)
    assert shown["own"] is False and shown["calendar"] == "business" and shown["timezone"] == "UTC"
    assert shown["hours"]["mon"] == ["09:00-17:00"] and "sat" not in shown["hours"]
    assert shown["share"] == 1.0 and shown["time_off"] == []


def test_set_replaces_the_calendar_and_show_prints_it_in_day_order(data):
    done = data.cli("calendar", "set", "bob", "--timezone", "Europe/Berlin", "--hours",
                    "mon-fri=09:00-12:00+13:00-17:00,sat=10:00-14:00", "--holidays", "DE",
                    "--subdivision", "BY", "--share", "0.5")
    assert "own calendar, Europe/Berlin, holidays DE/BY, share 0.5" in done.stdout
    shown = json.loads(data.cli("calendar", "show", "bob", "--json").stdout)
    assert shown["own"] is True and shown["share"] == 0.5
    assert list(shown["hours"]) == ["mon", "tue", "wed", "thu", "fri", "sat"]
    assert shown["hours"]["fri"] == ["09:00-12:00", "13:00-17:00"]
    data.cli("calendar", "set", "bob", "--timezone", "America/New_York", "--hours", "mon=08:00-16:00")
    again = json.loads(data.cli("calendar", "show", "bob", "--json").stdout)
    assert again["timezone"] == "America/New_York" and list(again["hours"]) == ["mon"]
    assert again["share"] == 1.0


def test_time_off_is_listed_until_it_has_passed(data):
    added = json.loads(data.cli("calendar", "time-off", "bob", "--from", "2099-07-01", "--to",
                                "2099-07-15T12:00Z", "--reason", "summer <b>holiday</b>", "--json").stdout)
    assert added["starts"] == "2099-07-01T00:00:00Z" and added["ends"] == "2099-07-15T12:00:00Z"
    data.cli("calendar", "time-off", "bob", "--from", "2001-01-01", "--to", "2001-01-02", "--reason", "past")
    shown = json.loads(data.cli("calendar", "show", "bob", "--json").stdout)
    assert [o["reason"] for o in shown["time_off"]] == ["summer <b>holiday</b>"]
    assert "off 2099-07-01T00:00:00Z .. 2099-07-15T12:00:00Z" in data.cli("calendar", "show", "bob").stdout


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # checked before any SQL
@pytest.mark.parametrize("args, code, says", [
    (["set", "bob", "--timezone", "Mars/Olympus", "--hours", "mon=09:00-17:00"], exitcodes.USAGE,
     "unknown time zone"),
    (["set", "bob", "--timezone", "UTC", "--hours", "mon=17:00-09:00"], exitcodes.USAGE,
     "is not 'HH:MM-HH:MM'"),
    (["set", "bob", "--timezone", "UTC", "--hours", "mon=25:00-26:00"], exitcodes.USAGE,
     "is not 'HH:MM-HH:MM'"),
    (["set", "bob", "--timezone", "UTC", "--hours", "funday=09:00-17:00"], exitcodes.USAGE, "DAYS=HH:MM"),
    (["set", "bob", "--timezone", "UTC", "--hours", "fri-mon=09:00-17:00"], exitcodes.USAGE, "backwards"),
    (["set", "bob", "--timezone", "UTC", "--hours", "mon=09:00-17:00", "--holidays", "XX"], exitcodes.USAGE,
     "holidays"),
    (["set", "bob", "--timezone", "UTC", "--hours", "mon=09:00-17:00", "--share", "0"], exitcodes.USAGE,
     "share"),
    (["set", "bob", "--timezone", "UTC", "--hours", "mon=09:00-17:00", "--share", "1.5"], exitcodes.USAGE,
     "share"),
    (["set", "bob", "--timezone", "UTC", "--hours", "mon=09:00-17:00", "--share", "nan"], exitcodes.USAGE,
     "share"),
    (["set", "nobody", "--timezone", "UTC", "--hours", "mon=09:00-17:00"], exitcodes.NOT_FOUND,
     "no engineer"),
    (["show", "nobody"], exitcodes.NOT_FOUND, "no engineer"),
    (["time-off", "bob", "--from", "2099-02-01", "--to", "2099-01-01", "--reason", "x"], exitcodes.USAGE,
     "end after it starts"),
    (["time-off", "bob", "--from", "yesterday", "--to", "2099-01-01", "--reason", "x"], exitcodes.USAGE,
     "--from must be a date"),
    (["time-off", "bob", "--from", "2099-01-01", "--to", "2101-01-01", "--reason", "x"], exitcodes.USAGE,
     "366 days"),
    (["time-off", "bob", "--from", "2099-01-01", "--to", "2099-01-02", "--reason", "bell\x07"],
     exitcodes.USAGE, "reason"),
])
def test_bad_input_leaves_with_one_line_and_changes_nothing(data, args, code, says):
    before = data.cli("calendar", "show", "bob", "--json").stdout
    done = data.cli("calendar", *args, check=False)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr
    assert data.cli("calendar", "show", "bob", "--json").stdout == before
