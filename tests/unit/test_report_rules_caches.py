"""The cache rules (TBL-*, QC-*): table and definition caches, open files, and the query cache,
which is advised off and never on; the ratio guards; malformed members never make a rule fail."""

from __future__ import annotations

import pytest

import report.catalog  # noqa: F401 - declares the rules
from report import registry
from report.finding import Finding
from tests.reportkit import counters, make_bundle, outcome, rule_errors, status, undocumented

QC_ON = {"query_cache_type": "ON", "query_cache_size": 64 << 20, "have_query_cache": "YES"}


MISSES = {"Table_open_cache_misses": 20, "Table_open_cache_hits": 60, "Opened_tables": 20}


def test_table_cache_misses_fire_and_say_the_cache_is_full():
    rows = counters({}, MISSES, gauges={"Open_tables": 400})
    finding = outcome(make_bundle({"table_open_cache": 400}, rows), "TBL-01")
    assert isinstance(finding, Finding) and finding.window
    assert "25% of table cache lookups miss, 20.0 tables opened per second" in finding.summary
    assert "(full)" in finding.summary


def test_table_cache_misses_pass_when_the_cache_serves_the_lookups():
    rows = counters({}, {"Table_open_cache_misses": 0.5, "Table_open_cache_hits": 500, "Opened_tables": 0.5})
    assert status(make_bundle({}, rows), "TBL-01") == "passed"


def test_table_cache_misses_fall_back_to_opened_tables_without_the_counters():
    finding = outcome(make_bundle({}, counters({}, {"Opened_tables": 5})), "TBL-01")
    assert isinstance(finding, Finding) and "miss" not in finding.summary
    assert status(make_bundle({}, counters({}, {"Opened_tables": 0.1})), "TBL-01") == "insufficient"


DEFINITIONS = {"Opened_table_definitions": 5}


def test_definition_cache_fires_when_full_and_churning():
    rows = counters({}, DEFINITIONS, gauges={"Open_table_definitions": 400})
    finding = outcome(make_bundle({"table_definition_cache": 400}, rows), "TBL-02")
    assert isinstance(finding, Finding) and "5.0 table definitions read per second" in finding.summary


def test_definition_cache_passes_when_it_has_room():
    rows = counters({}, DEFINITIONS, gauges={"Open_table_definitions": 100})
    assert status(make_bundle({"table_definition_cache": 400}, rows), "TBL-02") == "passed"


def test_definition_cache_passes_when_definitions_are_not_reread():
    rows = counters({}, {"Opened_table_definitions": 0.01}, gauges={"Open_table_definitions": 400})
    assert status(make_bundle({"table_definition_cache": 400}, rows), "TBL-02") == "passed"


def test_definition_cache_is_insufficient_without_a_usable_limit():
    rows = counters({}, DEFINITIONS, gauges={"Open_table_definitions": 400})
    assert status(make_bundle({"table_definition_cache": 0}, rows), "TBL-02") == "insufficient"


def test_open_files_limit_low_fires():
    bundle = make_bundle({"open_files_limit": 1024, "table_open_cache": 4000, "max_connections": 500})
    finding = outcome(bundle, "TBL-03")
    assert isinstance(finding, Finding) and "8510" in finding.summary and finding.severity == "warning"


def test_open_files_limit_somewhat_low_is_a_notice():
    bundle = make_bundle({"open_files_limit": 6000, "table_open_cache": 4000, "max_connections": 500})
    assert outcome(bundle, "TBL-03").severity == "notice"


def test_open_files_limit_stock_passes():
    assert status(make_bundle({}), "TBL-03") == "passed"


def test_open_files_near_limit_fires_when_persistent():
    rows = counters({}, {}, gauges={"Open_files": 4800})
    finding = outcome(make_bundle({"open_files_limit": 5000}, rows), "TBL-04")
    assert isinstance(finding, Finding) and finding.severity == "error"


def test_open_files_near_limit_passes_on_one_high_sample():
    rows = counters({}, {}, gauges={"Open_files": 100})
    rows[1]["Open_files"] = 4900
    assert status(make_bundle({"open_files_limit": 5000}, rows), "TBL-04") == "passed"


def test_open_files_near_limit_needs_three_samples():
    rows = counters({}, {}, samples=2, gauges={"Open_files": 4800})
    assert status(make_bundle({"open_files_limit": 5000}, rows), "TBL-04") == "insufficient"


def test_query_cache_on_fires_and_advises_it_off():
    finding = outcome(make_bundle(QC_ON, counters({}, {"Qcache_hits": 5, "Com_select": 50})), "QC-01")
    assert isinstance(finding, Finding)
    assert "Turn the query cache off" in finding.advice and "query_cache_size=0" in finding.advice
    assert finding.evidence[0].values["Qcache_hits_per_s"] == 5


@pytest.mark.parametrize("settings", [
    {"query_cache_type": "OFF", "query_cache_size": 1 << 20},  # MariaDB's stock settings
    {"query_cache_type": "ON", "query_cache_size": 0},
    {"query_cache_type": "ON", "query_cache_size": 1 << 20, "have_query_cache": "NO"},
])
def test_query_cache_off_passes(settings):
    assert status(make_bundle(settings), "QC-01") == "passed"


def test_query_cache_rules_do_not_apply_to_mysql_8():
    bundle = make_bundle(QC_ON, counters({}, {"Qcache_lowmem_prunes": 5}), flavor="mysql", version="8.0.36")
    for rule_id in ("QC-01", "QC-02", "QC-03"):
        assert status(bundle, rule_id) == "not_applicable"
    assert status(make_bundle(QC_ON, flavor="mysql", version="5.7.44"), "QC-01") == "finding"


