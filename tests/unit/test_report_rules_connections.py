"""The connection rules (CONN-*): each fires on the server it describes and stays quiet on a
healthy one; the ratio rules say "insufficient" on a restart, a zero or tiny denominator,
or one sample; malformed members never make a rule fail."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import report.catalog  # noqa: F401 - declares the rules
from report import registry
from report.finding import Finding
from tests.reportkit import counters, make_bundle, outcome, rule_errors, status, undocumented

CPUS = {"os/cpuinfo.json": {"logical": 4, "usable": 2}}


def sleepers(count: int, idle: int = 3600) -> List[Dict[str, Any]]:
    rows = [{"id": i, "user": "app", "host": f"10.0.0.{i % 5}:4{i:04d}", "command": "Sleep",
             "time": idle, "state": "", "statement": None} for i in range(count)]
    rows.append({"id": 999, "user": "diag", "host": "localhost", "command": "Sleep", "time": 99999,
                 "mydiag": True})
    return rows


# -- each rule: a server that triggers it, and one that passes -----------------------------

def test_thread_cache_churn_fires_when_every_connection_creates_a_thread():
    rows = counters({}, {"Connections": 30, "Threads_created": 30})
    finding = outcome(make_bundle({"thread_cache_size": 0}, rows), "CONN-01")
    assert isinstance(finding, Finding)
    assert finding.window and "30.0 new threads per second" in finding.summary
    assert finding.evidence[0].values["miss_ratio"] == 1.0
    assert len(finding.evidence[0].samples) == 6


def test_thread_cache_churn_passes_when_the_cache_serves_the_connections():
    rows = counters({}, {"Connections": 30, "Threads_created": 0.05})
    assert status(make_bundle({}, rows), "CONN-01") == "passed"


def test_thread_cache_churn_does_not_apply_under_a_thread_pool():
    rows = counters({}, {"Connections": 30, "Threads_created": 30})
    bundle = make_bundle({"thread_handling": "pool-of-threads"}, rows)
    assert status(bundle, "CONN-01") == "not_applicable"


def test_aborted_connects_fires_and_names_access_denied():
    rows = counters({}, {"Connections": 10, "Aborted_connects": 3, "Access_denied_errors": 3})
    finding = outcome(make_bundle({}, rows), "CONN-02")
    assert isinstance(finding, Finding)
    assert "access denied" in finding.summary
    assert finding.evidence[0].values["Aborted_connects"] == 150


def test_aborted_connects_is_an_error_when_most_attempts_fail():
    rows = counters({}, {"Connections": 10, "Aborted_connects": 8})
    finding = outcome(make_bundle({}, rows), "CONN-02")
    assert finding.severity == "error" and "access denied" not in finding.summary


def test_aborted_connects_passes_with_a_rare_failure():
    rows = counters({}, {"Connections": 10, "Aborted_connects": 0.02})
    assert status(make_bundle({}, rows), "CONN-02") == "passed"


def test_aborted_clients_fires_on_a_steady_rate():
    rows = counters({}, {"Aborted_clients": 0.5, "Connections": 2})
    finding = outcome(make_bundle({"wait_timeout": 60}, rows), "CONN-03")
    assert isinstance(finding, Finding) and "wait_timeout=60" in finding.summary


def test_aborted_clients_passes_with_a_few():
    rows = counters({}, {"Aborted_clients": 0.01})
    assert status(make_bundle({}, rows), "CONN-03") == "passed"


def test_max_used_connections_fires_near_the_limit():
    rows = counters({"Max_used_connections": 148}, {})
    finding = outcome(make_bundle({"max_connections": 151}, rows), "CONN-04")
    assert isinstance(finding, Finding) and "98%" in finding.summary
    assert finding.severity == "warning"


def test_max_used_connections_is_an_error_at_the_limit():
    rows = counters({"Max_used_connections": 152}, {})
    assert outcome(make_bundle({"max_connections": 151}, rows), "CONN-04").severity == "error"


def test_max_used_connections_passes_with_headroom():
    rows = counters({"Max_used_connections": 40}, {})
    assert status(make_bundle({"max_connections": 151}, rows), "CONN-04") == "passed"


def test_refused_connections_fire_when_the_counter_grows():
    rows = counters({"Connection_errors_max_connections": 7}, {"Connection_errors_max_connections": 2},
                    gauges={"Threads_connected": 151})
    finding = outcome(make_bundle({}, rows), "CONN-05")
    assert isinstance(finding, Finding) and finding.severity == "error"
    assert finding.evidence[0].values["Connection_errors_max_connections"] == 100
    assert finding.evidence[0].values["Threads_connected_max"] == 151


def test_refused_connections_pass_when_the_counter_is_flat_even_if_high_since_start():
    rows = counters({"Connection_errors_max_connections": 5000}, {})
    assert status(make_bundle({}, rows), "CONN-05") == "passed"


def test_refused_connections_count_ordinary_accounts_refused_after_authentication():
    # MariaDB: an ordinary account refused at max_connections counts in Aborted_connects only
    # (measured: Connection_errors_max_connections stays at 0). Access denials are not refusals.
    rows = counters({"Max_used_connections": 21}, {"Aborted_connects": 3, "Access_denied_errors": 1,
                                                  "Aborted_connects_preauth": 0.5,
                                                  "Connection_errors_max_connections": 0})
    finding = outcome(make_bundle({"max_connections": 20}, rows), "CONN-05")
    assert isinstance(finding, Finding) and finding.confidence == "medium"
    assert finding.evidence[0].values["after_authentication"] == 75
    assert "75 ordinary accounts refused after authentication" in finding.summary


@pytest.mark.parametrize("peak", [19, None])
def test_failed_connects_are_not_refusals_while_the_server_stayed_below_max_connections(peak):
    start = {} if peak is None else {"Max_used_connections": peak}
    rows = counters(start, {"Aborted_connects": 3, "Connection_errors_max_connections": 0})
    assert status(make_bundle({"max_connections": 20}, rows), "CONN-05") == "passed"


def test_refusals_counted_by_the_server_are_not_counted_twice():
    rows = counters({"Max_used_connections": 21}, {"Aborted_connects": 2,
                                                  "Connection_errors_max_connections": 2})
    finding = outcome(make_bundle({"max_connections": 20}, rows), "CONN-05")
    assert finding.evidence[0].values["refused"] == 100 and finding.confidence == "high"


def test_threads_running_fires_when_above_twice_the_cpus_most_of_the_window():
    rows = counters({}, {}, gauges={"Threads_running": 9})
    finding = outcome(make_bundle({}, rows, files=CPUS), "CONN-06")
    assert isinstance(finding, Finding)
    assert finding.evidence[0].values["cpus"] == 2 and finding.evidence[0].values["threshold"] == 4
    assert finding.severity == "error"


def test_threads_running_passes_on_a_short_spike():
    rows = counters({}, {}, gauges={"Threads_running": 1})
    rows[2]["Threads_running"] = 40
    assert status(make_bundle({}, rows, files=CPUS), "CONN-06") == "passed"


def test_threads_running_counts_the_cpus_of_the_cgroup_quota():
    rows = counters({}, {}, gauges={"Threads_running": 4})
    quota = {"os/mysqld_process.json": {"cgroup": {"cpu": {"quota_cpus": 1.5}}}, **CPUS}
    finding = outcome(make_bundle({}, rows, files=quota), "CONN-06")
    assert isinstance(finding, Finding) and finding.evidence[0].values["cpus"] == 1.5
    assert "2 × 1.5 CPUs" in finding.summary
    assert status(make_bundle({}, rows, files=CPUS), "CONN-06") == "passed"


def test_threads_running_is_insufficient_without_a_cpu_count():
    rows = counters({}, {}, gauges={"Threads_running": 9})
    bundle = make_bundle({}, rows, files={"os/cpuinfo.json": {"logical": "many"}})
    assert status(bundle, "CONN-06") == "insufficient"


def test_threads_running_needs_three_samples():
    rows = counters({}, {}, samples=2, gauges={"Threads_running": 9})
    assert status(make_bundle({}, rows, files=CPUS), "CONN-06") == "insufficient"


def test_connection_rate_fires_for_short_lived_connections():
    rows = counters({}, {"Connections": 200}, gauges={"Threads_connected": 12})
    finding = outcome(make_bundle({}, rows), "CONN-07")
    assert isinstance(finding, Finding) and "200 new connections per second" in finding.summary
    assert finding.evidence[0].values["average_lifetime_s"] == pytest.approx(0.06)


def test_connection_rate_passes_at_a_low_rate():
    rows = counters({}, {"Connections": 2}, gauges={"Threads_connected": 12})
    assert status(make_bundle({}, rows), "CONN-07") == "passed"


def test_idle_connections_fire_with_many_long_sleepers_and_a_long_wait_timeout():
    bundle = make_bundle({"wait_timeout": 28800}, counters({}, {}),
                         files={"mysql/processlist.json": sleepers(60)})
    finding = outcome(bundle, "CONN-08")
    assert isinstance(finding, Finding)
    values = finding.evidence[0].values
    assert values["idle_over_600s"] == 60  # mydiag's own connection is not counted
    assert values["by_account"]["app@10.0.0.0"] == 12


def test_idle_connections_pass_with_a_short_wait_timeout():
    bundle = make_bundle({"wait_timeout": 600}, counters({}, {}),
                         files={"mysql/processlist.json": sleepers(60)})
    assert status(bundle, "CONN-08") == "passed"


def test_idle_connections_pass_when_the_sleepers_are_recent():
    bundle = make_bundle({"wait_timeout": 28800}, counters({}, {}),
                         files={"mysql/processlist.json": sleepers(60, idle=5)})
    assert status(bundle, "CONN-08") == "passed"


# -- the guards of the ratio rules --------------------------------------------------------

RATIO_RULES = {
    "CONN-01": ({}, {"Connections": 30, "Threads_created": 30}),
    "CONN-02": ({}, {"Connections": 10, "Aborted_connects": 8}),
}


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_fire_on_their_trigger(rule_id):
    start, rates = RATIO_RULES[rule_id]
    assert status(make_bundle({"thread_cache_size": 0}, counters(start, rates)), rule_id) == "finding"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_after_a_restart_in_the_window(rule_id):
    start, rates = RATIO_RULES[rule_id]
    rows = counters(start, rates, samples=2)
    rows[1] = {name: 1 for name in rows[1]}
    rows[1]["Uptime"] = 5
    assert status(make_bundle({"thread_cache_size": 0}, rows), rule_id) == "insufficient"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_with_a_zero_denominator(rule_id):
    start, rates = RATIO_RULES[rule_id]
    rows = counters(start, {name: 0 for name in rates})
    assert status(make_bundle({"thread_cache_size": 0}, rows), rule_id) == "insufficient"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_on_a_tiny_volume(rule_id):
    start, rates = RATIO_RULES[rule_id]
    rows = counters(start, {name: rate / 100 for name, rate in rates.items()})
    assert status(make_bundle({"thread_cache_size": 0}, rows), rule_id) == "insufficient"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_with_one_sample(rule_id):
    start, rates = RATIO_RULES[rule_id]
    rows = counters(start, rates, samples=1)
    assert status(make_bundle({"thread_cache_size": 0}, rows), rule_id) == "insufficient"


@pytest.mark.parametrize("limit", [0, -5, "none"])
def test_max_used_connections_is_insufficient_without_a_usable_limit(limit):
    rows = counters({"Max_used_connections": 148}, {})
    assert status(make_bundle({"max_connections": limit}, rows), "CONN-04") == "insufficient"


def test_max_used_connections_is_insufficient_without_status():
    assert status(make_bundle({}, []), "CONN-04") == "insufficient"


@pytest.mark.parametrize("rule_id", ["CONN-03", "CONN-05", "CONN-07"])
def test_rate_rules_are_insufficient_with_one_sample(rule_id):
    rows = counters({}, {"Aborted_clients": 5, "Connection_errors_max_connections": 5,
                         "Connections": 500}, samples=1)
    assert status(make_bundle({}, rows), rule_id) == "insufficient"


def test_a_restart_does_not_count_the_counters_falling_as_activity():
    rows = counters({"Aborted_clients": 10_000, "Connection_errors_max_connections": 10_000}, {})
    rows[3] = {"Aborted_clients": 0, "Connection_errors_max_connections": 0, "Uptime": 1}
    rows[4] = {"Aborted_clients": 0, "Connection_errors_max_connections": 0, "Uptime": 11}
    rows[5] = {"Aborted_clients": 0, "Connection_errors_max_connections": 0, "Uptime": 21}
    bundle = make_bundle({}, rows)
    assert status(bundle, "CONN-03") == "passed"
    assert status(bundle, "CONN-05") == "passed"


# -- hostile members --------------------------------------------------------------------------

CONN_RULES = [r for r in registry.all_rules() if r.group == "connections"]
HOSTILE = ["NaN", "nan", "inf", "-1e999", "1e308", "9" * 60, "", None, [1, 2], {"a": 1}, True, "12abc"]


def _hostile_bundles():
    for value in HOSTILE:
        rows = counters({}, {"Connections": 30, "Threads_created": 30}, samples=4)
        for row in rows:
            for name in ("Threads_running", "Threads_connected", "Max_used_connections", "Aborted_clients",
                         "Connection_errors_max_connections", "Aborted_connects", "Uptime"):
                row[name] = value
        variables = {name: value for name in ("max_connections", "wait_timeout", "thread_cache_size",
                                              "thread_handling")}
        files = {"os/cpuinfo.json": {"usable": value, "logical": value},
                 "mysql/processlist.json": [value, {"command": value, "time": value, "user": value,
                                                    "host": value}, {"command": "Sleep", "time": value}]}
        yield make_bundle(variables, rows, files=files)
    raw_status = [{"ts": "2026-12-02T10:00:00Z", "status": ["Threads_running", 5]},
                  {"ts": "not a time", "status": {"Connections": "1"}},
                  {"ts": 12, "status": None}, {"status": {"Connections": {"x": 1}}}]
    yield make_bundle({}, files={"mysql/global_variables.json": ["max_connections", 151],
                                 "os/cpuinfo.json": [2], "mysql/processlist.json": {"threads": 5}},
                      jsonl={"mysql/global_status.jsonl": raw_status})
    yield make_bundle({}, text={"mysql/global_status.jsonl": "{not json\n[1,2]\n\"x\"\n",
                                "os/cpuinfo.json": "{", "mysql/processlist.json": "\x00\xff",
                                "mysql/global_variables.json": "null"})


@pytest.mark.parametrize("bundle", list(_hostile_bundles()))
def test_malformed_members_never_make_a_connection_rule_fail(bundle):
    assert rule_errors(bundle, CONN_RULES) == []
    assert len(CONN_RULES) >= 6


def test_the_connection_rules_are_documented_and_mostly_sampled():
    assert undocumented(CONN_RULES) == []
    assert sum(r.window for r in CONN_RULES) >= 5
