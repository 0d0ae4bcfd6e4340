"""The pure planning core: supply, the demand test, admission, the queue, estimates."""

from __future__ import annotations

import math

import pytest

from server.planning import admission, estimates, queue
from server.planning.model import Task
from server.planning.supply import Supply, subtract

H = 3600.0
DAY = 86400.0


def days(n: int, start: float = 0.0, open_h: float = 8.0) -> list:
    """n working days of `open_h` hours, starting at 9:00 each day."""
    return [(start + d * DAY + 9 * H, start + d * DAY + (9 + open_h) * H) for d in range(n)]


# --- supply ---------------------------------------------------------------

def test_subtract_cuts_holes_out_of_intervals():
    assert subtract([(0, 10), (20, 30)], [(5, 22), (28, 40)]) == [(0, 5), (22, 28)]
    assert subtract([(0, 10)], []) == [(0, 10)]
    assert subtract([(0, 10)], [(0, 10)]) == []
    assert subtract([(0, 10)], [(3, 4), (2, 5)]) == [(0, 2), (5, 10)]


def test_capacity_sums_engineers_with_share_and_reserve():
    s = Supply(0.0, {"ann": [(0, 10 * H)], "bob": [(5 * H, 10 * H)]}, reserve=0.5, share={"bob": 0.5})
    assert s.capacity(5 * H) == pytest.approx(2.5 * H)
    assert s.capacity(10 * H) == pytest.approx(5 * H + 1.25 * H)
    assert s.capacity(10 * H, "bob") == pytest.approx(1.25 * H)
    assert s.capacity(99 * H) == s.capacity(10 * H)
    assert s.horizon == 10 * H
    assert s.engineers == ("ann", "bob")


def test_supply_starts_at_start_and_merges_overlaps():
    s = Supply(2 * H, {"ann": [(0, 4 * H), (3 * H, 5 * H)]})
    assert s.capacity(5 * H, "ann") == pytest.approx(3 * H)
    assert s.capacity(H) == 0.0


def test_reach_inverts_capacity_and_stops_at_the_horizon():
    s = Supply(0.0, {"ann": days(3), "bob": days(3)})
    for want in (1.0, H, 8 * H, 16 * H, 17 * H, 47 * H, 48 * H):
        t = s.reach(want)
        assert t is not None and s.capacity(t) == pytest.approx(want)
        assert s.capacity(t - 1) < want
    assert s.reach(48 * H + 1) is None
    assert s.reach(8 * H, "ann") == pytest.approx(17 * H)
    assert s.reach(9 * H, "ann") == pytest.approx(DAY + 10 * H)
    assert s.reach(0) == 0.0


def test_since_rebases_the_same_supply():
    s = Supply(0.0, {"ann": days(3), "bob": days(3)}, reserve=0.25)
    later = s.since(DAY + 13 * H)
    fresh = Supply(DAY + 13 * H, {"ann": days(3), "bob": days(3)}, reserve=0.25)
    for t in (DAY + 12 * H, DAY + 14 * H, 2 * DAY + 10 * H, 9 * DAY):
        assert later.capacity(t) == pytest.approx(fresh.capacity(t))
        assert later.capacity(t, "ann") == pytest.approx(fresh.capacity(t, "ann"))
    for want in (1.0, 3 * H, 10 * H):
        assert later.reach(want) == pytest.approx(fresh.reach(want))
    assert later.reach(fresh.capacity(9 * DAY) + 1) is None
    assert s.capacity(DAY + 13 * H) > 0  # the original is untouched


def test_working_and_next_open():
    s = Supply(0.0, {"ann": days(2)})
    assert not s.working("ann", 8 * H) and s.working("ann", 9 * H) and not s.working("ann", 17 * H)
    assert s.next_open("ann", 8 * H) == 9 * H
    assert s.next_open("ann", 10 * H) == 10 * H
    assert s.next_open("ann", 18 * H) == DAY + 9 * H
    assert s.next_open("ann", 3 * DAY) is None
    assert s.next_open("nobody", 0) is None and not s.working("nobody", 0)


# --- the demand test and admission -----------------------------------------

def two_engineers(n_days: int = 5) -> Supply:
    return Supply(0.0, {"ann": days(n_days), "bob": days(n_days)})


