"""The flavor object and the statement catalogue: the switch points of each flavor."""

from __future__ import annotations

import pytest

from collectors.mysql import sql
from collectors.mysql.flavor import Flavor


@pytest.mark.parametrize(
    "version, comment, name, numbers",
    [
        ("10.11.19-MariaDB-0+deb12u1", "Debian 12", "mariadb", (10, 11, 19)),
        ("5.5.5-10.4.32-MariaDB", "mariadb.org binary distribution", "mariadb", (10, 4, 32)),
        ("8.0.36", "MySQL Community Server - GPL", "mysql", (8, 0, 36)),
        ("8.0.36-28", "Percona Server (GPL), Release 28", "percona", (8, 0, 36)),
        ("5.7.44-log", "MySQL Community Server (GPL)", "mysql", (5, 7, 44)),
    ],
)
def test_flavor_is_parsed_from_version_and_comment(version, comment, name, numbers):
    flavor = Flavor.parse(version, comment)
    assert (flavor.name, flavor.version) == (name, numbers)


@pytest.mark.parametrize(
    "flavor, replica, binlog",
    [
        (Flavor("mysql", (5, 7, 44)), "SHOW SLAVE STATUS", "SHOW MASTER STATUS"),
        (Flavor("mysql", (8, 0, 21)), "SHOW SLAVE STATUS", "SHOW MASTER STATUS"),
        (Flavor("mysql", (8, 0, 22)), "SHOW REPLICA STATUS", "SHOW MASTER STATUS"),
        (Flavor("mysql", (8, 4, 0)), "SHOW REPLICA STATUS", "SHOW BINARY LOG STATUS"),
        (Flavor("percona", (8, 0, 36)), "SHOW REPLICA STATUS", "SHOW MASTER STATUS"),
        (Flavor("mariadb", (10, 5, 0)), "SHOW ALL SLAVES STATUS", "SHOW MASTER STATUS"),
        (Flavor("mariadb", (10, 5, 1)), "SHOW ALL REPLICAS STATUS", "SHOW MASTER STATUS"),
        (Flavor("mariadb", (11, 4, 2)), "SHOW ALL REPLICAS STATUS", "SHOW BINLOG STATUS"),
    ],
)
def test_replication_statements_switch_at_the_documented_versions(flavor, replica, binlog):
    assert sql.REPLICA_STATUS.sql(flavor) == replica
    assert sql.BINLOG_STATUS.sql(flavor) == binlog


def test_lock_waits_come_from_performance_schema_on_mysql_8_only():
    assert "data_lock_waits" in sql.LOCK_WAITS.sql(Flavor("mysql", (8, 0, 30)))
    assert "INNODB_LOCK_WAITS" in sql.LOCK_WAITS.sql(Flavor("mysql", (5, 7, 40)))
    assert "INNODB_LOCK_WAITS" in sql.LOCK_WAITS.sql(Flavor("mariadb", (10, 11, 0)))


def test_no_statement_reads_a_password_column_or_takes_a_lock():
    flavors = [Flavor("mysql", (8, 0, 36)), Flavor("mariadb", (10, 11, 0)),
               Flavor("mysql", (5, 7, 44))]
    statements = [v for v in vars(sql).values() if isinstance(v, sql.Statement)]
    assert len(statements) > 20
    for stmt in statements:
        for flavor in flavors:
            text = stmt.sql(flavor).upper()
            assert "AUTHENTICATION_STRING" not in text and "PASSWORD," not in text
            assert not text.startswith(("FLUSH", "LOCK", "SHOW TABLE STATUS", "ANALYZE"))
            assert "FOR UPDATE" not in text and "LOCK IN SHARE MODE" not in text
