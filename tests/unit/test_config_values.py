"""Configured versus running values: the spellings that mean the same thing, and those that don't."""

from __future__ import annotations

import pytest

from collectors.config.effective import configured_settings
from collectors.config.values import same, to_bytes, variable_name
from collectors.mysql import optionfile

RUNNING = {"innodb_buffer_pool_size": "134217728", "skip_name_resolve": "ON", "log_bin": "ON",
           "key_buffer_size": "16777216", "max_connections": "151", "userstat": "OFF",
           "slow_query_log": "OFF"}


@pytest.mark.parametrize("option, expected", [
    ("innodb-buffer-pool-size", ("innodb_buffer_pool_size", None)),
    ("loose-max_connections", ("max_connections", None)),
    ("skip-name-resolve", ("skip_name_resolve", None)),
    ("skip-log-bin", ("log_bin", "OFF")),
    ("disable-log-bin", ("log_bin", "OFF")),
    ("enable-slow-query-log", ("slow_query_log", "ON")),
    ("key_buffer", ("key_buffer_size", None)),
    ("user", (None, None)),
])
def test_option_names_map_to_server_variables(option, expected):
    assert variable_name(option, RUNNING) == expected


@pytest.mark.parametrize("configured, running", [
    ("128M", "134217728"), ("1G", "1073741824"), ("1g", "1073741824"), ("512K", "524288"),
    (None, "ON"), ("binlog", "ON"), ("1", "ON"), ("on", "ON"), ("TRUE", "1"), ("0", "OFF"),
    ("0.5", "0.500000"), ("10", "10.000000"), ("O_DIRECT", "o_direct"),
    ("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", "NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES"),
    ("index_merge=off", "index_merge=off,index_merge_union=on"),
    ("/var/lib/mysql", "/var/lib/mysql/"), ("error.log", "/var/lib/mysql/error.log"),
    ("./error.log", "./error.log"),
])
def test_same_meaning_is_not_a_difference(configured, running):
    assert same(configured, running)


@pytest.mark.parametrize("configured, running", [
    ("77", "99"), ("64M", "134217728"), ("OFF", "ON"), (None, "OFF"),
    ("STRICT_TRANS_TABLES", "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"),
    ("index_merge=on", "index_merge=off,index_merge_union=on"), ("/data/a", "/data/b"),
])
def test_different_values_are_a_difference(configured, running):
    assert not same(configured, running)


def test_sizes():
    assert to_bytes("2M") == 2 << 20 and to_bytes("65536") == 65536 and to_bytes("1.5K") == 1536
    assert to_bytes("lots") is None and to_bytes("") is None


def test_command_line_comes_after_the_files_and_meta_options_are_left_out(tmp_path):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nport = 1\n[mysqld]\nport = 3306\n[mysqld-10.11]\nmax_connections = 5\n")
    parsed = optionfile.read([str(cnf)])
    settings = configured_settings(parsed, ["mysqld", "mysqld-10.11"],
                                   ["mariadbd", f"--defaults-file={cnf}", "--port=3307", "-v"])
    assert settings == [("port", "3306", f"{cnf}:4"), ("max_connections", "5", f"{cnf}:6"),
                        ("port", "3307", "command line")]
