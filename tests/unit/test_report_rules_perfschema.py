"""The performance_schema rules (PFS-*) and window_digests: the window is end minus start per
digest, a digest only in the end reading is new, and a restart or a tiny window is insufficient."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import report.catalog  # noqa: F401 - declares every rule
from report import registry
from report.digests import window_digests
from report.engine import evaluate
from tests.reportkit import counters, make_bundle

PS = "mysql/performance_schema/"
STATUS = counters({"Questions": 0}, {"Questions": 10}, samples=3)


def digest(name: str, calls: float, seconds: float, **extra: Any) -> Dict[str, Any]:
    row = {"digest": name, "digest_text": f"SELECT * FROM `t_{name}` WHERE `a` = ?", "schema_name": "shop",
           "calls": calls, "total_seconds": seconds, "rows_examined": 0, "rows_sent": calls,
           "tmp_disk_tables": 0, "full_joins": 0, "no_index_used": 0,
           "first_seen_utc": "2026-12-01T00:00:00Z"}
    row.update(extra)
    return row


def bundle(start: List[Dict[str, Any]], end: List[Dict[str, Any]], status: Any = STATUS, **files: Any) -> Any:
    members = {PS + "statement_digests.json": start, PS + "statement_digests_end.json": end}
    members.update({PS + k: v for k, v in files.items()})
    return make_bundle(status=status, files=members, variables={"performance_schema": "ON"})


def run(rule_id: str, b: Any) -> Any:
    report = evaluate(b, [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def status(rule_id: str, b: Any) -> str:
    result = run(rule_id, b)
    return "finding" if hasattr(result, "summary") else result.status


def test_window_digests_are_end_minus_start_and_new_ones_are_marked():
    start = [digest("a", 100, 10.0, rows_examined=1000)]
    end = [digest("a", 150, 12.5, rows_examined=1600),
           digest("b", 5, 1.0, first_seen_utc="2026-12-02T10:00:05Z"), digest("c", 7, 0.7)]
    found = {d["digest"]: d for d in window_digests(bundle(start, end))}
    assert found["a"]["calls"] == 50 and found["a"]["total_seconds"] == pytest.approx(2.5)
    assert found["a"]["rows_examined"] == 600 and found["a"]["new"] is False
    assert found["b"]["new"] is True and found["b"]["upper_bound"] is False
    assert found["c"]["upper_bound"] is True  # first seen before the window: below the start's top N
    assert [d["digest"] for d in window_digests(bundle(start, end))] == ["a", "b", "c"]


def test_window_digests_cut_the_text_and_treat_a_truncated_table_as_a_reset():
    end = [digest("a", 3, 1.0, digest_text="SELECT " + "x" * 2000)]
    got = window_digests(bundle([digest("a", 100, 50.0)], end))[0]
    assert len(got["digest_text"]) == 500 and got["reset"] is True and got["calls"] == 3


def test_top_digests_lists_five_with_shares():
    end = [digest(str(i), 100, float(10 - i)) for i in range(8)]
    finding = run("PFS-01", bundle([], end))
    assert len(finding.evidence[0].digests) == 5
    assert finding.evidence[0].digests[0]["share"] == pytest.approx(10 / 52, abs=0.001)


def test_top_digests_guards():
    tiny = [digest("a", 100, 0.01)]
    assert status("PFS-01", bundle([], tiny)) == "insufficient"
    few = [digest("a", 2, 5.0)]
    assert status("PFS-01", bundle([], few)) == "insufficient"
    restarted = [{"Uptime": 1000}, {"Uptime": 5}, {"Uptime": 15}]
    assert status("PFS-01", bundle([], [digest("a", 100, 5.0)], status=restarted)) == "insufficient"
    one = make_bundle(status=STATUS[:1], files={PS + "statement_digests.json": [digest("a", 1, 1.0)]})
    assert status("PFS-01", one) == "insufficient"
    idle = [digest("a", 100, 5.0)]
    assert status("PFS-01", bundle(idle, idle)) == "insufficient"  # nothing ran in the window


def test_full_scans_fire_on_growth_only():
    start = [digest("a", 100, 1.0, rows_examined=10 ** 7, no_index_used=100)]
    grew = [digest("a", 200, 2.0, rows_examined=2 * 10 ** 7, no_index_used=200)]
    finding = run("PFS-02", bundle(start, grew))
    assert finding.evidence[0].digests[0]["rows_examined"] == 10 ** 7
    quiet = [digest("a", 200, 2.0, rows_examined=10 ** 7 + 100, no_index_used=200)]
    assert status("PFS-02", bundle(start, quiet)) == "passed"
    show = [dict(grew[0], digest_text="SELECT * FROM information_schema . TABLES")]
    # only catalog reads (mydiag's own look like that): nothing of the application to judge
    catalog_only = bundle([dict(start[0], digest_text=show[0]["digest_text"])], show)
    assert status("PFS-02", catalog_only) == "insufficient"


def test_tmp_disk_tables_fire_on_growth_only():
    start = [digest("a", 100, 1.0, tmp_disk_tables=500)]
    assert status("PFS-03", bundle(start, [digest("a", 150, 1.5, tmp_disk_tables=560)])) == "finding"
    assert status("PFS-03", bundle(start, [digest("a", 150, 1.5, tmp_disk_tables=503)])) == "passed"


def test_performance_schema_off():
    assert status("PFS-04", make_bundle(variables={"performance_schema": "OFF"})) == "finding"
    assert status("PFS-04", make_bundle(variables={"performance_schema": "ON"})) == "passed"


def test_statement_instrumentation():
    setup = {"consumers": [{"name": "statements_digest", "enabled": "NO"},
                           {"name": "global_instrumentation", "enabled": "YES"}],
             "instruments_by_class": [{"class": "statement", "instruments": 200, "enabled": 200,
                                       "timed": 200}]}
    assert status("PFS-05", make_bundle(files={PS + "setup.json": setup})) == "finding"
    setup["consumers"][0]["enabled"] = "YES"
    assert status("PFS-05", make_bundle(files={PS + "setup.json": setup})) == "passed"
    setup["instruments_by_class"][0]["timed"] = 10
    assert status("PFS-05", make_bundle(files={PS + "setup.json": setup})) == "finding"


def waits(seconds: float) -> List[Dict[str, Any]]:
    return [{"event": "wait/io/file/innodb/innodb_log_file", "count": 10, "total_seconds": seconds},
            {"event": "idle", "count": 1, "total_seconds": 1000.0}]


def test_top_waits_and_their_guards():
    b = bundle([], [], **{"waits.json": waits(1.0), "waits_end.json": waits(4.0)})
    finding = run("PFS-06", b)
    assert finding.evidence[0].values["events"][0]["share"] == 1.0  # idle left out
    tiny = bundle([], [], **{"waits.json": waits(1.0), "waits_end.json": waits(1.1)})
    assert status("PFS-06", tiny) == "insufficient"


def events(calls: float, errors: float) -> List[Dict[str, Any]]:
    return [{"event": "statement/sql/update", "calls": calls, "errors": errors, "total_seconds": 1.0}]


def test_statement_errors_and_their_guards():
    files = {"statements_by_event.json": events(1000, 10), "statements_by_event_end.json": events(2000, 110)}
    assert status("PFS-07", bundle([], [], **files)) == "finding"
    files["statements_by_event_end.json"] = events(2000, 12)
    assert status("PFS-07", bundle([], [], **files)) == "passed"
    files["statements_by_event_end.json"] = events(1050, 40)  # 50 statements: too few to judge
    assert status("PFS-07", bundle([], [], **files)) == "insufficient"
    files["statements_by_event_end.json"] = events(1000, 10)  # zero statements in the window
    assert status("PFS-07", bundle([], [], **files)) == "insufficient"


HOSTILE = ["x", 5, None, {"a": 1}, ["x", 1, None],
           [{"digest": ["x"], "calls": "NaN", "total_seconds": "1e999", "digest_text": 12,
             "first_seen_utc": 7, "event": {}}],
           [{"calls": 10 ** 30, "total_seconds": -5, "errors": "many", "no_index_used": "x"}],
           {"consumers": "x", "instruments_by_class": [1, {"class": "statement", "instruments": "NaN"}]}]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_perfschema_rules_never_error_on_hostile_members(hostile):
    names = ["statement_digests", "statement_digests_end", "waits", "waits_end", "statements_by_event",
             "statements_by_event_end", "setup", "memory"]
    b = make_bundle(status=STATUS, variables={"performance_schema": "maybe"},
                    files={**{PS + n + ".json": hostile for n in names}, "os/mysqld_process.json": hostile})
    rules = [r for r in registry.all_rules() if r.group == "perfschema"]
    assert [o for o in evaluate(b, rules).outcomes if o.status == "error"] == []
    assert len(rules) >= 4
