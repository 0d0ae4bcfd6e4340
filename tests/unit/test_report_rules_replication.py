"""The replication rules (report/rules/replication.py) on MariaDB's and MySQL 8's column names:
each rule's trigger and pass, the lag window's guards, and malformed replica status."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import pytest

import report.catalog  # noqa: F401 - declares every rule
from report import registry
from report.engine import evaluate
from report.finding import Finding
from report.model import Bundle
from tests.reportkit import make_bundle

NOW = "mysql/replication/replica_status.json"
SAMPLES = "mysql/replication/replica_status.jsonl"
HOSTS = "mysql/replication/replica_hosts.json"


def run(bundle: Bundle, rule_id: str) -> Any:
    report = evaluate(bundle, [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def fired(result: Any) -> bool:
    return isinstance(result, Finding)


def mariadb_channel(io: Any = "Yes", sql: Any = "Yes", lag: Any = 0, **extra: Any) -> Dict[str, Any]:
    row = {"Connection_name": "", "Slave_IO_Running": io, "Slave_SQL_Running": sql,
           "Seconds_Behind_Master": lag, "Last_IO_Errno": 0, "Last_IO_Error": "", "Last_SQL_Errno": 0,
           "Last_SQL_Error": "", "Using_Gtid": "Slave_Pos"}
    row.update(extra)
    return row


def mysql_channel(io: Any = "Yes", sql: Any = "Yes", lag: Any = 0, **extra: Any) -> Dict[str, Any]:
    row = {"Channel_Name": "", "Replica_IO_Running": io, "Replica_SQL_Running": sql,
           "Seconds_Behind_Source": lag, "Last_IO_Errno": 0, "Last_IO_Error": "", "Last_SQL_Errno": 0,
           "Last_SQL_Error": "", "Auto_Position": 1}
    row.update(extra)
    return row


def replica(channels: Sequence[Dict[str, Any]], over: Optional[List[List[Dict[str, Any]]]] = None,
            variables: Optional[Dict[str, Any]] = None, flavor: str = "mariadb", version: str = "10.11.6",
            files: Optional[Dict[str, Any]] = None) -> Bundle:
    """A replica whose status now is `channels`, and whose samples are `over` (lists of channels)."""
    samples = over if over is not None else [list(channels)]
    merged = {"read_only": "ON", "relay_log_recovery": "ON", "slave_parallel_threads": 4}
    if flavor == "mysql":
        merged = {"read_only": "ON", "super_read_only": "ON", "relay_log_recovery": "ON",
                  "replica_parallel_workers": 4, "gtid_mode": "ON", "enforce_gtid_consistency": "ON",
                  "relay_log_info_repository": "TABLE", "master_info_repository": "TABLE"}
    merged.update(variables or {})
    return make_bundle(merged, flavor=flavor, version=version,
                       files={NOW: {"statement": "SHOW ALL SLAVES STATUS", "channels": list(channels)},
                              **(files or {})},
                       jsonl={SAMPLES: [{"channels": c} for c in samples]})


# -- REPL-01 stopped threads ----------------------------------------------------------------------
def test_sql_thread_stopped_on_an_error_is_critical_with_the_error_text() -> None:
    channel = mariadb_channel(sql="No", lag=None, Last_SQL_Errno=1062,
                              Last_SQL_Error="Could not execute Write_rows_v1 event on table app.t; "
                              "Duplicate entry '***' for key 'PRIMARY'")
    found = run(replica([channel]), "REPL-01")
    assert fired(found) and found.severity == "critical"
    values = found.evidence[0].values
    assert values["Last_SQL_Errno"] == 1062 and "Duplicate entry" in values["Last_SQL_Error"]
    assert "Duplicate entry" in found.summary


def test_io_thread_error_on_mysql_8_names_is_an_error() -> None:
    channel = mysql_channel(io="Connecting", Last_IO_Errno=13114,
                            Last_IO_Error="Got fatal error 1236 from source when reading data from binary "
                            "log: 'Could not find first log file name in binary log index file'")
    found = run(replica([channel], flavor="mysql", version="8.0.36"), "REPL-01")
    assert fired(found) and found.severity == "error"
    assert found.evidence[0].values["Last_IO_Errno"] == 13114


def test_threads_stopped_without_error_is_a_warning_and_worker_errors_are_quoted() -> None:
    bundle = replica([mariadb_channel(sql="No", lag=None)], files={
        "mysql/replication/applier_workers.json": [
            {"CHANNEL_NAME": "", "LAST_ERROR_NUMBER": 1032,
             "LAST_ERROR_MESSAGE": "Can't find record in 't'"}]})
    found = run(bundle, "REPL-01")
    assert fired(found) and found.severity == "error"
    assert found.evidence[-1].values["worker_errors"][0]["errno"] == 1032
    stopped = run(replica([mariadb_channel(io="No", lag=None)]), "REPL-01")
    assert fired(stopped) and stopped.severity == "warning"


def test_running_threads_pass_and_a_primary_is_not_a_replica() -> None:
    assert run(replica([mariadb_channel()]), "REPL-01").status == "passed"
    primary = make_bundle(files={NOW: {"channels": []}})
    for rule_id in ("REPL-01", "REPL-02", "REPL-03", "REPL-04", "REPL-05", "REPL-07", "REPL-09"):
        assert run(primary, rule_id).status == "not_applicable", rule_id


def test_a_hostile_error_text_is_cut_and_its_control_characters_shown() -> None:
    channel = mariadb_channel(sql="No", Last_SQL_Errno=1146, Last_SQL_Error="\x1b[31m<script>" + "x" * 10**6)
    found = run(replica([channel]), "REPL-01")
    text = found.evidence[0].values["Last_SQL_Error"]
    assert len(text) == 300 and "\x1b" not in text


# -- REPL-02 lag trend (window) -------------------------------------------------------------------
def lagging(values: Sequence[Optional[int]], make=mariadb_channel) -> List[List[Dict[str, Any]]]:
    return [[make(lag=v)] for v in values]


def test_growing_lag_fires_with_its_samples() -> None:
    over = lagging([40, 50, 62, 70, 81, 95])
    found = run(replica(over[-1], over), "REPL-02")
    assert fired(found) and found.window
    assert found.evidence[0].values["slope_s_per_s"] == pytest.approx(1.07, abs=0.05)
    assert len(found.evidence[0].samples) == 6


def test_growing_lag_on_mysql_8_names_fires() -> None:
    over = lagging([100, 130, 160, 190], make=mysql_channel)
    assert fired(run(replica(over[-1], over, flavor="mysql", version="8.0.36"), "REPL-02"))


@pytest.mark.parametrize("values", [[300, 301, 299, 300, 302, 300], [90, 70, 50, 30, 10, 0],
                                    [0, 1, 0, 2, 1, 0]])
def test_flat_or_falling_lag_passes(values: List[int]) -> None:
    over = lagging(values)
    assert run(replica(over[-1], over), "REPL-02").status == "passed"


def test_lag_trend_needs_three_readings() -> None:
    assert run(replica([mariadb_channel(lag=500)]), "REPL-02").status == "insufficient"
    over = lagging([None, 100, None, 200, None])  # NULL while the SQL thread is stopped
    assert run(replica(over[-1], over), "REPL-02").status == "insufficient"


# -- REPL-03 lag level ----------------------------------------------------------------------------
@pytest.mark.parametrize("lag, severity", [(1800, "warning"), (7200, "error")])
def test_far_behind_fires(lag: int, severity: str) -> None:
    found = run(replica([mariadb_channel(lag=lag)]), "REPL-03")
    assert fired(found) and found.severity == severity


def test_small_or_unknown_lag_passes() -> None:
    assert run(replica([mariadb_channel(lag=12)]), "REPL-03").status == "passed"
    assert run(replica([mariadb_channel(lag=None)]), "REPL-03").status == "passed"


# -- REPL-04 writable replica ---------------------------------------------------------------------
def test_writable_replica_fires() -> None:
    found = run(replica([mariadb_channel()], variables={"read_only": "OFF"}), "REPL-04")
    assert fired(found) and found.severity == "warning"


def test_mysql_replica_without_super_read_only_is_a_notice() -> None:
    bundle = replica([mysql_channel()], variables={"super_read_only": "OFF"}, flavor="mysql",
                     version="8.0.36")
    found = run(bundle, "REPL-04")
    assert fired(found) and found.severity == "notice"


def test_read_only_replica_passes() -> None:
    assert run(replica([mariadb_channel()]), "REPL-04").status == "passed"
    assert run(replica([mysql_channel()], flavor="mysql", version="8.0.36"), "REPL-04").status == "passed"


# -- REPL-05 crash safety -------------------------------------------------------------------------
def test_relay_log_recovery_off_fires() -> None:
    found = run(replica([mariadb_channel()], variables={"relay_log_recovery": "OFF"}), "REPL-05")
    assert fired(found) and found.evidence[0].values["relay_log_recovery"] == "OFF"


def test_mariadb_file_positions_and_mysql_file_repositories_fire() -> None:
    assert fired(run(replica([mariadb_channel(Using_Gtid="No")]), "REPL-05"))
    bundle = replica([mysql_channel()], variables={"relay_log_info_repository": "FILE"}, flavor="mysql",
                     version="8.0.20")
    assert fired(run(bundle, "REPL-05"))


def test_crash_safe_replica_passes() -> None:
    assert run(replica([mariadb_channel()]), "REPL-05").status == "passed"
    assert run(replica([mysql_channel()], flavor="mysql", version="8.0.36"), "REPL-05").status == "passed"


# -- REPL-06 GTID ---------------------------------------------------------------------------------
def test_gtid_not_used_fires_on_both_flavors() -> None:
    assert fired(run(replica([mariadb_channel(Using_Gtid="No")]), "REPL-06"))
    mysql_off = replica([mysql_channel(Auto_Position=0)], variables={"gtid_mode": "OFF"}, flavor="mysql",
                        version="8.0.36")
    assert fired(run(mysql_off, "REPL-06"))
    no_auto = replica([mysql_channel(Auto_Position=0)], flavor="mysql", version="8.0.36")
    assert "SOURCE_AUTO_POSITION" in run(no_auto, "REPL-06").summary


def test_transitional_gtid_mode_is_a_warning_and_gtid_json_wins() -> None:
    bundle = replica([mysql_channel()], flavor="mysql", version="8.0.36", files={
        "mysql/replication/gtid.json": {"gtid_mode": "ON_PERMISSIVE", "enforce_gtid_consistency": "ON"}})
    found = run(bundle, "REPL-06")
    assert fired(found) and found.severity == "warning"


def test_gtid_replication_passes() -> None:
    assert run(replica([mariadb_channel()]), "REPL-06").status == "passed"
    assert run(replica([mysql_channel()], flavor="mysql", version="8.0.36"), "REPL-06").status == "passed"


# -- REPL-07 single-threaded apply under lag (window) ---------------------------------------------
def test_lag_with_parallel_replication_off_fires() -> None:
    over = lagging([120, 150, 90, 200, 130, 170])
    found = run(replica(over[-1], over, variables={"slave_parallel_threads": 0}), "REPL-07")
    assert fired(found) and found.window and found.evidence[0].values["share_over_60s"] == 1.0


def test_parallel_replication_or_no_lag_passes() -> None:
    over = lagging([120, 150, 90, 200, 130, 170])
    assert run(replica(over[-1], over), "REPL-07").status == "passed"
    quiet = lagging([0, 1, 0, 0, 2, 0])
    bundle = replica(quiet[-1], quiet, variables={"slave_parallel_threads": 0})
    assert run(bundle, "REPL-07").status == "passed"


def test_lag_persistence_needs_three_samples() -> None:
    bundle = replica([mariadb_channel(lag=900)], variables={"slave_parallel_threads": 0})
    assert run(bundle, "REPL-07").status == "insufficient"


# -- REPL-08 chained replicas ---------------------------------------------------------------------
def test_intermediate_source_without_log_slave_updates_fires() -> None:
    bundle = replica([mariadb_channel()], variables={"log_slave_updates": "OFF", "log_bin": "ON"},
                     files={HOSTS: {"replicas": [{"Server_id": 3}, {"Server_id": 4}]}})
    found = run(bundle, "REPL-08")
    assert fired(found) and found.severity == "error" and "2 replica" in found.summary


def test_intermediate_source_with_log_slave_updates_passes() -> None:
    bundle = replica([mariadb_channel()], variables={"log_slave_updates": "ON", "log_bin": "ON"},
                     files={HOSTS: {"replicas": [{"Server_id": 3}]}})
    assert run(bundle, "REPL-08").status == "passed"
    leaf = replica([mariadb_channel()], variables={"log_slave_updates": "OFF"},
                   files={HOSTS: {"replicas": []}})
    assert run(leaf, "REPL-08").status == "not_applicable"


# -- REPL-09 I/O flapping (window) ----------------------------------------------------------------
def test_io_thread_dropping_in_and_out_fires() -> None:
    states = ("Yes", "Connecting", "Yes", "Yes", "Connecting", "Yes")
    over = [[mariadb_channel(io=state)] for state in states]
    found = run(replica(over[-1], over), "REPL-09")
    assert fired(found) and found.window
    assert found.evidence[0].values["running_share"] == pytest.approx(4 / 6, abs=0.01)


def test_io_thread_steady_passes_and_one_sample_is_insufficient() -> None:
    steady = [[mariadb_channel()] for _ in range(6)]
    assert run(replica(steady[-1], steady), "REPL-09").status == "passed"
    assert run(replica([mariadb_channel(io="Connecting")]), "REPL-09").status == "insufficient"


# -- hostile members ------------------------------------------------------------------------------
def test_malformed_replica_status_never_makes_a_replication_rule_error() -> None:
    rules = [r for r in registry.all_rules() if r.group == "replication"]
    assert len(rules) >= 5
    odd_channels = [mariadb_channel(io=["Yes"], sql={"a": 1}, lag="NaN", Last_SQL_Errno="x",
                                    Last_SQL_Error=12, Using_Gtid=None, Connection_name=["a"]),
                    mysql_channel(lag="1e999", Auto_Position="yes", Last_IO_Errno=10**30),
                    "not a channel", None, 7]
    bundles = [
        make_bundle(files={NOW: {"channels": odd_channels}, HOSTS: {"replicas": "two"},
                           "mysql/replication/applier_workers.json": [{"LAST_ERROR_NUMBER": "NaN"}, "x"],
                           "mysql/replication/gtid.json": ["ON"]},
                    jsonl={SAMPLES: [{"channels": odd_channels}, {"channels": "x"}, {"channels": {"a": 1}},
                                     {"nothing": 1}, {"channels": odd_channels}]},
                    variables={"read_only": [1], "slave_parallel_threads": "many", "log_slave_updates": "x"}),
        make_bundle(files={NOW: ["a list"]}, text={SAMPLES: "not json\n[1,2]\n{\"channels\": null}\n"}),
        make_bundle(files={NOW: {"channels": {"Slave_IO_Running": "No"}}}),
        make_bundle(files={NOW: {"channels": [mysql_channel()]},
                           "mysql/replication/gtid.json": {"gtid_mode": 5}},
                    flavor="mysql", version="8.0.36", stock=False),
    ]
    for bundle in bundles:
        report = evaluate(bundle, rules)
        assert [o for o in report.outcomes if o.status == "error"] == []
