"""The window primitives' guards: resets, restarts, tiny volumes, one sample, bad values."""

from __future__ import annotations

import math

import pytest

from report.finding import Insufficient
from report.window import Window, guarded_ratio
from tests.reportkit import counters, make_bundle


def window(rows):
    return make_bundle(status=rows).window


def test_rate_and_delta_over_the_window():
    w = window(counters({"Questions": 1000}, {"Questions": 25}))
    assert w.delta("Questions") == pytest.approx(25 * 50)
    assert w.rate("Questions") == pytest.approx(25)
    assert not w.restarted


def test_a_restart_inside_the_window_cuts_that_interval_out():
    rows = [{"Questions": 100, "Uptime": 1000}, {"Questions": 200, "Uptime": 1010},
            {"Questions": 5, "Uptime": 3}, {"Questions": 105, "Uptime": 13}]
    w = window(rows)
    assert w.restarted
    assert w.delta("Questions") == 200  # 100 before and 100 after; the restart interval counts for nothing
    assert w.rate("Questions") == pytest.approx(10)


def test_a_counter_that_goes_down_without_a_restart_is_a_reset():
    w = window([{"Com_select": 50}, {"Com_select": 10}, {"Com_select": 30}])
    assert w.resets("Com_select") == 1
    assert w.delta("Com_select") == 20


def test_every_interval_cut_is_insufficient_not_zero():
    w = window([{"Com_select": 50}, {"Com_select": 10}])
    with pytest.raises(Insufficient, match="reset"):
        w.rate("Com_select")


def test_one_sample_is_insufficient_for_a_rate_a_trend_and_a_persistence():
    w = window([{"Questions": 5, "Threads_running": 3}])
    for call in (lambda: w.rate("Questions"), lambda: w.trend("Threads_running"),
                 lambda: w.above("Threads_running", 1)):
        with pytest.raises(Insufficient, match="sample"):
            call()


@pytest.mark.parametrize("bad", ["", "abc", "NaN", "inf", "-inf", "1e999", None, [], {}, "9" * 80, True])
def test_values_that_are_not_numbers_count_as_missing(bad):
    w = window([{"Questions": bad}, {"Questions": bad}, {"Questions": bad}])
    with pytest.raises(Insufficient):
        w.rate("Questions")
    with pytest.raises(Insufficient):
        w.gauge("Questions")


def test_ratio_guards_zero_tiny_and_inconsistent_volumes():
    assert guarded_ratio(5, 100, 10, "x") == 0.05
    for part, whole in ((0, 0), (1, 3), (-1, 100), (150, 100), (None, 100), (1, None)):
        with pytest.raises(Insufficient):
            guarded_ratio(part, whole, 10, "x")


def test_a_small_overshoot_of_counters_read_one_after_another_is_clamped():
    # a real busy window: Threads_created 3,124 against Connections 3,120
    assert guarded_ratio(3124, 3120, 50, "x") == 1.0
    with pytest.raises(Insufficient, match="inconsistent"):
        guarded_ratio(3300, 3120, 50, "x")


def test_ratio_over_the_window_is_never_negative_or_above_one():
    w = window(counters({"Innodb_buffer_pool_reads": 0, "Innodb_buffer_pool_read_requests": 0},
                        {"Innodb_buffer_pool_reads": 5, "Innodb_buffer_pool_read_requests": 100}))
    value = w.ratio("Innodb_buffer_pool_reads", "Innodb_buffer_pool_read_requests", 100)
    assert 0 <= value <= 1 and value == pytest.approx(0.05)


def test_gauge_persistence_and_trend():
    rows = [{"Threads_running": v} for v in (1, 2, 30, 40, 50, 60)]
    w = window(rows)
    g = w.gauge("Threads_running")
    assert (g.min, g.max, g.last, g.n) == (1, 60, 60, 6)
    assert g.p95 == 60 and math.isclose(g.avg, 183 / 6)
    assert w.above("Threads_running", 20) == pytest.approx(4 / 6)
    assert w.trend("Threads_running").per_second > 0


def test_rows_without_a_time_or_values_are_ignored():
    w = Window.from_rows([{"ts": "not a time", "status": {"a": 1}}, {"status": {"a": 2}},
                          {"ts": "2026-12-02T10:00:00Z", "status": "text"}, "row", None], "status")
    assert len(w) == 0
    with pytest.raises(Insufficient):
        w.gauge("a")