def test_demand_test_checks_every_deadline():
    s = two_engineers()
    # By the end of day 1 there are 16 h; 10 h + 6 h fit, one more hour does not.
    fits = [Task("a", 17 * H, 8 * H), Task("b", 17 * H, 8 * H)]
    assert admission.demand_test(fits, s) == (True, None, 0.0)
    ok, at, short = admission.demand_test(fits + [Task("c", 12 * H, 3 * H)], s)
    assert not ok and at == 17 * H and short == pytest.approx(3 * H)
    ok, at, short = admission.demand_test([Task("d", 11 * H, 5 * H)], s)
    assert not ok and at == 11 * H  # 4 h total by 11:00, and one person's 2 h


def test_demand_test_checks_pinned_work_per_engineer():
    s = two_engineers()
    pinned = [Task("a", 17 * H, 6 * H, engineer="ann"), Task("b", 17 * H, 3 * H, engineer="ann")]
    ok, at, short = admission.demand_test(pinned, s)
    assert not ok and at == 17 * H and short == pytest.approx(H)
    assert admission.demand_test([pinned[0], Task("b", 17 * H, 3 * H, engineer="bob")], s)[0]


def test_a_task_must_fit_one_engineer_alone():
    s = Supply(0.0, {f"e{i}": days(1) for i in range(8)})
    # 64 h of supply by 17:00 but no one person can give 9 hours.
    assert not admission.demand_test([Task("big", 17 * H, 9 * H)], s)[0]
    assert admission.demand_test([Task("big", 17 * H, 8 * H)], s)[0]


def test_check_admits_what_fits():
    s = two_engineers()
    v = admission.check([Task("a", 17 * H, 8 * H)], Task("n", 17 * H, 8 * H), s)
    assert v.ok and v.earliest_feasible_at == v.wanted_at == 17 * H and v.shortfall == 0 and not v.must_move


def test_check_refuses_and_offers_the_earliest_feasible_date():
    s = two_engineers()
    tasks = [Task("a", 17 * H, 8 * H), Task("b", 17 * H, 8 * H)]
    v = admission.check(tasks, Task("n", 12 * H, 2 * H), s)
    assert not v.ok and v.failing_at == 17 * H and v.shortfall == pytest.approx(2 * H)
    # Day 1 is full; 2 h of two engineers on day 2 are done at 10:00 (to the minute).
    assert v.earliest_feasible_at is not None
    assert DAY + 10 * H <= v.earliest_feasible_at <= DAY + 10 * H + 60
    assert admission.check(tasks, Task("n", v.earliest_feasible_at, 2 * H), s).ok
    assert not admission.check(tasks, Task("n", v.earliest_feasible_at - 120, 2 * H), s).ok
    assert "earliest date" in v.reason and "\n" not in v.reason


def test_earliest_feasible_is_none_past_the_horizon():
    s = two_engineers(1)
    v = admission.check([], Task("n", 17 * H, 20 * H), s)
    assert not v.ok and v.earliest_feasible_at is None and "horizon" in v.reason


def test_must_move_names_the_latest_due_competitors():
    s = two_engineers()
    tasks = [Task("early", 12 * H, 2 * H), Task("mid", 15 * H, 6 * H), Task("late", 17 * H, 8 * H),
             Task("tomorrow", DAY + 17 * H, 8 * H)]
    v = admission.check(tasks, Task("n", 16 * H, 4 * H), s)
    assert not v.ok and v.failing_at == 17 * H
    # Moving "late" (due after the wanted date, before the failing deadline) is enough.
    assert v.must_move == ("late",)
    kept = [t for t in tasks if t.id not in v.must_move]
    assert admission.check(kept, Task("n", 16 * H, 4 * H), s).ok


def test_must_move_is_empty_when_nothing_moved_would_help():
    s = two_engineers()
    v = admission.check([Task("a", 17 * H, H)], Task("n", 11 * H, 3 * H), s)
    assert not v.ok and v.must_move == ()


def test_an_overloaded_set_does_not_lock_admission():
    s = two_engineers()
    # An estimate overran: 20 h due by day 1's end, 16 h available.
    overloaded = [Task("over", 17 * H, 20 * H)]
    assert not admission.demand_test(overloaded, s)[0]
    later = admission.check(overloaded, Task("n", 2 * DAY + 17 * H, 4 * H), s)
    assert later.ok
    # ...but the new task may not add to the overload.
    before = admission.check(overloaded, Task("n", 13 * H, H), s)
    assert not before.ok and before.earliest_feasible_at is not None
    assert before.earliest_feasible_at > 17 * H


