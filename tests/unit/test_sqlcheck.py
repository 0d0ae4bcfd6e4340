"""The diag console's read-only check: what an engineer may run, and what never gets through."""

from __future__ import annotations

import pytest

from agent.session import sqlcheck

ALLOWED = [
    "SELECT 1",
    "select * from information_schema.PROCESSLIST where COMMAND <> 'Sleep';",
    "SHOW GLOBAL STATUS LIKE 'Threads%'",
    "SHOW CREATE TABLE shop.orders",
    "SHOW ENGINE INNODB STATUS\\G",
    "EXPLAIN SELECT * FROM t WHERE a = 1",
    "DESCRIBE shop.orders",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SELECT update_time, `delete` FROM t WHERE note = 'DROP TABLE x; INSERT'",
    "SELECT /*+ MAX_EXECUTION_TIME(100) */ 1 -- a comment; DROP",
]
REFUSED = [
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("update t set a = 1", "UPDATE"),
    ("DROP TABLE t", "DROP"),
    ("CREATE TABLE x (a int)", "CREATE"),
    ("SELECT 1; DROP TABLE t", "one statement"),
    ("SELECT 1 /*! ; DROP TABLE t */", "executable comments"),
    ("/*!50000 DROP TABLE t */", "executable comments"),
    ("SELECT * FROM t FOR UPDATE", "UPDATE"),
    ("SELECT * FROM t LOCK IN SHARE MODE", "LOCK"),
    ("SELECT * INTO OUTFILE '/tmp/x' FROM t", "INTO"),
    ("SELECT LOAD_FILE('/etc/shadow')", "LOAD_FILE"),
    ("SELECT SLEEP (10)", "SLEEP"),
    ("SELECT GET_LOCK('x', 10)", "GET_LOCK"),
    ("WITH x AS (SELECT 1) DELETE FROM t", "DELETE"),
    ("EXPLAIN UPDATE t SET a = 1", "UPDATE"),
    ("SET GLOBAL read_only = 0", "SET"),
    ("\\! sh", "client command"),
    ("system sh", "client command"),
    ("source /tmp/evil.sql", "client command"),
    ("CALL sys.ps_setup_enable_instrument('x')", "CALL"),
    ("", "empty"),
]


@pytest.mark.parametrize("statement", ALLOWED)
def test_read_only_statements_pass(statement):
    assert sqlcheck.check(statement)


@pytest.mark.parametrize("statement,why", REFUSED)
def test_everything_else_is_refused_with_a_reason(statement, why):
    with pytest.raises(sqlcheck.NotReadOnly) as refused:
        sqlcheck.check(statement)
    assert why in str(refused.value)


def test_the_statement_run_has_no_terminator():
    assert sqlcheck.check("SHOW PROCESSLIST;") == "SHOW PROCESSLIST"
    assert sqlcheck.check("SELECT 1\\G") == "SELECT 1" and sqlcheck.vertical("SELECT 1\\G")