def test_query_cache_prunes_fire_and_advise_off_not_larger():
    finding = outcome(make_bundle(QC_ON, counters({}, {"Qcache_lowmem_prunes": 5})), "QC-02")
    assert isinstance(finding, Finding) and "5.0 query cache evictions per second" in finding.summary
    assert "Turn the query cache off" in finding.advice and "do not make it larger" in finding.advice


def test_query_cache_prunes_pass_when_rare_and_do_not_apply_when_off():
    assert status(make_bundle(QC_ON, counters({}, {"Qcache_lowmem_prunes": 0.01})), "QC-02") == "passed"
    assert status(make_bundle({}, counters({}, {"Qcache_lowmem_prunes": 5})), "QC-02") == "not_applicable"


def test_query_cache_fragmentation_fires():
    rows = counters({"Qcache_free_blocks": 9000, "Qcache_total_blocks": 20000}, {})
    finding = outcome(make_bundle(QC_ON, rows), "QC-03")
    assert isinstance(finding, Finding) and "45%" in finding.summary
    assert "off" in finding.advice and "FLUSH QUERY CACHE" in finding.advice


def test_query_cache_fragmentation_passes_when_compact():
    rows = counters({"Qcache_free_blocks": 50, "Qcache_total_blocks": 20000}, {})
    assert status(make_bundle(QC_ON, rows), "QC-03") == "passed"


@pytest.mark.parametrize("free,total", [(0, 0), (5, 20), (30, 20)])
def test_query_cache_fragmentation_is_insufficient_on_a_tiny_or_inconsistent_cache(free, total):
    rows = counters({"Qcache_free_blocks": free, "Qcache_total_blocks": total}, {})
    assert status(make_bundle(QC_ON, rows), "QC-03") == "insufficient"


def test_no_cache_rule_advises_turning_the_query_cache_on():
    for declared in CACHE_RULES:
        text = " ".join((declared.advice, declared.risk, declared.verify)).lower()
        text = text.replace("never turn it on", "")
        assert "turn it on" not in text and "query_cache_type=on" not in text, declared.id
        assert "raise query_cache_size" not in text and "increase query_cache_size" not in text


# -- the guards of the ratio rules ------------------------------------------------------------

RATIO_RULES = {
    "TBL-01": (MISSES, {"Open_tables": 400}, {"table_open_cache": 400}),
    "TBL-02": (DEFINITIONS, {"Open_table_definitions": 400}, {"table_definition_cache": 400}),
}


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_fire_on_their_trigger(rule_id):
    rates, gauges, variables = RATIO_RULES[rule_id]
    assert status(make_bundle(variables, counters({}, rates, gauges=gauges)), rule_id) == "finding"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_after_a_restart_in_the_window(rule_id):
    rates, gauges, variables = RATIO_RULES[rule_id]
    rows = counters({}, rates, samples=2, gauges=gauges)
    rows[1] = {name: 1 for name in rows[1]}
    rows[1]["Uptime"] = 5
    assert status(make_bundle(variables, rows), rule_id) == "insufficient"


def test_table_cache_misses_are_insufficient_with_a_zero_denominator():
    rows = counters({}, {name: 0 for name in MISSES})
    assert status(make_bundle({}, rows), "TBL-01") == "insufficient"


def test_table_cache_misses_are_insufficient_on_a_tiny_volume():
    rows = counters({}, {name: rate / 100 for name, rate in MISSES.items()}, gauges={"Open_tables": 400})
    assert status(make_bundle({"table_open_cache": 400}, rows), "TBL-01") == "insufficient"


@pytest.mark.parametrize("rule_id", ["TBL-01", "TBL-02", "QC-02"])
def test_window_rules_are_insufficient_with_one_sample(rule_id):
    rows = counters({}, {**MISSES, **DEFINITIONS, "Qcache_lowmem_prunes": 5}, samples=1)
    assert status(make_bundle(QC_ON, rows), rule_id) == "insufficient"


# -- hostile members --------------------------------------------------------------------------

CACHE_RULES = [r for r in registry.all_rules() if r.group == "caches"]
HOSTILE = ["NaN", "inf", "-1e999", "1e308", "9" * 60, "", None, [1], {"a": 1}, True, "2000 tables", "-5"]


def _hostile_bundles():
    for value in HOSTILE:
        rows = counters({}, {**MISSES, **DEFINITIONS, "Qcache_lowmem_prunes": 5}, samples=4)
        for row in rows:
            for name in ("Table_open_cache_hits", "Open_tables", "Open_table_definitions", "Open_files",
                         "Qcache_free_blocks", "Qcache_total_blocks", "Uptime"):
                row[name] = value
        variables = {name: value for name in ("table_open_cache", "table_definition_cache",
                                              "open_files_limit", "max_connections", "query_cache_size",
                                              "have_query_cache")}
        yield make_bundle({**variables, "query_cache_type": "ON"}, rows)
        yield make_bundle({**QC_ON, "query_cache_type": value}, rows)
    yield make_bundle({}, files={"mysql/global_variables.json": "query_cache_type=ON"},
                      jsonl={"mysql/global_status.jsonl": [{"status": [1]}, {"ts": None, "status": {}}]})
    yield make_bundle({}, text={"mysql/global_status.jsonl": "\x00\n{}\n",
                                "mysql/global_variables.json": "["})


@pytest.mark.parametrize("bundle", list(_hostile_bundles()))
def test_malformed_members_never_make_a_cache_rule_fail(bundle):
    assert rule_errors(bundle, CACHE_RULES) == []
    assert len(CACHE_RULES) >= 5


def test_the_cache_rules_are_documented():
    assert undocumented(CACHE_RULES) == []
    assert sum(r.window for r in CACHE_RULES) >= 3