def test_a_task_with_its_own_id_is_replaced_not_counted_twice():
    s = two_engineers()
    tasks = [Task("a", 17 * H, 8 * H), Task("n", 17 * H, 8 * H)]
    assert admission.check(tasks, Task("n", 17 * H, 8 * H), s).ok
    assert not admission.check(tasks, Task("other", 17 * H, 8 * H), s).ok


# --- the queue ---------------------------------------------------------------

def pick(engineer, tasks, supply, now, held=None, owners=None, slice_s=1800.0, long_slices=4):
    return queue.pick(engineer, tasks, supply, now, held=held or {}, owners=owners or {},
                      slice_seconds=slice_s, long_slices=long_slices)


def test_rank_is_edf_with_least_slack_breaking_ties():
    s = two_engineers()
    tasks = [Task("b", 17 * H, H), Task("a", 12 * H, H), Task("c", 17 * H, 5 * H, engineer="ann")]
    ranked = queue.rank(tasks, s, 9 * H)
    assert [p.task.id for p in ranked] == ["a", "c", "b"]
    assert ranked[0].why == "earliest deadline" and ranked[1].why == "least slack"
    # 5 h of everyone's time are left by 12:00, but whoever writes it has 3 h for its 1 h.
    assert ranked[0].slack == pytest.approx(3 * H - H)


def test_slack_counts_the_work_due_before():
    s = two_engineers()
    tasks = [Task(f"a{i}", 12 * H + i, 4 * H) for i in range(3)] + [Task("b", 17 * H, 2 * H)]
    assert queue.slack(tasks[-1], tasks, s, 9 * H) == pytest.approx(16 * H - 14 * H)
    assert queue.slack(tasks[-1], tasks, s, 13 * H) == pytest.approx(8 * H - 14 * H)
    # Alone: one engineer has 8 h for its 2 h; counted once even when not in the list.
    assert queue.slack(Task("c", 17 * H, 2 * H), [], s, 9 * H) == pytest.approx(6 * H)


def test_pick_skips_tasks_held_pinned_or_waiting():
    s = two_engineers()
    tasks = [Task("held", 10 * H, 600), Task("theirs", 11 * H, 600, engineer="bob"),
             Task("waiting", 11 * H, 600, ready=12 * H), Task("mine", 16 * H, 600)]
    p = pick("ann", tasks, s, 9.5 * H, held={"held": "bob"})
    assert p is not None and p.task.id == "mine"
    assert pick("bob", tasks, s, 9.5 * H, held={"held": "bob"}).task.id == "held"
    # The wait is over: the task is back.
    assert pick("ann", tasks, s, 12 * H, held={"held": "bob"}).task.id == "waiting"
    assert pick("ann", [tasks[0]], s, 9.5 * H, held={"held": "bob"}) is None


def test_a_long_task_keeps_its_dedicated_owner():
    s = two_engineers()
    big = Task("big", 2 * DAY + 17 * H, 10 * H)
    small = [Task(f"s{i}", DAY + 17 * H, 1200) for i in range(10)]
    assert queue.is_long(big, 1800, 4) and not queue.is_long(small[0], 1800, 4)
    p = pick("ann", small + [big], s, 9 * H, owners={"big": "ann"})
    assert p.task.id == "big" and p.why == "dedicated owner"
    # The other engineer does the small ones, and may not take the owned task.
    assert pick("bob", small + [big], s, 9 * H, owners={"big": "ann"}).task.id.startswith("s")
    assert pick("bob", [big], s, 9 * H, owners={"big": "ann"}) is None


def test_the_owner_leaves_a_long_task_for_a_critical_one():
    s = two_engineers()
    big = Task("big", 2 * DAY + 17 * H, 10 * H)
    urgent = Task("urgent", 9 * H + 1500, 1200)
    p = pick("ann", [big, urgent], s, 9 * H, owners={"big": "ann"})
    assert p.task.id == "urgent" and p.why == "slack alarm"


