"""The memory rules (MEM-*): each fires on the host it describes and stays quiet on a healthy
one; the ratio and window rules say "insufficient" on a restart, a zero or tiny denominator,
or one sample; malformed members never make a rule fail."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

import report.catalog  # noqa: F401 - declares the rules
from report import engine, facts, registry
from report.finding import Finding, Insufficient
from report.model import Bundle
from tests.reportkit import HOSTILE_VALUES, counters, make_bundle, outcome, rule_errors, stamp, status

GIB = 1 << 30
MIB = 1 << 20
MEM_RULES = [r for r in registry.all_rules() if r.group == "memory"]


def host(ram: float = 16 * GIB, limit: Optional[float] = None, rss: float = 2 * GIB, swap: float = 0,
         available_start: Optional[float] = None, available_end: Optional[float] = None) -> Dict[str, Any]:
    """os/meminfo.json, os/host.json and os/mysqld_process.json of a host."""
    start = available_start if available_start is not None else ram / 2
    end = available_end if available_end is not None else ram / 2
    cgroup = {"memory": {"cgroup_version": 2, "limit_bytes": limit, "usage_bytes": rss}}
    return {
        "os/meminfo.json": {"meminfo": {"MemTotal": ram, "MemAvailable": start},
                            "summary": {"total_bytes": ram},
                            "end": {"meminfo": {"MemTotal": ram, "MemAvailable": end}}},
        "os/host.json": {"cgroup": cgroup, "kernel": {"name": "Linux"}},
        "os/mysqld_process.json": {"pid": 4242, "cgroup": cgroup,
                                   "memory": {"VmRSS": rss, "VmSwap": swap, "VmHWM": rss}},
    }


def connections(peak: float, samples: int = 3) -> List[Dict[str, Any]]:
    return counters({"Max_used_connections": peak}, {"Questions": 10}, samples=samples)


def rss_rows(values: List[float], pid: int = 4242) -> List[Dict[str, Any]]:
    return [{"pid": pid, "name": "mariadbd", "rss_bytes": v} for v in values]


# -- MEM-01: the worst case ---------------------------------------------------------------

def test_worst_case_fires_on_the_measured_peak_of_connections():
    variables = {"innodb_buffer_pool_size": 12 * GIB, "sort_buffer_size": 64 * MIB}
    finding = outcome(make_bundle(variables, connections(80), files=host(ram=16 * GIB)), "MEM-01")
    assert isinstance(finding, Finding) and finding.severity == "warning"
    assert "80 connections at peak" in finding.summary
    values = finding.evidence[0].values
    assert values["worst_case_measured_bytes"] > 0.9 * 16 * GIB
    assert values["limit"] == "the host's RAM"


def test_worst_case_uses_the_cgroup_limit_when_it_is_tighter_than_ram():
    variables = {"innodb_buffer_pool_size": 6 * GIB}
    finding = outcome(make_bundle(variables, connections(20), files=host(ram=64 * GIB, limit=6 * GIB)),
                      "MEM-01")
    assert isinstance(finding, Finding)
    assert finding.evidence[0].values["limit"] == "the cgroup memory limit"


def test_worst_case_on_max_connections_alone_is_a_notice():
    variables = {"innodb_buffer_pool_size": 8 * GIB, "sort_buffer_size": 32 * MIB, "max_connections": 1000}
    finding = outcome(make_bundle(variables, connections(10), files=host(ram=16 * GIB)), "MEM-01")
    assert isinstance(finding, Finding) and finding.severity == "notice"
    assert "max_connections=1000" in finding.summary and "measured peak" in finding.summary


def test_worst_case_passes_on_stock_settings():
    assert status(make_bundle({}, connections(30), files=host()), "MEM-01") == "passed"


def test_worst_case_does_not_count_the_query_cache_while_it_is_off():
    variables = {"innodb_buffer_pool_size": 8 * GIB, "query_cache_size": 7 * GIB,
                 "query_cache_type": "OFF", "max_connections": 10}
    assert status(make_bundle(variables, connections(5), files=host(ram=16 * GIB)), "MEM-01") == "passed"
    variables["query_cache_type"] = "ON"
    assert status(make_bundle(variables, connections(5), files=host(ram=16 * GIB)), "MEM-01") == "finding"


def test_worst_case_is_insufficient_without_ram_or_limit():
    assert status(make_bundle({}, connections(30)), "MEM-01") == "insufficient"


# -- MEM-02: RSS near the limit -----------------------------------------------------------

def test_rss_near_the_cgroup_limit_is_an_error():
    finding = outcome(make_bundle({}, files=host(ram=64 * GIB, limit=8 * GIB, rss=7.8 * GIB)), "MEM-02")
    assert isinstance(finding, Finding) and finding.severity == "error"
    assert "cgroup memory limit" in finding.summary


def test_rss_near_ram_is_a_warning():
    finding = outcome(make_bundle({}, files=host(ram=16 * GIB, rss=14 * GIB)), "MEM-02")
    assert isinstance(finding, Finding) and finding.severity == "warning"


def test_rss_well_under_the_limit_passes():
    assert status(make_bundle({}, files=host(ram=16 * GIB, rss=6 * GIB)), "MEM-02") == "passed"


def test_rss_rule_is_insufficient_on_a_zero_or_tiny_limit():
    assert status(make_bundle({}, files=host(ram=0, rss=GIB)), "MEM-02") == "insufficient"
    assert status(make_bundle({}, files=host(ram=1000, rss=500)), "MEM-02") == "insufficient"


# -- MEM-03: RSS growth -------------------------------------------------------------------

def test_rss_growth_fires_when_memory_grows_towards_the_limit():
    rows = rss_rows([5.0 * GIB + i * 100 * MIB for i in range(6)])
    bundle = make_bundle({}, counters({"Innodb_buffer_pool_pages_data": 1000}, {}),
                         files=host(limit=8 * GIB, rss=5.5 * GIB), jsonl={"os/processes.jsonl": rows})
    finding = outcome(bundle, "MEM-03")
    assert isinstance(finding, Finding) and finding.window
    assert finding.evidence[0].values["hours_to_limit"] < 1
    assert finding.severity == "error" and len(finding.evidence[0].samples) == 6


def test_rss_growth_explained_by_the_buffer_pool_filling_passes():
    rows = rss_rows([5.0 * GIB + i * 100 * MIB for i in range(6)])
    pages = counters({"Innodb_buffer_pool_pages_data": 1000}, {"Innodb_buffer_pool_pages_data": 700})
    bundle = make_bundle({}, pages, files=host(limit=8 * GIB), jsonl={"os/processes.jsonl": rows})
    assert status(bundle, "MEM-03") == "passed"


def test_flat_rss_passes_and_other_processes_are_ignored():
    rows = rss_rows([5 * GIB] * 6) + rss_rows([GIB + i * GIB for i in range(6)], pid=77)
    bundle = make_bundle({}, files=host(limit=8 * GIB), jsonl={"os/processes.jsonl": rows})
    assert status(bundle, "MEM-03") == "passed"


def test_slow_growth_far_from_the_limit_passes():
    rows = rss_rows([2 * GIB + i * 10 * MIB for i in range(6)])
    bundle = make_bundle({}, files=host(ram=256 * GIB), jsonl={"os/processes.jsonl": rows})
    assert status(bundle, "MEM-03") == "passed"


def test_rss_growth_needs_three_samples():
    rows = rss_rows([5 * GIB, 6 * GIB])
    bundle = make_bundle({}, files=host(limit=8 * GIB), jsonl={"os/processes.jsonl": rows})
    assert status(bundle, "MEM-03") == "insufficient"


# -- MEM-04: pool over the cgroup limit ---------------------------------------------------

def test_pool_over_the_cgroup_limit_is_critical_with_a_measured_target():
    bundle = make_bundle({"innodb_buffer_pool_size": 12 * GIB},
                         files=host(ram=64 * GIB, limit=8 * GIB, rss=5 * GIB))
    finding = outcome(bundle, "MEM-04")
    assert isinstance(finding, Finding) and finding.severity == "critical"
    assert "at most" in finding.advice


def test_pool_close_to_the_cgroup_limit_is_an_error():
    bundle = make_bundle({"innodb_buffer_pool_size": 7 * GIB}, files=host(limit=8 * GIB, rss=7 * GIB))
    assert outcome(bundle, "MEM-04").severity == "error"


def test_pool_well_under_the_cgroup_limit_passes_and_no_limit_is_not_applicable():
    assert status(make_bundle({"innodb_buffer_pool_size": 4 * GIB}, files=host(limit=8 * GIB)),
                  "MEM-04") == "passed"
    assert status(make_bundle({"innodb_buffer_pool_size": 4 * GIB}, files=host()), "MEM-04") == \
        "not_applicable"
    unlimited = host(limit=float(1 << 63))
    assert status(make_bundle({"innodb_buffer_pool_size": 4 * GIB}, files=unlimited), "MEM-04") == \
        "not_applicable"


def test_rss_near_a_cgroup_limit_far_above_the_pool_is_found_by_the_rss_rule():
    files = host(ram=64 * GIB, limit=16 * GIB, rss=15 * GIB)
    bundle = make_bundle({"innodb_buffer_pool_size": 8 * GIB}, files=files)
    assert status(bundle, "MEM-04") == "passed"
    finding = outcome(bundle, "MEM-02")
    assert isinstance(finding, Finding) and finding.evidence[0].values["limit"] == "the cgroup memory limit"


def test_the_host_collectors_cgroup_limit_counts_when_mysqlds_own_says_no_limit():
    files = host(ram=64 * GIB, limit=8 * GIB)
    files["os/mysqld_process.json"]["cgroup"] = {"memory": {"limit_bytes": 9223372036854771712}}
    bundle = make_bundle({"innodb_buffer_pool_size": 12 * GIB}, files=files)
    assert outcome(bundle, "MEM-04").severity == "critical"


# -- MEM-05: available memory -------------------------------------------------------------

def test_low_available_memory_at_both_ends_fires():
    files = host(ram=32 * GIB, available_start=GIB * 0.6, available_end=GIB * 0.5)
    finding = outcome(make_bundle({}, files=files), "MEM-05")
    assert isinstance(finding, Finding) and finding.window and finding.severity == "error"


def test_low_available_memory_at_one_end_only_passes():
    files = host(ram=32 * GIB, available_start=GIB * 0.5, available_end=8 * GIB)
    assert status(make_bundle({}, files=files), "MEM-05") == "passed"


def test_available_memory_needs_the_window_end():
    files = host()
    files["os/meminfo.json"]["end"] = None
    assert status(make_bundle({}, files=files), "MEM-05") == "insufficient"


def test_available_memory_on_a_zero_memtotal_is_insufficient():
    files = host(ram=0, available_start=0, available_end=0)
    assert status(make_bundle({}, files=files), "MEM-05") == "insufficient"


# -- MEM-07: swapped mysqld ---------------------------------------------------------------

def test_swapped_mysqld_fires():
    finding = outcome(make_bundle({}, files=host(rss=6 * GIB, swap=GIB)), "MEM-07")
    assert isinstance(finding, Finding) and "in swap" in finding.summary


def test_a_few_swapped_pages_pass():
    assert status(make_bundle({}, files=host(rss=6 * GIB, swap=8 * MIB)), "MEM-07") == "passed"


def test_swap_share_of_nothing_is_insufficient():
    assert status(make_bundle({}, files=host(rss=0, swap=0)), "MEM-07") == "insufficient"


# -- malformed members ---------------------------------------------------------------------



@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_malformed_members_never_make_a_memory_rule_fail(value):
    variables = {name: value for name in ("innodb_buffer_pool_size", "key_buffer_size", "max_connections",
                                          "sort_buffer_size", "query_cache_type", "innodb_page_size")}
    files = {
        "os/meminfo.json": {"meminfo": {"MemTotal": value, "MemAvailable": value}, "end": value,
                            "summary": value},
        "os/host.json": {"cgroup": {"memory": value}},
        "os/mysqld_process.json": {"pid": value, "memory": value,
                                   "cgroup": {"memory": {"limit_bytes": value}}},
        "os/mysqld_memory_map.json": {"resident": value},
    }
    jsonl = {
        "os/processes.jsonl": [{"pid": value, "name": "mariadbd", "rss_bytes": value}] * 4,
        "os/vmstat.jsonl": [{"window_seconds": value, "rates": value}] * 4,
        "mysql/global_status.jsonl": [{"ts": stamp(i), "status": {"Max_used_connections": value,
                                                                   "Innodb_buffer_pool_pages_data": value,
                                                                   "Uptime": value}} for i in range(4)],
    }
    bundle = make_bundle(variables, files=files, jsonl=jsonl)
    assert rule_errors(bundle, MEM_RULES) == []


def test_members_of_the_wrong_type_never_make_a_memory_rule_fail():
    paths = ("os/meminfo.json", "os/host.json", "os/mysqld_process.json", "os/mysqld_memory_map.json")
    members = {path: b'["a list", 1]' for path in paths}
    members.update({"os/processes.jsonl": b'[1]\n"x"\n{"rss_bytes": "9"}\n', "os/vmstat.jsonl": b"{\n",
                    "mysql/global_variables.json": b'{"innodb_buffer_pool_size": {"x": 1}}',
                    "mysql/global_status.jsonl": b'{"ts": 5, "status": []}\n'})
    bundle = Bundle(members, {"mysql": {"flavor": "mariadb", "version": "10.11.6"}})
    report = engine.evaluate(bundle, MEM_RULES)
    assert not [o for o in report.outcomes if o.status == "error"], report.outcomes
    assert not report.findings



# -- report/facts.py: the memory and server facts every rule module reads --------------------

@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_the_memory_facts_are_none_on_hostile_members(value):
    files = {"os/meminfo.json": {"meminfo": {"MemTotal": value}, "summary": value},
             "os/host.json": {"cgroup": {"memory": {"limit_bytes": value}}},
             "os/mysqld_process.json": {"memory": {"VmRSS": value}, "cgroup": value},
             "os/mysqld_memory_map.json": {"resident": {"rss_bytes": value}}}
    bundle = make_bundle({}, files=files)
    for fact in (facts.ram_bytes, facts.cgroup_limit_bytes, facts.mysqld_rss_bytes):
        found = fact(bundle)
        assert found is None or (isinstance(found, float) and 0 < found < float("inf")), (fact, found)
    limit = facts.cgroup_limit_bytes(bundle)
    assert limit is None or limit < 1 << 60  # cgroup v1's "no limit" is no limit
    with pytest.raises(Insufficient):
        facts.memory_limit(make_bundle({}, files={"os/meminfo.json": value}))


def test_the_rss_falls_back_to_the_memory_map_and_the_tighter_limit_wins():
    files = host(ram=16 * GIB, limit=4 * GIB)
    files["os/mysqld_process.json"]["memory"] = {"VmRSS": "x"}
    files["os/mysqld_memory_map.json"] = {"resident": {"rss_bytes": 3 * GIB}}
    bundle = make_bundle({}, files=files)
    assert facts.mysqld_rss_bytes(bundle) == 3 * GIB
    assert facts.memory_limit(bundle) == (4 * GIB, "the cgroup memory limit")
    assert facts.memory_limit(make_bundle({}, files=host(ram=2 * GIB, limit=4 * GIB))) == \
        (2 * GIB, "the host's RAM")


def test_monitor_number_reads_a_line_start_and_nothing_else():
    text = {"mysql/innodb_status.txt": "x History list length 5\nHistory list length 12\n",
            "mysql/innodb_status_end.txt": "History list length 123456789012345678901234\n"}
    bundle = make_bundle({}, text=text)
    assert facts.monitor_number(bundle, facts.MONITOR_START, "History list length") == 12
    assert facts.monitor_number(bundle, facts.MONITOR_END, "History list length") is None
    assert facts.monitor_number(make_bundle({}), facts.MONITOR_START, "History list length") is None


def test_size_setting_and_known_rates():
    assert (facts.size(None), facts.size(512), facts.size(1.5 * GIB), facts.size(3 << 50)) == \
        ("?", "512 B", "1.5 GiB", "3072.0 TiB")
    bundle = make_bundle({"wait_timeout": "x" * 50}, counters({}, {"Sort_rows": 5}))
    assert facts.setting(bundle, "wait_timeout") == "x" * 40 and facts.setting(bundle, "nope") == "unknown"
    assert facts.known_rates(bundle.window, ("Sort_rows", "Sort_scan")) == {"Sort_rows_per_s": 5.0}
    one = make_bundle({}, counters({}, {"Sort_rows": 5}, samples=1))
    assert facts.known_rates(one.window, ("Sort_rows",)) == {}
