"""Offline upgrade checks (issue 13): each check fires on a bundle that has the problem and stays
quiet on one that does not; a check whose data is missing says "not checked", never passes;
targets parse, and a target of the other flavor is one clear line."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from report.upgrade import CHECKS, TARGETS, check_upgrade, parse_target
from tests.reportkit import make_bundle

MYCNF = "config/files/etc/mysql/my.cnf"
NOTHING_PERSISTED = {"name": "config.persisted", "status": "skipped",
                     "error": "no persisted variables (no mysqld-auto.cnf in the datadir)"}


def option_files(text: str, path: str = "/etc/mysql/my.cnf") -> Dict[str, Any]:
    member = f"config/files{path}"
    return {"files": {"config/option_files.json": {"copied_as": {path: member}, "files_read": [path]}},
            "text": {member: text}}


def mysql(version: str = "8.0.36", variables: Optional[Dict[str, Any]] = None, cnf: str = "[mysqld]\n",
          files: Optional[Dict[str, Any]] = None, text: Optional[Dict[str, str]] = None,
          collectors: Any = (NOTHING_PERSISTED,)):
    parts = option_files(cnf)
    parts["files"].update(files or {})
    parts["text"].update(text or {})
    return make_bundle(variables=variables, flavor="mysql", version=version, files=parts["files"],
                       text=parts["text"], collectors=list(collectors))


def mariadb(version: str = "10.11.6", variables: Optional[Dict[str, Any]] = None, cnf: str = "[mysqld]\n",
            files: Optional[Dict[str, Any]] = None):
    parts = option_files(cnf)
    parts["files"].update(files or {})
    return make_bundle(variables=variables, flavor="mariadb", version=version, files=parts["files"],
                       text=parts["text"])


def run(bundle, target: str):
    findings, outcomes = check_upgrade(bundle, parse_target(target, bundle.version.flavor))
    assert not [o for o in outcomes if o.status == "error"], outcomes
    return {f.rule: f for f in findings}, {o.rule: o for o in outcomes}


def fired(bundle, target: str, rule: str):
    return run(bundle, target)[0].get(rule)


# -- the declarations ------------------------------------------------------------------------
def test_at_least_fifteen_checks_each_with_a_page_and_advice():
    assert len(CHECKS) >= 15
    assert len({c.id for c in CHECKS}) == len(CHECKS)
    for item in CHECKS:
        assert item.id.startswith("UPG-") and item.func.__doc__ and item.advice, item.id
        assert item.severity in ("error", "warning", "notice")


def test_findings_are_of_the_upgrade_group_and_sorted_by_severity():
    bundle = mysql("5.7.44", {"sql_mode": "NO_AUTO_CREATE_USER", "query_cache_type": "ON",
                              "query_cache_size": 1 << 26}, cnf="[mysqld]\nlog_slave_updates=ON\n")
    findings, _ = check_upgrade(bundle, parse_target("mysql 8.0"))
    assert findings and all(f.group == "upgrade" for f in findings)
    order = ["error", "warning", "notice"]
    ranks = [order.index(f.severity) for f in findings]
    assert ranks == sorted(ranks)


# -- targets -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,key", [
    ("mysql 8.4", "mysql 8.4"), ("MySQL-8.4.3", "mysql 8.4"), ("mariadb:11.8", "mariadb 11.8"),
    ("11.4", "mariadb 11.4"), ("8.0", "mysql 8.0"), (" mariadb 11.4.2 ", "mariadb 11.4"),
])
def test_targets_parse(text, key):
    assert parse_target(text).key == key
    assert key in TARGETS


def test_a_bare_version_takes_the_bundles_flavor():
    assert parse_target("11.4", "mariadb").flavor == "mariadb"


@pytest.mark.parametrize("text", ["mysql 9.9", "mariadb 8.4", "11.9", "latest", "", "mysql", "8"])
def test_unknown_or_odd_targets_are_one_clear_line(text):
    with pytest.raises(ValueError) as info:
        parse_target(text)
    assert "\n" not in str(info.value) and "known:" in str(info.value)


def test_a_mariadb_bundle_with_a_mysql_target_is_one_line():
    bundle = mariadb()
    for text in ("mysql 8.4", "8.4"):
        with pytest.raises(ValueError) as info:
            parse_target(text, bundle.version.flavor)
        assert "\n" not in str(info.value) and "MariaDB" in str(info.value)
    with pytest.raises(ValueError) as info:
        check_upgrade(bundle, parse_target("mysql 8.4"))
    assert "cannot be upgraded in place to MySQL 8.4" in str(info.value)


def test_a_target_not_newer_than_the_server_is_refused():
    with pytest.raises(ValueError, match="already at or past"):
        check_upgrade(mariadb("11.4.2"), parse_target("mariadb 11.4"))


# -- UPG-01 path ---------------------------------------------------------------------------
def test_mysql_57_straight_to_84_is_an_error_and_80_to_84_is_fine():
    finding = fired(mysql("5.7.44"), "mysql 8.4", "UPG-01")
    assert finding.severity == "error" and "8.0" in finding.summary
    assert fired(mysql("8.0.36"), "mysql 8.4", "UPG-01") is None


def test_mariadb_skipping_an_lts_is_a_notice():
    finding = fired(mariadb("10.6.18"), "mariadb 11.8", "UPG-01")
    assert finding.severity == "notice" and "10.11" in finding.summary and "11.4" in finding.summary
    assert fired(mariadb("11.4.2"), "mariadb 11.8", "UPG-01") is None


def test_unknown_version_leaves_the_path_not_checked():
    bundle = mysql(version="")
    bundle.files["mysql/global_variables.json"] = json.dumps({"version": ""}).encode()
    _, outcomes = run(bundle, "mysql 8.4")
    assert outcomes["UPG-01"].status == "insufficient"


# -- UPG-02 accounts -----------------------------------------------------------------------
def accounts(*rows: Dict[str, Any]) -> Dict[str, Any]:
    return {"mysql/accounts.json": {"accounts": [{"account_locked": "0", "is_role": "0", **r} for r in rows]}}


def test_native_password_accounts_cannot_log_in_on_84():
    bundle = mysql(files=accounts({"user": "app", "host": "%", "plugin": "mysql_native_password"},
                                  {"user": "old", "host": "%", "plugin": "mysql_native_password",
                                   "account_locked": "1"}))
    finding = fired(bundle, "mysql 8.4", "UPG-02")
    assert finding.severity == "error" and "'app'@'%'" in finding.summary and "old" not in finding.summary


def test_caching_sha2_accounts_pass_and_native_is_fine_for_80():
    good = mysql(files=accounts({"user": "app", "host": "%", "plugin": "caching_sha2_password"}))
    assert fired(good, "mysql 8.4", "UPG-02") is None
    native = mysql("5.7.44", files=accounts({"user": "app", "host": "%", "plugin": "mysql_native_password"}))
    assert fired(native, "mysql 8.0", "UPG-02") is None


def test_accounts_missing_is_not_checked():
    _, outcomes = run(mysql(), "mysql 8.4")
    assert outcomes["UPG-02"].status == "insufficient"
    assert "UPG-02" not in run(mariadb(), "mariadb 11.4")[1]  # MariaDB keeps the plugin


# -- UPG-03 option files -------------------------------------------------------------------
def test_removed_variables_in_option_files_break_the_start():
    cnf = "[client]\nexpire_logs_days=1\n[mysqld]\nexpire-logs-days = 7\nskip-host-cache\n" \
          "loose-log_bin_use_v1_row_events=OFF\n[mysqld-8.0]\nmaster_info_repository=TABLE\n"
    finding = fired(mysql(cnf=cnf), "mysql 8.4", "UPG-03")
    assert finding.severity == "error"
    assert "expire-logs-days" in finding.summary and "binlog_expire_logs_seconds" in finding.summary
    assert "/etc/mysql/my.cnf:4" in finding.summary and "skip-host-cache" in finding.summary
    assert "master_info_repository" not in finding.summary  # [mysqld-8.0] is not read by 8.4
    assert finding.summary.count("(") >= 3


def test_only_loose_removed_variables_are_a_notice():
    finding = fired(mysql(cnf="[mysqld]\nloose-expire_logs_days=7\n"), "mysql 8.4", "UPG-03")
    assert finding.severity == "notice"


def test_current_variables_in_option_files_pass():
    cnf = "[mysqld]\nbinlog_expire_logs_seconds=604800\ninnodb_buffer_pool_size=1G\n"
    assert fired(mysql(cnf=cnf), "mysql 8.4", "UPG-03") is None
    assert fired(mariadb(cnf="[mariadb]\ninnodb_buffer_pool_size=1G\n"), "mariadb 11.4", "UPG-03") is None


def test_mariadb_removed_variables_in_option_files():
    cnf = "[mariadb]\ninnodb_change_buffering=none\ninnodb_defragment=1\n"
    finding = fired(mariadb(cnf=cnf), "mariadb 11.4", "UPG-03")
    assert "innodb_change_buffering" in finding.summary and "innodb_defragment" in finding.summary


def test_option_files_missing_is_not_checked():
    bundle = make_bundle(flavor="mysql", version="8.0.36")
    _, outcomes = run(bundle, "mysql 8.4")
    assert outcomes["UPG-03"].status == "insufficient"
    assert outcomes["UPG-18"].status == "insufficient"


# -- UPG-04 persisted ----------------------------------------------------------------------
def persisted(names: Dict[str, str]) -> str:
    return json.dumps({"Version": 2, "mysql_server": {
        **{n: {"Value": v, "Metadata": {}} for n, v in names.items()},
        "mysql_server_static_options": {"binlog_transaction_dependency_tracking": {"Value": "WRITESET"}}}})


def test_persisted_removed_variables():
    bundle = mysql(text={"config/mysqld-auto.cnf": persisted({"max_connections": "500"})}, collectors=())
    finding = fired(bundle, "mysql 8.4", "UPG-04")
    assert "binlog_transaction_dependency_tracking" in finding.summary
    assert "max_connections" not in finding.summary


def test_persisted_current_variables_pass_and_none_persisted_pass():
    good = json.dumps({"Version": 2, "mysql_server": {"max_connections": {"Value": "500"}}})
    assert fired(mysql(text={"config/mysqld-auto.cnf": good}, collectors=()), "mysql 8.4", "UPG-04") is None
    findings, outcomes = run(mysql(), "mysql 8.4")
    assert "UPG-04" not in findings and "UPG-04" not in outcomes


def test_persisted_unknown_is_not_checked():
    failed = {"name": "config.persisted", "status": "failed", "error": "permission denied"}
    _, outcomes = run(mysql(collectors=(failed,)), "mysql 8.4")
    assert outcomes["UPG-04"].status == "insufficient" and "permission denied" in outcomes["UPG-04"].reason


# -- UPG-05 running values -----------------------------------------------------------------
def test_removed_variable_set_outside_the_option_files():
    finding = fired(mysql(variables={"expire_logs_days": "10"}), "mysql 8.4", "UPG-05")
    assert "expire_logs_days=10" in finding.summary and "binlog_expire_logs_seconds" in finding.summary


def test_removed_variable_at_default_or_in_option_files_passes():
    assert fired(mysql(variables={"expire_logs_days": "0"}), "mysql 8.4", "UPG-05") is None
    in_file = mysql(variables={"expire_logs_days": "10"}, cnf="[mysqld]\nexpire_logs_days=10\n")
    assert fired(in_file, "mysql 8.4", "UPG-05") is None


# -- UPG-06 sql modes ----------------------------------------------------------------------
def test_removed_sql_modes_in_global_and_option_files():
    bundle = mysql("5.7.44", {"sql_mode": "STRICT_TRANS_TABLES,NO_AUTO_CREATE_USER"},
                   cnf="[mysqld]\nsql-mode = \"ANSI,MSSQL\"\n")
    finding = fired(bundle, "mysql 8.0", "UPG-06")
    assert "NO_AUTO_CREATE_USER (global sql_mode)" in finding.summary and "MSSQL (/etc/mysql/my.cnf:2)" \
        in finding.summary


def test_current_sql_modes_pass_and_mariadb_keeps_no_auto_create_user():
    assert fired(mysql("5.7.44", {"sql_mode": "STRICT_TRANS_TABLES"}), "mysql 8.0", "UPG-06") is None
    assert fired(mariadb(variables={"sql_mode": "NO_AUTO_CREATE_USER"}), "mariadb 11.4", "UPG-06") is None


# -- UPG-07 defaults -----------------------------------------------------------------------
def test_defaults_that_change_on_84():
    finding = fired(mysql(variables={"innodb_adaptive_hash_index": "ON"}), "mysql 8.4", "UPG-07")
    assert "innodb_io_capacity 200 → 10000" in finding.summary
    assert "innodb_adaptive_hash_index" in finding.summary


def test_pinned_defaults_do_not_change():
    cnf = "[mysqld]\ninnodb_io_capacity=200\ninnodb_io_capacity_max=2000\ninnodb_log_buffer_size=16M\n"
    assert fired(mysql(cnf=cnf), "mysql 8.4", "UPG-07") is None


def test_mariadb_118_charset_and_snapshot_isolation_but_not_114():
    bundle = mariadb(variables={"character_set_server": "latin1", "innodb_snapshot_isolation": "OFF"})
    finding = fired(bundle, "mariadb 11.8", "UPG-07")
    assert "utf8mb4" in finding.summary and "innodb_snapshot_isolation" in finding.summary
    assert fired(bundle, "mariadb 11.4", "UPG-07") is None


def test_defaults_without_variables_are_not_checked():
    bundle = mysql()
    del bundle.files["mysql/global_variables.json"]
    _, outcomes = run(bundle, "mysql 8.4")
    assert outcomes["UPG-07"].status == "insufficient" and outcomes["UPG-05"].status == "insufficient"


# -- UPG-08 query cache --------------------------------------------------------------------
def test_query_cache_in_use_before_80():
    bundle = mysql("5.7.44", {"query_cache_type": "ON", "query_cache_size": 64 << 20})
    assert fired(bundle, "mysql 8.0", "UPG-08").severity == "warning"


def test_query_cache_off_passes():
    assert fired(mysql("5.7.44", {"query_cache_type": "OFF"}), "mysql 8.0", "UPG-08") is None


# -- UPG-09 reserved words -----------------------------------------------------------------
def overview(schemas: List[str], tables: List[tuple]) -> Dict[str, Any]:
    return {"mysql/schema_overview.json": {
        "tables_per_schema": {s: 1 for s in schemas},
        "top_tables": [{"schema_name": s, "table_name": t} for s, t in tables]}}


def test_reserved_words_as_names():
    bundle = mysql("5.7.44", files=overview(["shop", "window"], [("shop", "rank"), ("shop", "orders")]))
    finding = fired(bundle, "mysql 8.0", "UPG-09")
    assert "schema window" in finding.summary and "table shop.rank" in finding.summary
    assert "orders" not in finding.summary and "not checked" in finding.evidence[0].note
    later = mysql("8.0.36", files=overview(["shop"], [("shop", "qualify")]))
    assert "shop.qualify" in fired(later, "mysql 8.4", "UPG-09").summary


def test_plain_names_pass_and_missing_names_are_not_checked():
    plain = mysql("5.7.44", files=overview(["shop"], [("shop", "orders")]))
    assert fired(plain, "mysql 8.0", "UPG-09") is None
    assert run(mysql("5.7.44"), "mysql 8.0")[1]["UPG-09"].status == "insufficient"


# -- UPG-10 charsets -----------------------------------------------------------------------
def facts(columns=(), schemas=(), non_innodb=()) -> Dict[str, Any]:
    return {"mysql/table_facts.json": {
        "non_innodb": list(non_innodb), "without_primary_key": [], "unopenable": [],
        "deprecated_charsets": {"innodb_columns": list(columns), "schema_defaults": list(schemas),
                                "non_innodb_table_defaults": [], "utf8mb3_columns": 0}}}


def test_utf8mb3_columns_and_schemas():
    data = facts(columns=[{"schema": "shop", "table": "orders", "collation": "utf8mb3_general_ci",
                           "columns": 4}],
                 schemas=[{"schema": "old", "charset": "utf8mb3", "collation": "utf8mb3_general_ci"}])
    finding = fired(mysql(files=data), "mysql 8.4", "UPG-10")
    assert finding.severity == "notice" and "4 columns" in finding.summary and "schema old" in finding.summary
    assert fired(mariadb(files=data), "mariadb 11.8", "UPG-10") is not None
    assert fired(mariadb(files=data), "mariadb 11.4", "UPG-10") is None


def test_no_deprecated_charsets_passes_and_missing_facts_are_not_checked():
    assert fired(mysql(files=facts()), "mysql 8.4", "UPG-10") is None
    assert run(mysql(), "mysql 8.4")[1]["UPG-10"].status == "insufficient"


# -- UPG-11 partitioning -------------------------------------------------------------------
def test_non_innodb_tables_before_80_leave_partitioning_not_checked():
    bundle = mysql("5.7.44", files=facts(non_innodb=[{"schema": "log", "table": "t", "engine": "MyISAM"}]))
    outcome = run(bundle, "mysql 8.0")[1]["UPG-11"]
    assert outcome.status == "insufficient" and "information_schema.PARTITIONS" in outcome.reason


def test_all_innodb_passes_partitioning():
    findings, outcomes = run(mysql("5.7.44", files=facts()), "mysql 8.0")
    assert "UPG-11" not in findings and "UPG-11" not in outcomes


# -- UPG-12 upgrade tool -------------------------------------------------------------------
def test_upgrade_tool_note_names_the_flavors_step():
    assert "mariadb-upgrade" in fired(mariadb(), "mariadb 11.4", "UPG-12").summary
    note = fired(mysql(), "mysql 8.4", "UPG-12").summary
    assert "do not run mysql_upgrade" in note and "mariadb" not in note


# -- UPG-13 engines ------------------------------------------------------------------------
def test_tables_on_a_removed_engine():
    engines = {"TokuDB": 3, "InnoDB": 2}
    data = {"mysql/schema_overview.json": {"schemas": [{"schema": "a", "engines": engines}]}}
    finding = fired(mariadb("10.5.20", files=data), "mariadb 11.4", "UPG-13")
    assert "TokuDB (3 tables)" in finding.summary
    assert fired(mysql("5.7.44", files=data), "mysql 8.0", "UPG-13") is not None


def test_innodb_only_passes_and_no_table_data_is_not_checked():
    data = {"mysql/schema_overview.json": {"schemas": [{"schema": "a", "engines": {"InnoDB": 2}}]}}
    assert fired(mysql("5.7.44", files=data), "mysql 8.0", "UPG-13") is None
    assert run(mysql("5.7.44"), "mysql 8.0")[1]["UPG-13"].status == "insufficient"


# -- UPG-14 / UPG-15 plugins ---------------------------------------------------------------
def plugins(*rows: Dict[str, Any]) -> Dict[str, Any]:
    return {"mysql/plugins.json": [{"status": "ACTIVE", "library": None, "type": "DAEMON", **r}
                                   for r in rows]}


def test_removed_plugins_on_84():
    bundle = mysql(files=plugins({"name": "keyring_file", "library": "keyring_file.so", "type": "KEYRING"}))
    assert "component_keyring_file" in fired(bundle, "mysql 8.4", "UPG-14").summary


def test_current_plugins_pass_and_missing_plugins_are_not_checked():
    assert fired(mysql(files=plugins({"name": "InnoDB"})), "mysql 8.4", "UPG-14") is None
    assert run(mysql(), "mysql 8.4")[1]["UPG-14"].status == "insufficient"


def test_fulltext_parser_from_a_library():
    bundle = mariadb(files=plugins({"name": "cjk", "type": "FTPARSER", "library": "ft_cjk.so"}))
    assert "ft_cjk.so" in fired(bundle, "mariadb 11.4", "UPG-15").summary
    builtin = mysql(files=plugins({"name": "ngram", "type": "FTPARSER"}))
    assert fired(builtin, "mysql 8.4", "UPG-15") is None


# -- UPG-16 / UPG-17 column data the bundle does not hold -----------------------------------
def test_old_temporals_and_column_features_are_not_checked_with_the_query_to_run():
    _, outcomes = run(mysql("5.7.44"), "mysql 8.0")
    assert "5.5 binary format" in outcomes["UPG-16"].reason
    assert "zerofill" in outcomes["UPG-17"].reason
    _, later = run(mysql("8.0.36"), "mysql 8.4")
    assert "UPG-16" not in later and "UPG-17" in later
    assert "UPG-17" not in run(mariadb(), "mariadb 11.4")[1]


# -- UPG-18 deprecated names ---------------------------------------------------------------
def test_deprecated_replication_names():
    bundle = mysql(cnf="[mysqld]\nlog-slave-updates\nslave_parallel_workers=4\n")
    finding = fired(bundle, "mysql 8.4", "UPG-18")
    assert "log_replica_updates" in finding.summary and "replica_parallel_workers" in finding.summary


def test_current_replication_names_pass():
    assert fired(mysql(cnf="[mysqld]\nlog_replica_updates=ON\n"), "mysql 8.4", "UPG-18") is None


# -- UPG-19 cost model / UPG-20 TLS --------------------------------------------------------
def test_cost_model_from_10x_only():
    assert fired(mariadb("10.11.6"), "mariadb 11.4", "UPG-19").severity == "warning"
    assert fired(mariadb("11.4.2"), "mariadb 11.8", "UPG-19") is None


def test_tls_not_configured_before_114():
    assert fired(mariadb(variables={"have_ssl": "DISABLED"}), "mariadb 11.4", "UPG-20") is not None
    configured = mariadb(variables={"have_ssl": "YES", "ssl_cert": "/etc/mysql/server.pem"})
    assert fired(configured, "mariadb 11.4", "UPG-20") is None


# -- hostile members -----------------------------------------------------------------------
@pytest.mark.parametrize("target", ["mysql 8.4", "mysql 8.0"])
def test_malformed_members_never_error(target):
    hostile = {
        "config/option_files.json": {"copied_as": ["not", "a", "dict"]},
        "mysql/accounts.json": {"accounts": "nope"}, "mysql/table_facts.json": [1, 2],
        "mysql/schema_overview.json": {"tables_per_schema": [1], "top_tables": "x",
                                       "schemas": [{"engines": {"TokuDB": "NaN"}}, 7]},
        "mysql/plugins.json": {"name": "x"},
    }
    bundle = make_bundle(variables={"sql_mode": 12, "query_cache_size": "1e999"}, flavor="mysql",
                         version="5.7.44", files=hostile,
                         text={"config/mysqld-auto.cnf": "{\"mysql_server\": [1]}"})
    findings, outcomes = check_upgrade(bundle, parse_target(target))
    assert not [o for o in outcomes if o.status == "error"], outcomes
    assert all(f.rule.startswith("UPG-") for f in findings)