def _finish_of_big(choose) -> float:
    """Two engineers around the clock for 20 h: 16 half-hour tasks due at 9 h, one 8-hour task due
    at 10 h; every half-hour slice each engineer takes what `choose` says. When is the big one done?"""
    s_open = {"ann": [(0.0, 20 * H)], "bob": [(0.0, 20 * H)]}
    left = {f"s{i}": 1800.0 for i in range(16)}
    left["big"] = 8 * H
    due = {k: 9 * H for k in left}
    due["big"] = 10 * H
    owners: dict = {}
    now = 0.0
    while now < 20 * H:
        supply = Supply(now, s_open)
        live = [Task(k, due[k], v) for k, v in left.items() if v > 0]
        held: dict = {}
        for who in ("ann", "bob"):
            p = choose(who, live, supply, now, held, owners)
            if p is None:
                continue
            held[p.task.id] = who
            if queue.is_long(p.task, 1800, 4):
                owners.setdefault(p.task.id, who)
        for task_id in held:
            left[task_id] -= 1800
        now += 1800
        if left["big"] <= 0:
            return now
    return float("inf")


def test_many_small_follow_ups_do_not_starve_a_large_task():
    """Dhall's effect: 16 h of work against 20 h of supply by 10 h passes the demand test, but plain
    EDF keeps both engineers on the small tasks for 4 h and the 8-hour task, which one person must
    do, ends at 12 h. The queue's slack and dedicated owner finish it by its due."""
    def plain_edf(who, live, supply, now, held, owners):
        free = [p for p in queue.rank(live, supply, now) if p.task.id not in held]
        return free[0] if free else None

    def the_queue(who, live, supply, now, held, owners):
        return pick(who, live, supply, now, held=held, owners=owners)

    assert _finish_of_big(plain_edf) > 10 * H
    assert _finish_of_big(the_queue) <= 10 * H


def test_alarms_report_slack_below_the_threshold_before_the_breach():
    s = two_engineers()
    tasks = [Task("tight", 11 * H, 1.5 * H), Task("easy", 17 * H, H)]
    found = queue.alarms(tasks, s, 9 * H, threshold=H)
    assert [p.task.id for p in found] == ["tight"]
    assert found[0].slack > 0  # not yet breached


# --- estimates ---------------------------------------------------------------

def test_overrun_is_one_without_history_and_resists_few_samples():
    assert estimates.overrun([]) == 1.0
    assert 1.0 <= estimates.overrun([(3600, 36000)]) < 2.0
    assert estimates.overrun([(3600, 1800)] * 50) == 1.0


def test_overrun_learns_a_consistent_factor_and_ignores_an_outlier():
    history = [(3600, 5400)] * 40 + [(3600, 3600 * 100)]
    assert estimates.overrun(history) == pytest.approx(1.5, rel=0.1)


def test_overrun_ignores_broken_pairs():
    assert estimates.overrun([(0, 100), (-1, 5), (100, math.nan), (3600, 3600)]) == 1.0


def test_default_effort_learns_from_history():
    assert estimates.default_effort("first", []) == estimates.DEFAULT_EFFORT["first"]
    assert estimates.default_effort("unknown", []) == estimates.DEFAULT_EFFORT["next"]
    learned = estimates.default_effort("next", [600.0] * 100)
    assert 600 <= learned < 700
    few = estimates.default_effort("next", [600.0])
    assert few > 1000


# --- calendars as supply -------------------------------------------------------

def test_open_intervals_follow_the_calendar_across_dst_and_clip_to_the_window():
    import datetime as dt

    from server.support import calendar as cal

    berlin = cal.office(timezone="Europe/Berlin")
    friday = dt.datetime(2026, 3, 27, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    spans = cal.open_intervals(berlin, friday, friday + 4 * DAY)
    # Friday from noon UTC (13:00 local) to 16:00 UTC; Monday after the clocks moved, 07:00-15:00 UTC;
    # Tuesday up to the window's end at noon.
    hours = [(cal.from_epoch(a).hour, cal.from_epoch(b).hour) for a, b in spans]
    assert hours == [(12, 16), (7, 15), (7, 12)]
    assert cal.open_intervals(cal.ALWAYS, 5.0, 10.0) == [(5.0, 10.0)]
    assert cal.open_intervals(berlin, 10.0, 5.0) == []
    s = Supply(friday, {"ann": spans})
    assert s.capacity(friday + 4 * DAY) == pytest.approx(17 * H)
