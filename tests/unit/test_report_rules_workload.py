"""The workload rules (TMP-*): temporary tables, sorts and joins, each with the digests that
grew during the window; the ratio guards; join_buffer_size is never the advice for a full
join; malformed members never make a rule fail."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import report.catalog  # noqa: F401 - declares the rules
from report import registry
from report.digests import DIGESTS as DIGESTS_START
from report.digests import DIGESTS_END, top_digests, window_digests
from report.finding import Finding, Insufficient
from tests.reportkit import counters, make_bundle, outcome, rule_errors, status, undocumented

MIB = 1 << 20


def digest(name: str, text: str, first_seen: str = "2026-12-01T08:00:00Z", **counts: float) -> Dict[str, Any]:
    row = {"schema_name": "shop", "digest": name, "digest_text": text, "calls": 0, "total_seconds": 0.0,
           "lock_seconds": 0.0, "rows_sent": 0, "rows_examined": 0, "tmp_disk_tables": 0, "full_joins": 0,
           "no_index_used": 0, "first_seen_utc": first_seen}
    row.update(counts)
    return row


def digest_files() -> Dict[str, List[Dict[str, Any]]]:
    """A report query that spills to disk, a join without index, a scan, one quiet digest,
    mydiag's own catalog read, one new during the window, one only outside the start's top N,
    and one whose counters went down (the digest table was truncated)."""
    start = [
        digest("aaa1", "SELECT `status` , COUNT ( * ) FROM `orders` GROUP BY `note`", calls=100,
               total_seconds=50, tmp_disk_tables=100, no_index_used=100, rows_examined=1e6),
        digest("bbb2", "SELECT * FROM `orders` `o` JOIN `customers` `c` ON `c` . `email` = `o` . `email`",
               calls=10, total_seconds=20, full_joins=10, no_index_used=10, rows_examined=5e6),
        digest("ccc3", "SELECT * FROM `items` WHERE `sku` = ?", calls=1000, total_seconds=5,
               no_index_used=1000, rows_examined=9e6),
        digest("ddd4", "SELECT * FROM `orders` WHERE `id` = ?", calls=5000, total_seconds=1),
        digest("eee5", "SELECT * FROM `information_schema` . `TABLES`", calls=3, tmp_disk_tables=3),
        digest("ttt8", "DELETE FROM `sessions` WHERE `ts` < ?", calls=500, total_seconds=9,
               tmp_disk_tables=40),
    ]
    end = [
        digest("aaa1", start[0]["digest_text"], calls=160, total_seconds=80, tmp_disk_tables=160,
               no_index_used=160, rows_examined=1.6e6),
        digest("bbb2", start[1]["digest_text"], calls=40, total_seconds=90, full_joins=40, no_index_used=40,
               rows_examined=2e7),
        digest("ccc3", start[2]["digest_text"], calls=3000, total_seconds=15, no_index_used=3000,
               rows_examined=2.7e7),
        digest("ddd4", start[3]["digest_text"], calls=9000, total_seconds=2),
        digest("eee5", start[4]["digest_text"], calls=6, tmp_disk_tables=73),
        digest("fff6", "SELECT DISTINCT `tag` FROM `posts`", first_seen="2026-12-02T10:00:20Z", calls=7,
               total_seconds=3, tmp_disk_tables=7),
        digest("ggg7", "SELECT `x` FROM `old` ORDER BY `y`", calls=900, total_seconds=400,
               tmp_disk_tables=900),
        digest("ttt8", start[5]["digest_text"], calls=2, total_seconds=0.1, tmp_disk_tables=1),
    ]
    return {DIGESTS_START: start, DIGESTS_END: end}


def with_digests(variables=None, rows=(), **kwargs):
    return make_bundle(variables or {}, rows, files=digest_files(), **kwargs)


# -- window_digests: the window's part of each digest ---------------------------------------

def test_window_digests_are_end_minus_start_per_digest():
    found = {d["digest"]: d for d in window_digests(with_digests(rows=counters({}, {"Questions": 1})))}
    assert found["aaa1"]["tmp_disk_tables"] == 60 and found["aaa1"]["calls"] == 60
    assert found["bbb2"]["total_seconds"] == 70 and found["bbb2"]["full_joins"] == 30
    assert found["fff6"]["calls"] == 7  # first seen during the window: counted whole
    assert found["ggg7"]["upper_bound"]  # outside the start's top N: its counts are totals
    assert found["ttt8"]["reset"]  # counters went down: the table was truncated
    assert found["eee5"]["catalog"] and not found["aaa1"]["catalog"]
    ordered = window_digests(with_digests(rows=counters({}, {"Questions": 1})))
    own = [d["digest"] for d in ordered if not d["upper_bound"]]
    assert own[0] == "bbb2"  # most total_seconds during the window


def test_top_digests_rank_by_the_counter_and_leave_out_the_catalog_reads():
    rows = top_digests(with_digests(rows=counters({}, {"Questions": 1})), ("tmp_disk_tables",))
    assert [r["digest"] for r in rows] == ["aaa1", "fff6"]
    first = rows[0]
    assert first == {"digest": "aaa1", "schema_name": "shop", "digest_text": first["digest_text"],
                     "calls": 60, "total_seconds": 30.0, "counter": "tmp_disk_tables", "tmp_disk_tables": 60}
    assert "GROUP BY" in first["digest_text"]


def test_window_digests_are_empty_without_both_readings():
    files = digest_files()
    del files[DIGESTS_END]
    bundle = make_bundle({}, counters({}, {}), files=files)
    with pytest.raises(Insufficient, match="end reading"):
        window_digests(bundle)
    assert top_digests(bundle, ("tmp_disk_tables",)) == []


# -- each rule ------------------------------------------------------------------------------

TMP_DISK = {"Created_tmp_tables": 20, "Created_tmp_disk_tables": 8}


def test_tmp_disk_tables_fire_with_the_digests_behind_them():
    finding = outcome(with_digests(rows=counters({}, TMP_DISK)), "TMP-01")
    assert isinstance(finding, Finding) and finding.window
    # 400 of 1,000 went to disk; the 70 of mydiag's catalog read (eee5) are left out of both
    assert "6.6 temporary tables per second go to disk (35%" in finding.summary
    assert finding.evidence[0].values["catalog_tmp_disk_tables_left_out"] == 70
    digests = finding.evidence[1].digests
    assert [d["digest"] for d in digests] == ["aaa1", "fff6"]
    assert digests[0]["tmp_disk_tables"] == 60 and digests[0]["counter"] == "tmp_disk_tables"
    assert "aaa1" in finding.summary


def test_disk_temporary_tables_of_catalog_reads_alone_do_not_fire():
    # 75 of 250 went to disk (30%, 1.5/s), 70 of them from mydiag's catalog read (eee5): the
    # application's own are 5 of 180 (the well-configured server in the end-to-end test).
    rows = counters({}, {"Created_tmp_tables": 5, "Created_tmp_disk_tables": 1.5})
    assert status(with_digests(rows=rows), "TMP-01") == "passed"
    # without the digests nothing tells them apart: the status counters alone fire
    assert status(make_bundle({}, rows), "TMP-01") == "finding"


def test_tmp_disk_tables_fire_without_performance_schema_and_say_so():
    finding = outcome(make_bundle({}, counters({}, TMP_DISK)), "TMP-01")
    assert isinstance(finding, Finding)
    assert finding.evidence[1].digests == [] and "no statement digests" in finding.evidence[1].note


def test_tmp_disk_tables_pass_when_few_go_to_disk():
    rows = counters({}, {"Created_tmp_tables": 20, "Created_tmp_disk_tables": 1})
    assert status(with_digests(rows=rows), "TMP-01") == "passed"


def test_tmp_table_size_mismatch_fires_and_names_the_lower_limit():
    bundle = make_bundle({"tmp_table_size": 256 * MIB, "max_heap_table_size": 16 * MIB})
    finding = outcome(bundle, "TMP-02")
    assert isinstance(finding, Finding)
    assert "limited to 16 MiB (max_heap_table_size)" in finding.summary


def test_tmp_table_size_mismatch_passes_when_equal():
    assert status(make_bundle({"tmp_table_size": 64 * MIB, "max_heap_table_size": 64 * MIB}), "TMP-02") \
        == "passed"


def test_tmp_table_size_mismatch_does_not_apply_to_mysql_temptable():
    bundle = make_bundle({"tmp_table_size": 256 * MIB, "max_heap_table_size": 16 * MIB,
                          "internal_tmp_mem_storage_engine": "TempTable"}, flavor="mysql", version="8.0.36")
    assert status(bundle, "TMP-02") == "not_applicable"


def test_sort_merge_passes_fire_on_a_steady_rate():
    rows = counters({}, {"Sort_merge_passes": 3, "Sort_rows": 50_000, "Sort_scan": 10})
    finding = outcome(with_digests(rows=rows), "TMP-03")
    assert isinstance(finding, Finding) and "3.0 sort merge passes per second" in finding.summary
    assert finding.evidence[0].values["Sort_rows_per_s"] == 50_000
    assert finding.evidence[1].digests[0]["digest"] == "ccc3"  # most no_index_used growth


def test_sort_merge_passes_pass_when_rare():
    assert status(make_bundle({}, counters({}, {"Sort_merge_passes": 0.1})), "TMP-03") == "passed"


FULL_JOIN = {"Select_full_join": 0.5, "Com_select": 100}


def test_full_joins_fire_with_the_digests_and_advise_an_index_not_the_join_buffer():
    finding = outcome(with_digests(rows=counters({}, FULL_JOIN)), "TMP-04")
    assert isinstance(finding, Finding)
    assert finding.evidence[1].digests[0]["digest"] == "bbb2"
    assert finding.evidence[1].digests[0]["full_joins"] == 30
    assert "index on the join columns" in finding.advice
    assert "Do not raise join_buffer_size" in finding.advice


def test_full_joins_pass_when_rare():
    rows = counters({}, {"Select_full_join": 0.001, "Com_select": 100})
    assert status(with_digests(rows=rows), "TMP-04") == "passed"


SCANS = {"Handler_read_rnd_next": 50_000, "Handler_read_key": 1000, "Handler_read_next": 2000,
         "Select_scan": 20}


def test_full_scans_fire_when_most_rows_come_from_scans():
    finding = outcome(with_digests(rows=counters({}, SCANS)), "TMP-05")
    assert isinstance(finding, Finding) and finding.evidence[0].values["scan_share"] == 0.943
    assert finding.evidence[0].values["Select_scan_per_s"] == 20
    assert [d["digest"] for d in finding.evidence[1].digests][:2] == ["ccc3", "aaa1"]


def test_full_scans_pass_when_indexes_serve_the_reads():
    rows = counters({}, {"Handler_read_rnd_next": 50_000, "Handler_read_key": 100_000,
                         "Handler_read_next": 200_000})
    assert status(with_digests(rows=rows), "TMP-05") == "passed"


def test_range_check_fires_when_it_grows():
    finding = outcome(with_digests(rows=counters({}, {"Select_range_check": 0.2})), "TMP-06")
    assert isinstance(finding, Finding) and "10 range-checked joins" in finding.summary
    assert finding.evidence[1].digests[0]["digest"] == "bbb2"


def test_range_check_passes_when_flat():
    assert status(make_bundle({}, counters({"Select_range_check": 900}, {})), "TMP-06") == "passed"


def test_join_buffer_large_fires_and_advises_lowering_it():
    finding = outcome(make_bundle({"join_buffer_size": 64 * MIB, "max_connections": 500}), "TMP-07")
    assert isinstance(finding, Finding) and "31.2 GiB" in finding.summary
    assert "Lower join_buffer_size" in finding.advice


def test_join_buffer_default_passes():
    assert status(make_bundle({"join_buffer_size": 256 << 10}), "TMP-07") == "passed"
    assert status(make_bundle({"join_buffer_size": 4 * MIB}), "TMP-07") == "passed"


def test_no_workload_rule_advises_raising_join_buffer_size():
    for declared in WORKLOAD_RULES:
        text = (declared.advice + " " + declared.doc).lower().replace("do not raise join_buffer_size", "")
        assert "raise join_buffer_size" not in text and "increase join_buffer_size" not in text, declared.id


# -- the guards of the ratio rules ----------------------------------------------------------

RATIO_RULES = {"TMP-01": TMP_DISK, "TMP-04": FULL_JOIN, "TMP-05": SCANS}


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_fire_on_their_trigger(rule_id):
    assert status(with_digests(rows=counters({}, RATIO_RULES[rule_id])), rule_id) == "finding"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_after_a_restart_in_the_window(rule_id):
    rows = counters({}, RATIO_RULES[rule_id], samples=2)
    rows[1] = {name: 1 for name in rows[1]}
    rows[1]["Uptime"] = 5
    assert status(with_digests(rows=rows), rule_id) == "insufficient"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_with_a_zero_denominator(rule_id):
    rows = counters({}, {name: 0 for name in RATIO_RULES[rule_id]})
    assert status(with_digests(rows=rows), rule_id) == "insufficient"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES))
def test_ratio_rules_are_insufficient_on_a_tiny_volume(rule_id):
    rows = counters({}, {name: rate / 1000 for name, rate in RATIO_RULES[rule_id].items()})
    assert status(with_digests(rows=rows), rule_id) == "insufficient"


@pytest.mark.parametrize("rule_id", sorted(RATIO_RULES) + ["TMP-03", "TMP-06"])
def test_window_rules_are_insufficient_with_one_sample(rule_id):
    rows = counters({}, {**RATIO_RULES.get(rule_id, {}), "Sort_merge_passes": 9, "Select_range_check": 9},
                    samples=1)
    assert status(with_digests(rows=rows), rule_id) == "insufficient"


# -- hostile members ------------------------------------------------------------------------

WORKLOAD_RULES = [r for r in registry.all_rules() if r.group == "workload"]
HOSTILE = ["NaN", "inf", "-1e999", "1e308", "9" * 60, "", None, [1], {"a": 1}, True, "7 rows"]


def _hostile_bundles():
    for value in HOSTILE:
        rows = counters({}, {**TMP_DISK, **FULL_JOIN, **SCANS}, samples=4)
        for row in rows:
            for name in ("Created_tmp_tables", "Handler_read_key", "Com_select", "Sort_merge_passes",
                         "Uptime"):
                row[name] = value
        variables = {name: value for name in ("tmp_table_size", "max_heap_table_size", "join_buffer_size",
                                              "max_connections", "sort_buffer_size")}
        bad = {"schema_name": value, "digest": value, "digest_text": value, "calls": value,
               "total_seconds": value, "tmp_disk_tables": value, "first_seen_utc": value}
        files = {DIGESTS_START: [value, bad, {"digest": "x" * 500, "calls": "1e999"}],
                 DIGESTS_END: [bad, value, {"digest": "x" * 500, "calls": 10, "tmp_disk_tables": value},
                               {"digest": "y", "digest_text": ["a"], "tmp_disk_tables": 1e308,
                                "first_seen_utc": "2026-12-02T10:00:20Z"}]}
        yield make_bundle(variables, rows, files=files)
    yield make_bundle({}, counters({}, TMP_DISK), files={DIGESTS_START: {"rows": 1}, DIGESTS_END: "text",
                                                         "mysql/global_variables.json": [1, 2]})
    yield make_bundle({}, text={"mysql/global_status.jsonl": "[]\n{\"ts\": 5}\n", DIGESTS_START: "{",
                                DIGESTS_END: "null"})


@pytest.mark.parametrize("bundle", list(_hostile_bundles()))
def test_malformed_members_never_make_a_workload_rule_fail(bundle):
    assert rule_errors(bundle, WORKLOAD_RULES) == []
    assert len(WORKLOAD_RULES) >= 6


def test_the_workload_rules_are_documented():
    assert undocumented(WORKLOAD_RULES) == []
    assert sum(r.window for r in WORKLOAD_RULES) >= 5
