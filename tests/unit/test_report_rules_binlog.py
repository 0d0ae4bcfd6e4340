"""The binary log rules (report/rules/binlog.py): each rule's trigger, its pass, and the
window guards (restart, zero denominator, tiny volume, one sample) of its ratios and rates."""

from __future__ import annotations

from typing import Any, Dict

import pytest

import report.catalog  # noqa: F401 - declares every rule
from report import registry
from report.engine import evaluate
from report.finding import Finding
from report.model import Bundle
from tests.reportkit import counters, make_bundle

BINLOG_ON = {"log_bin": "ON", "sync_binlog": 1, "binlog_format": "ROW"}
GIB = 1 << 30


def run(bundle: Bundle, rule_id: str) -> Any:
    """The rule's finding, or its outcome when it did not fire."""
    report = evaluate(bundle, [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def fired(result: Any) -> bool:
    return isinstance(result, Finding)


def disks(free: int, mount: str = "/var/lib/mysql") -> Dict[str, Any]:
    return {"filesystems": [{"mountpoint": "/", "free_bytes": 10 * GIB},
                            {"mountpoint": mount, "free_bytes": free}],
            "mysql_paths": {"log_bin_basename": {"mountpoint": mount, "path": mount + "/binlog"},
                            "datadir": {"mountpoint": mount}}}


# -- BIN-01 sync_binlog -----------------------------------------------------------------------
def test_sync_binlog_zero_with_binary_log_on_is_a_warning() -> None:
    found = run(make_bundle({**BINLOG_ON, "sync_binlog": 0}), "BIN-01")
    assert fired(found) and found.severity == "warning"
    assert found.evidence[0].values["sync_binlog"] == 0


def test_sync_binlog_on_a_source_with_replicas_is_an_error() -> None:
    bundle = make_bundle({**BINLOG_ON, "sync_binlog": 100}, files={
        "mysql/replication/replica_hosts.json": {"replicas": [{"Server_id": 2}, {"Server_id": 3}]}})
    found = run(bundle, "BIN-01")
    assert fired(found) and found.severity == "error" and "2 replica" in found.summary


def test_sync_binlog_one_passes_and_binlog_off_does_not_apply() -> None:
    assert run(make_bundle(BINLOG_ON), "BIN-01").status == "passed"
    assert run(make_bundle({"log_bin": "OFF", "sync_binlog": 0}), "BIN-01").status == "not_applicable"


# -- BIN-02 binlog_format ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt, severity", [("STATEMENT", "warning"), ("MIXED", "notice")])
def test_binlog_format_not_row_fires(fmt: str, severity: str) -> None:
    found = run(make_bundle({**BINLOG_ON, "binlog_format": fmt}), "BIN-02")
    assert fired(found) and found.severity == severity


def test_binlog_format_row_passes() -> None:
    assert run(make_bundle(BINLOG_ON), "BIN-02").status == "passed"


# -- BIN-03 / BIN-04 cache spills (window ratios) --------------------------------------------------
CACHES = [("BIN-03", "Binlog_cache_disk_use", "Binlog_cache_use"),
          ("BIN-04", "Binlog_stmt_cache_disk_use", "Binlog_stmt_cache_use")]


@pytest.mark.parametrize("rule_id, disk, use", CACHES)
def test_cache_spill_fires_when_many_transactions_overflow(rule_id: str, disk: str, use: str) -> None:
    status = counters({disk: 100, use: 1000}, {disk: 4, use: 10})
    found = run(make_bundle(BINLOG_ON, status=status), rule_id)
    assert fired(found) and found.window
    assert found.evidence[0].values["spill_share"] == pytest.approx(0.4)
    assert found.evidence[0].samples


@pytest.mark.parametrize("rule_id, disk, use", CACHES)
def test_cache_spill_passes_when_few_overflow(rule_id: str, disk: str, use: str) -> None:
    status = counters({disk: 100, use: 1000}, {disk: 0.1, use: 10})
    assert run(make_bundle(BINLOG_ON, status=status), rule_id).status == "passed"


@pytest.mark.parametrize("rule_id, disk, use", CACHES)
def test_cache_spill_guards(rule_id: str, disk: str, use: str) -> None:
    restarted = counters({disk: 100, use: 1000}, {disk: 4, use: 10})
    restarted[3]["Uptime"] = 5
    zero = counters({disk: 0, use: 0}, {})
    tiny = counters({disk: 0, use: 0}, {disk: 0.05, use: 0.1})
    one = counters({disk: 100, use: 1000}, {disk: 4, use: 10}, samples=1)
    for status in (restarted, zero, tiny, one):
        assert run(make_bundle(BINLOG_ON, status=status), rule_id).status == "insufficient"


# -- BIN-05 growth vs retention and disk -----------------------------------------------------------
def grow(per_second: float, samples: int = 6):
    return counters({"Binlog_bytes_written": 1000}, {"Binlog_bytes_written": per_second}, samples=samples)


def test_binlog_never_purged_fills_the_disk_within_hours() -> None:
    bundle = make_bundle({**BINLOG_ON, "expire_logs_days": 0, "binlog_expire_logs_seconds": 0},
                         status=grow(2 << 20), files={"os/disks.json": disks(80 * GIB)})
    found = run(bundle, "BIN-05")
    assert fired(found) and found.severity == "error"
    assert found.evidence[0].values["days_to_full"] == pytest.approx(80 * GIB / (2 << 20) / 86400, rel=0.01)


def test_binlog_retention_larger_than_the_free_space_fires() -> None:
    bundle = make_bundle({**BINLOG_ON, "binlog_expire_logs_seconds": 7 * 86400}, status=grow(1 << 20),
                         files={"os/disks.json": disks(100 * GIB), "mysql/replication/binary_logs.json":
                                [{"Log_name": "b.1", "File_size": GIB}]})
    found = run(bundle, "BIN-05")
    assert fired(found) and found.severity == "error"  # 7 days × 1 MiB/s ≈ 590 GiB


def test_binlog_retention_that_fits_passes() -> None:
    bundle = make_bundle({**BINLOG_ON, "expire_logs_days": 7}, status=grow(1024),
                         files={"os/disks.json": disks(100 * GIB)})
    assert run(bundle, "BIN-05").status == "passed"


def test_binlog_size_limit_caps_the_projection() -> None:
    bundle = make_bundle({**BINLOG_ON, "expire_logs_days": 30, "max_binlog_total_size": 10 * GIB},
                         status=grow(1 << 20), files={"os/disks.json": disks(100 * GIB)})
    assert run(bundle, "BIN-05").status == "passed"


def test_binlog_growth_guards() -> None:
    files = {"os/disks.json": disks(80 * GIB)}
    restarted = grow(2 << 20)
    restarted[2]["Uptime"] = 3
    for status in (restarted, grow(2 << 20, samples=1)):
        assert run(make_bundle({**BINLOG_ON, "expire_logs_days": 0}, status=status, files=files),
                   "BIN-05").status == "insufficient"
    no_counter = counters({"Com_commit": 0}, {"Com_commit": 5})
    assert run(make_bundle(BINLOG_ON, status=no_counter, files=files), "BIN-05").status == "insufficient"
    unknown_disk = make_bundle({**BINLOG_ON, "expire_logs_days": 7}, status=grow(1 << 20))
    assert run(unknown_disk, "BIN-05").status == "insufficient"


# -- BIN-06 durability pairing --------------------------------------------------------------------
def test_binlog_synced_but_redo_not_fires() -> None:
    found = run(make_bundle({**BINLOG_ON, "innodb_flush_log_at_trx_commit": 2}), "BIN-06")
    assert fired(found) and "innodb_flush_log_at_trx_commit=2" in found.summary


def test_both_durable_passes() -> None:
    assert run(make_bundle(BINLOG_ON), "BIN-06").status == "passed"
    assert run(make_bundle({**BINLOG_ON, "sync_binlog": 0, "innodb_flush_log_at_trx_commit": 2}),
               "BIN-06").status == "passed"


# -- hostile members ------------------------------------------------------------------------------
def test_malformed_members_never_make_a_binlog_rule_error() -> None:
    rules = [r for r in registry.all_rules() if r.group == "binlog"]
    assert len(rules) >= 4
    weird_status = [{"Binlog_cache_use": "NaN", "Binlog_cache_disk_use": "x" * 100,
                     "Binlog_bytes_written": "1e400", "Uptime": "-"}, {"Binlog_cache_use": [1],
                     "Binlog_bytes_written": {"a": 1}, "Binlog_stmt_cache_use": 1e308}] * 3
    bundles = [
        make_bundle({"log_bin": "maybe", "sync_binlog": "abc", "binlog_format": ["ROW"],
                     "innodb_flush_log_at_trx_commit": "NaN", "expire_logs_days": "1e999"},
                    status=weird_status),
        make_bundle({**BINLOG_ON, "expire_logs_days": "NaN", "binlog_expire_logs_seconds": "-5"},
                    status=grow(1 << 20), files={
                        "os/disks.json": {"filesystems": "none", "mysql_paths": [1, 2]},
                        "mysql/replication/binary_logs.json": {"File_size": 3},
                        "mysql/replication/replica_hosts.json": {"replicas": "many"}}),
        make_bundle({**BINLOG_ON, "expire_logs_days": 0}, status=grow(1 << 20), files={
            "os/disks.json": {"filesystems": [None, {"mountpoint": "/var/lib/mysql", "free_bytes": "lots"}],
                              "mysql_paths": {"log_bin_basename": {"mountpoint": 7}}},
            "mysql/replication/binary_logs.json": [None, "x", {"File_size": "big"}],
            "mysql/replication/replica_hosts.json": []}),
        make_bundle({"log_bin": None}, stock=False, files={"mysql/replication/binlog_status.json": "on"}),
    ]
    for bundle in bundles:
        report = evaluate(bundle, rules)
        assert [o for o in report.outcomes if o.status == "error"] == []
