"""The trigger language: what it accepts, what it refuses (and where), and when a trigger fires."""

from __future__ import annotations

import pytest

from agent.daemon.trigger_language import ExpressionError, parse
from agent.daemon.triggers import Reading, TriggerState, observe


@pytest.mark.parametrize("text", [
    "Threads_running > 50",
    "rate(Com_select) > 5000",
    "Threads_running >= 50 AND rate(Com_select) > 5000 OR load1 > 8",
    'processlist.state("Waiting for table metadata lock") > 0',
    "longest_query_seconds > 30",
    "(iowait > 20 OR mem_free_pct < 5) AND NOT disk_free_pct(/var/lib/mysql) < 10",
    "disk_free_pct('/') <= 1.5",
    "Questions / Uptime > 3 and threads_connected*2 >= 1e3",
    "-1 < Threads_running",
    "a > 1 && b < 2 || !(c > 1)",
])
def test_good_conditions_parse(text):
    assert parse(text).text == text


@pytest.mark.parametrize("text, position, words", [
    ("Threads_running > AND 3", 19, "expected a number, a name or '('"),
    ("Threads_running", 1, "needs a comparison"),
    ("(Threads_running > 5", 21, "')' for the '(' at position 1"),
    ("Threads_running > 5)", 20, "no matching '('"),
    ("1 < Threads_running < 5", 21, "do not chain"),
    ("Threads_running + (Uptime > 1) > 2", 19, "needs numbers"),
    ("Threads_running > 5 AND 3", 25, "AND joins comparisons"),
    ("load9(1) > 1", 1, "unknown function 'load9'"),
    ("rate(5) > 1", 6, "status counter's name"),
    ("processlist.status('x') > 1", 13, "state, command or user"),
    ("processlist.state(x) > 1", 19, "quoted value"),
    ("disk_free_pct(var) > 1", 15, "a path"),
    ("disk_free_pct('var') > 1", 15, "absolute path"),
    ("Threads_running > 'x", 19, "not closed"),
    ("Threads_running ~ 5", 17, "unexpected character '~'"),
    ("Threads_running >", 18, "ends too early"),
    ("", 1, "empty"),
])
def test_a_bad_condition_is_refused_with_its_position(text, position, words):
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.position + 1 == position, caught.value.explain()
    assert words in caught.value.message
    assert f"at position {position} of {text!r}" in caught.value.explain()


def test_what_a_condition_needs_is_known_before_the_first_check():
    expression = parse('rate(Com_select) > 5 AND Threads_running > 1 AND load1 > 0 '
                       'AND disk_free_pct("/") > 0 OR longest_query_seconds > 1')
    assert expression.status_names == {"Com_select", "Threads_running"}
    assert expression.rate_names == {"Com_select"}
    assert expression.host_names == {"load1"}
    assert expression.disk_paths == {"/"}
    assert expression.needs_processlist
    assert not parse("Threads_running > 1").needs_processlist


def test_unknown_values_never_fire_and_and_or_short_circuit_on_known_ones():
    expression = parse("Threads_running > 50 OR rate(Com_select) > 10")
    assert expression.evaluate(Reading(status={"threads_running": 60}))[0] is True
    assert expression.evaluate(Reading(status={"threads_running": 6}))[0] is None
    both = parse("Threads_running > 50 AND rate(Com_select) > 10")
    assert both.evaluate(Reading(status={"threads_running": 6}))[0] is False
    assert parse("Uptime / Questions > 1").evaluate(
        Reading(status={"uptime": 5, "questions": 0}))[0] is None


def test_processlist_predicates_count_connections_case_blind():
    reading = Reading(processlist={("state", "waiting for table metadata lock"): 3,
                                   ("command", "query"): 5}, longest_query=42.0)
    assert parse('processlist.state("Waiting for table metadata lock") > 2').evaluate(reading)[0]
    assert parse('processlist.command("Sleep") = 0').evaluate(reading)[0]
    assert parse("longest_query_seconds > 30").evaluate(reading)[0]
    assert parse("longest_query_seconds > 30").evaluate(Reading())[0] is None


def test_values_that_fired_are_named_by_label():
    truth, values = parse("Threads_running > 5 AND rate(Com_select) > 1").evaluate(
        Reading(status={"threads_running": 9}, rates={"com_select": 12.34567}))
    assert truth is True
    assert values == {"Threads_running": 9, "rate(Com_select)": 12.346}


def _check(state, text="Threads_running > 5", value=9.0, now=1000.0, need=1, cooldown=0.0, cap=0):
    return observe("t", parse(text), need, cooldown, cap, state,
                   Reading(status={"threads_running": value}), now)


def test_for_needs_consecutive_true_checks():
    state = TriggerState()
    assert _check(state, need=3, now=1) is None
    assert _check(state, need=3, now=2) is None
    assert _check(state, need=3, value=1, now=3) is None  # the run is broken
    assert _check(state, need=3, now=4) is None
    assert _check(state, need=3, now=5) is None
    fire = _check(state, need=3, now=6)
    assert fire is not None and fire.checks == 3 and fire.values == {"Threads_running": 9.0}
    assert fire.tag()["name"] == "t" and fire.tag()["fired_at"].endswith("Z")


def test_cooldown_and_daily_cap_hold_back_and_say_why():
    state = TriggerState()
    day = 1_700_000_000.0 - 1_700_000_000.0 % 86400
    fired = [t for t in range(0, 100) if _check(state, now=day + t, cooldown=10, cap=4)]
    assert fired == [0, 10, 20, 30]
    assert "daily cap of 4" in state.held_back
    state2 = TriggerState()
    _check(state2, now=day, cooldown=10)
    _check(state2, now=day + 1, cooldown=10)
    assert state2.held_back.startswith("cooling down until")
    # A new UTC day resets the cap, and the history survives a restart (to_dict/from_dict).
    restored = TriggerState.from_dict(state.to_dict())
    assert _check(restored, now=day + 200, cooldown=10, cap=4) is None
    assert _check(restored, now=day + 86400 + 1, cooldown=10, cap=4) is not None
