"""The schema rules (SCH-*): each fires on its trigger, passes a clean catalog, and never
errors on a hostile bundle."""

from __future__ import annotations

from typing import Any, Dict

import pytest

import report.catalog  # noqa: F401 - declares every rule
from report import registry
from report.engine import evaluate
from tests.reportkit import make_bundle

GIB = 1 << 30
FACTS, OVERVIEW, STORED = "mysql/table_facts.json", "mysql/schema_overview.json", "mysql/stored_objects.json"


def run(rule_id: str, files: Dict[str, Any]) -> Any:
    report = evaluate(make_bundle(files=files), [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def status(rule_id: str, files: Dict[str, Any]) -> str:
    result = run(rule_id, files)
    return "finding" if hasattr(result, "summary") else result.status


def test_tables_without_primary_key_names_at_most_twenty():
    tables = [{"schema": "shop", "table": f"t{i}", "engine": "InnoDB"} for i in range(30)]
    finding = run("SCH-01", {FACTS: {"without_primary_key": tables, "counts": {"without_primary_key": 30}}})
    assert finding.evidence[0].values["count"] == 30 and len(finding.evidence[0].values["tables"]) == 20
    assert "10 more" in finding.summary
    assert status("SCH-01", {FACTS: {"without_primary_key": []}}) == "passed"
    system = [{"schema": "mysql", "table": "t", "engine": "InnoDB"}]
    assert status("SCH-01", {FACTS: {"without_primary_key": system}}) == "passed"


def test_non_innodb_tables():
    facts = {
        "non_innodb": [
            {"schema": "shop", "table": "s", "engine": "MyISAM"},
            {"schema": "shop", "table": "m", "engine": "MEMORY"},
        ]
    }
    assert run("SCH-02", {FACTS: facts}).evidence[0].values["by_engine"] == {"MEMORY": 1, "MyISAM": 1}
    assert (
        status("SCH-02", {FACTS: {"non_innodb": [{"schema": "shop", "table": "q", "engine": "SEQUENCE"}]}})
        == "passed"
    )


def overview(*sizes: float, schema_total: float = 0) -> Dict[str, Any]:
    return {
        "top_tables": [
            {
                "schema_name": "app",
                "table_name": f"t{i}",
                "engine": "InnoDB",
                "allocated_bytes": s,
                "data_bytes": s,
                "index_bytes": 0,
            }
            for i, s in enumerate(sizes)
        ],
        "schemas": [{"schema": "app", "allocated_bytes": schema_total}],
    }


def test_huge_tables_by_size_and_by_share():
    assert status("SCH-03", {OVERVIEW: overview(150 * GIB, 10 * GIB)}) == "finding"
    assert status("SCH-03", {OVERVIEW: overview(8 * GIB, 1 * GIB)}) == "finding"  # 89% of the data
    assert status("SCH-03", {OVERVIEW: overview(2 * GIB, 2 * GIB, 2 * GIB)}) == "passed"
    assert status("SCH-03", {OVERVIEW: overview(0.5 * GIB, schema_total=0)}) == "passed"  # tiny: no share
    assert status("SCH-03", {OVERVIEW: overview(8 * GIB, schema_total=100 * GIB)}) == "passed"
    assert status("SCH-03", {OVERVIEW: {"top_tables": []}}) == "insufficient"


def test_unopenable_tables():
    facts = {
        "unopenable": [
            {
                "schema": "shop",
                "table": "o",
                "engine": "InnoDB",
                "reason": "Tablespace is missing",
                "source": "server",
            }
        ]
    }
    assert "Tablespace is missing" in run("SCH-04", {FACTS: facts}).summary
    assert status("SCH-04", {FACTS: {"unopenable": []}}) == "passed"


def test_deprecated_charsets():
    facts = {
        "deprecated_charsets": {
            "innodb_columns": [
                {"schema": "shop", "table": "c", "collation": "utf8mb3_general_ci", "columns": 4}
            ],
            "schema_defaults": [],
            "non_innodb_table_defaults": [],
        }
    }
    assert run("SCH-05", {FACTS: facts}).evidence[0].values["columns"] == 4
    schema = {"deprecated_charsets": {"schema_defaults": [{"schema": "shop", "charset": "utf8mb3"}]}}
    assert status("SCH-05", {FACTS: schema}) == "finding"
    assert status("SCH-05", {FACTS: {"deprecated_charsets": {"innodb_columns": []}}}) == "passed"


def test_missing_definers():
    stored = {
        "missing_definer_count": 1,
        "missing_definers": [{"schema": "shop", "name": "tr", "type": "TRIGGER", "definer": "deploy@%"}],
    }
    assert "deploy@%" in run("SCH-06", {STORED: stored}).summary
    assert status("SCH-06", {STORED: {"missing_definer_count": 0, "missing_definers": []}}) == "passed"
    assert (
        status("SCH-06", {STORED: {"missing_definer_count": None, "missing_definers": []}}) == "insufficient"
    )


def test_reclaimable_space():
    big = {
        "top_tables": [
            {
                "schema_name": "app",
                "table_name": "e",
                "engine": "InnoDB",
                "file_bytes": 300 * GIB,
                "allocated_bytes": 300 * GIB,
                "data_bytes": 30 * GIB,
                "index_bytes": 10 * GIB,
            }
        ]
    }
    assert status("SCH-07", {OVERVIEW: big}) == "finding"
    big["top_tables"][0]["data_bytes"] = 280 * GIB
    assert status("SCH-07", {OVERVIEW: big}) == "passed"
    big["top_tables"][0]["data_bytes"] = None  # no statistics: no judgement
    assert status("SCH-07", {OVERVIEW: big}) == "passed"


HOSTILE = [
    "x",
    3,
    None,
    [1, "a"],
    {
        "without_primary_key": "x",
        "non_innodb": {"a": 1},
        "unopenable": 5,
        "counts": ["x"],
        "deprecated_charsets": [1],
    },
    {
        "without_primary_key": [{"schema": ["x"], "table": None}],
        "counts": {"without_primary_key": "1e999"},
        "deprecated_charsets": {"innodb_columns": [{"columns": "NaN"}, "x"], "schema_defaults": "x"},
        "unopenable": [{"reason": {"a": 1}}, 7],
    },
    {
        "top_tables": [{"allocated_bytes": "huge", "data_bytes": 10**30, "engine": 5}, "x"],
        "schemas": "x",
        "missing_definers": [{"definer": 12}, "x"],
        "missing_definer_count": "NaN",
    },
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_schema_rules_never_error_on_hostile_members(hostile):
    rules = [r for r in registry.all_rules() if r.group == "schema"]
    b = make_bundle(files={FACTS: hostile, OVERVIEW: hostile, STORED: hostile})
    assert [o for o in evaluate(b, rules).outcomes if o.status == "error"] == []
    assert len(rules) >= 5
