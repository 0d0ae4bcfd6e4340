"""The diag console's statement check: what an engineer may run, and what never gets through,
however it is spelled."""

from __future__ import annotations

import pytest

from agent.session import diagaccount, sqlcheck
from agent.session.sqllex import Mode

ALLOWED = [
    "SELECT 1",
    "select * from information_schema.PROCESSLIST where COMMAND <> 'Sleep';",
    "SHOW GLOBAL STATUS LIKE 'Threads%'",
    "SHOW CREATE TABLE shop.orders",
    "SHOW ENGINE INNODB STATUS\\G",
    "SHOW ALL SLAVES STATUS",
    "SHOW FULL PROCESSLIST",
    "SHOW GLOBAL VARIABLES WHERE Variable_name LIKE 'innodb%' AND Value <> 'OFF'",
    "EXPLAIN SELECT * FROM t WHERE a = 1",
    "DESCRIBE shop.orders",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SELECT 1 UNION ALL SELECT 2 LIMIT 10",
    "SELECT update_time, `delete` FROM t WHERE note = 'DROP TABLE x; INSERT'",
    "SELECT /*+ MAX_EXECUTION_TIME(100) */ 1 -- a comment; DROP",
    "SELECT 1 # a comment; DROP",
    "SELECT @@global.max_connections, @@sql_mode",
    "SELECT sys.format_bytes(SUM(data_length)) FROM information_schema.TABLES",
    "SELECT table_name, ROUND(n_rows * 1.5) FROM mysql.innodb_table_stats ORDER BY n_rows DESC LIMIT 10",
    "SELECT COUNT(*), MAX(TIME) FROM information_schema.PROCESSLIST GROUP BY USER HAVING COUNT(*) > 1",
    "SELECT 1--1",
]


@pytest.mark.parametrize("statement", ALLOWED)
def test_read_only_statements_pass(statement):
    assert sqlcheck.check(statement).text


REFUSED = [
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("update t set a = 1", "UPDATE"),
    ("DROP TABLE t", "DROP"),
    ("SELECT 1; DROP TABLE t", "one statement"),
    ("SELECT 1 /*! ; DROP TABLE t */", "executable comments"),
    ("/*!50000 DROP TABLE t */", "executable comments"),
    ("SELECT 1 /*!50000 , LOAD_FILE('/etc/passwd') */", "executable comments"),
    ("SELECT 1 /*M!100000 , LOAD_FILE('/etc/passwd') */", "executable comments"),
    ("SELECT 1 /* outer /* inner */ , LOAD_FILE('/etc/passwd') */", "comment inside a comment"),
    ("SELECT 1 /* never closed", "unterminated"),
    ("SELECT * FROM t FOR UPDATE", "UPDATE"),
    ("SELECT * FROM t FOR SHARE", "SHARE"),
    ("SELECT * FROM t LOCK IN SHARE MODE", "LOCK"),
    ("SELECT * INTO OUTFILE '/tmp/x' FROM t", "INTO"),
    ("SELECT 1 INTO DUMPFILE '/tmp/x'", "INTO"),
    ("SELECT 1 INTO @a", "INTO"),
    ("SELECT @a := 1", ":="),
    ("SELECT 1 FROM t WHERE (@a := 1)", ":="),
    ("SELECT 1 FROM t PROCEDURE ANALYSE()", "PROCEDURE"),
    ("HANDLER mysql.user OPEN", "HANDLER"),
    ("TABLE mysql.user", "TABLE"),
    ("VALUES (1)", "VALUES"),
    ("PREPARE s FROM 'SELECT LOAD_FILE(1)'", "PREPARE"),
    ("EXECUTE s", "EXECUTE"),
    ("SET GLOBAL read_only = 0", "SET"),
    ("SET STATEMENT max_statement_time=0 FOR SELECT 1", "SET"),
    ("CALL sys.ps_setup_enable_instrument('x')", "CALL"),
    ("DO SLEEP(5)", "DO"),
    ("ANALYZE SELECT 1", "ANALYZE"),
    ("EXPLAIN UPDATE t SET a = 1", "UPDATE"),
    ("WITH x AS (SELECT 1) DELETE FROM t", "DELETE"),
    ("SHOW CREATE USER root", "parser"),
    ("SHOW BINLOG EVENTS", "BINLOG EVENTS"),
    ("SHOW GRANTS FOR root", "own account"),
    ("SELECT 1 LIMIT 3000000", "LIMIT"),
    ("(SELECT 1 LIMIT 3000000)", "LIMIT"),
    ("SELECT * FROM a.b.c", "three-part"),
    ("SELECT ?", "placeholders"),
    ("SELECT {fn NOW()}", "ODBC"),
    ("SELECT 1\0", "NUL"),
    ("SELECT '\0'", "NUL"),
    ("SELECT 'never closed", "unterminated"),
    ("SELECT `never closed", "unterminated"),
    ("\\! sh", "client command"),
    ("system sh", "client command"),
    ("source /tmp/evil.sql", "client command"),
    ("", "empty"),
]


@pytest.mark.parametrize("statement,why", REFUSED)
def test_everything_else_is_refused_with_a_one_line_reason(statement, why):
    with pytest.raises(sqlcheck.NotReadOnly) as refused:
        sqlcheck.check(statement)
    assert why in str(refused.value) and "\n" not in str(refused.value)


#: Every character Python's `\s` takes for a space that MariaDB does not (and a few more).
UNICODE_SPACES = ["\u00a0", "\u0085", "\u1680", *[chr(c) for c in range(0x2000, 0x200c)], "\u2028", "\u2029",
                  "\u202f", "\u205f", "\u3000", "\ufeff", "\u180e"]


@pytest.mark.parametrize("space", UNICODE_SPACES, ids=lambda c: f"U+{ord(c):04X}")
def test_diag_refuses_load_file_hidden_behind_a_unicode_space_comment(space):
    attack = f"SELECT 1 --{space}, LOAD_FILE('/etc/passwd') AS f FROM (SELECT 1 AS {space}) t"
    with pytest.raises(sqlcheck.NotReadOnly) as refused:
        sqlcheck.check(attack)
    assert f"U+{ord(space):04X}" in str(refused.value)


@pytest.mark.parametrize("after", [" ", "\t", "\r", "\f", "\v", "\x01"])
def test_a_real_dash_dash_comment_runs_to_the_end_of_the_line(after):
    assert sqlcheck.check(f"SELECT 1 --{after}, LOAD_FILE('/etc/passwd')").text == "SELECT 1"
    with pytest.raises(sqlcheck.NotReadOnly, match="LOAD_FILE"):
        sqlcheck.check(f"SELECT 1 --{after}\n, LOAD_FILE('/etc/passwd')")


def test_dash_dash_before_a_newline_or_text_hides_nothing():
    with pytest.raises(sqlcheck.NotReadOnly, match="LOAD_FILE"):
        sqlcheck.check("SELECT 1 --\n, LOAD_FILE('/etc/passwd')")
    with pytest.raises(sqlcheck.NotReadOnly):
        sqlcheck.check("SELECT 1 --, LOAD_FILE('/etc/passwd')")


def test_dashes_without_a_space_are_minus_signs_and_stay_apart():
    assert sqlcheck.check("SELECT 1--1").text == "SELECT 1 - - 1"
    with pytest.raises(sqlcheck.NotReadOnly, match="LOAD_FILE"):
        sqlcheck.check("SELECT 1--LOAD_FILE('/etc/passwd')")


def test_strings_follow_the_sessions_backslash_mode():
    attack = "SELECT 'a\\' , LOAD_FILE(0x2f6574632f686f73746e616d65) -- '"
    # Backslash escapes on: one string, nothing else.
    assert sqlcheck.check(attack).text == "SELECT 'a'' , LOAD_FILE(0x2f6574632f686f73746e616d65) -- '"
    # NO_BACKSLASH_ESCAPES: the server sees a call to LOAD_FILE, and so does the check.
    with pytest.raises(sqlcheck.NotReadOnly, match="LOAD_FILE"):
        sqlcheck.check(attack, Mode.from_sql_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES"))
    with pytest.raises(sqlcheck.NotReadOnly, match="one statement"):
        sqlcheck.check("SELECT '\\'; SELECT 2 -- '", Mode(backslash_escapes=False))
    # What is sent keeps the value in the session's own spelling.
    assert sqlcheck.check("SELECT 'C:\\dir'", Mode(backslash_escapes=False)).text == "SELECT 'C:\\dir'"
    assert sqlcheck.check("SELECT 'C:\\\\dir'").text == "SELECT 'C:\\\\dir'"


def test_double_quotes_follow_ansi_quotes():
    assert sqlcheck.check('SELECT "a" FROM t').text == "SELECT 'a' FROM t"
    assert sqlcheck.check('SELECT "a" FROM t', Mode.from_sql_mode("ANSI_QUOTES")).text == "SELECT `a` FROM t"
    with pytest.raises(sqlcheck.NotReadOnly, match="credentials"):
        sqlcheck.check('SELECT "authentication_string" FROM t', Mode.from_sql_mode("ANSI"))


@pytest.mark.parametrize("function", [
    "LOAD_FILE('/etc/passwd')", "SLEEP(5)", "BENCHMARK(100000000, MD5('x'))", "GET_LOCK('app', 3600)",
    "RELEASE_LOCK('app')", "IS_USED_LOCK('app')", "IS_FREE_LOCK('app')", "RELEASE_ALL_LOCKS()",
    "MASTER_POS_WAIT('f', 1)", "MASTER_GTID_WAIT('0-1-1')", "WAIT_FOR_EXECUTED_GTID_SET('x')",
    "EXTRACTVALUE(1, CONCAT(0x7e, LOAD_FILE('/etc/passwd')))", "UPDATEXML(1, CONCAT(0x7e, USER()), 1)",
    "NEXTVAL(s)", "SETVAL(s, 1)", "NAME_CONST('a', 1)", "sys.ps_setup_enable_instrument('x')",
    "shop.my_function()", "SYS_EXEC('id')", "AES_DECRYPT(a, b)",
    "JSON_TABLE('[]', '$' COLUMNS (x INT PATH '$'))",
])
@pytest.mark.parametrize("where", ["SELECT {}", "SHOW GLOBAL STATUS WHERE {}",
                                   "SHOW VARIABLES WHERE Value = {}",
                                   "SELECT 1 FROM t WHERE a IN (SELECT {})",
                                   "EXPLAIN SELECT {}", "SHOW TABLES FROM shop WHERE {}"])
def test_functions_off_the_list_are_refused_everywhere_including_show_where(function, where):
    with pytest.raises(sqlcheck.NotReadOnly):
        sqlcheck.check(where.format(function))


@pytest.mark.parametrize("statement", [
    "SELECT authentication_string FROM t",
    "SELECT HEX(authentication_string) FROM t",
    "SELECT SUBSTR(authentication_string, 2) FROM t",
    "SELECT REVERSE(authentication_string) FROM t",
    "SELECT TO_BASE64(authentication_string) FROM t",
    "SELECT CONCAT('', `authentication_string`) FROM t",
    "SELECT CAST(t.authentication_string AS CHAR) FROM t",
    "SELECT x FROM (SELECT authentication_string AS x FROM t) d",
    "SELECT Password FROM t", "SELECT UPPER(PASSWORD) FROM t",
    "SHOW STATUS WHERE authentication_string IS NOT NULL",
    "SELECT * FROM mysql.user", "SELECT * FROM MySQL.User", "SELECT User FROM `mysql`.`user`",
    "SELECT * FROM mysql.global_priv", "SELECT Priv FROM mysql.global_priv",
    "SELECT * FROM mysql.servers", "SELECT * FROM mysql.slow_log", "SELECT 1 FROM t JOIN mysql.user u",
    "SELECT (SELECT MAX(Host) FROM mysql.user)", "WITH u AS (SELECT * FROM mysql.user) SELECT * FROM u",
])
def test_credentials_are_refused_whatever_is_wrapped_around_them(statement):
    with pytest.raises(sqlcheck.NotReadOnly):
        sqlcheck.check(statement)


def test_the_text_sent_is_the_one_checked_and_has_no_comments():
    checked = sqlcheck.check("SELECT /* x */ `a``b` , \"s\" # c\nFROM t\\G")
    assert checked.text == "SELECT `a``b` , 's' FROM t" and checked.vertical
    assert sqlcheck.check("SHOW PROCESSLIST;").text == "SHOW PROCESSLIST"


GRANTS_OK = [
    "GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `d`@`%` IDENTIFIED BY PASSWORD '*0A1B' "
    "WITH MAX_USER_CONNECTIONS 4",
    "GRANT SELECT, EXECUTE ON `sys`.* TO `d`@`%`",
    "GRANT SELECT ON `performance_schema`.* TO `d`@`%`",
    "GRANT SELECT (`plugin`, `User`, `Host`) ON `mysql`.`user` TO `d`@`%`",
    "GRANT SELECT ON `mysql`.`innodb_table_stats` TO `d`@`%`",
    "GRANT SELECT, SHOW VIEW ON `shop`.* TO `d`@`%`",
    "GRANT `reader` TO `d`@`%`",
    "SET DEFAULT ROLE `reader` FOR `d`@`%`",
]


def test_the_diag_accounts_own_grants_are_not_too_much():
    assert diagaccount.excess(GRANTS_OK) is None


@pytest.mark.parametrize("line,named", [
    ("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION", "ALL PRIVILEGES"),
    ("GRANT FILE ON *.* TO `r1`", "FILE"),
    ("GRANT SUPER ON *.* TO `d`@`%`", "SUPER"),
    ("GRANT CONNECTION ADMIN ON *.* TO `d`@`%`", "CONNECTION ADMIN"),
    ("GRANT REPLICATION SLAVE ADMIN ON *.* TO `d`@`%`", "REPLICATION SLAVE ADMIN"),
    ("GRANT SELECT ON *.* TO `d`@`%`", "SELECT on *.*"),
    ("GRANT SELECT ON `mysql`.* TO `d`@`%`", "mysql.*"),
    ("GRANT SELECT ON `mysql`.`global_priv` TO `d`@`%`", "mysql.global_priv"),
    ("GRANT SELECT (`User`, `authentication_string`) ON `mysql`.`user` TO `d`@`%`", "authentication_string"),
    ("GRANT INSERT ON `shop`.* TO `d`@`%`", "INSERT"),
    ("GRANT CREATE TEMPORARY TABLES ON `shop`.* TO `d`@`%`", "CREATE TEMPORARY TABLES"),
    ("GRANT SELECT ON `shop`.* TO `d`@`%` WITH GRANT OPTION", "GRANT OPTION"),
    ("GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `d`@`%`", "EXECUTE"),
    ("GRANT `r1` TO `d`@`%` WITH ADMIN OPTION", "ADMIN OPTION"),
    ("GRANT PROXY ON ''@'%' TO `d`@`%`", "PROXY"),
    ("GRANT SYSTEM_VARIABLES_ADMIN,BACKUP_ADMIN ON *.* TO `d`@`%`", "SYSTEM_VARIABLES_ADMIN"),
    ("something else entirely", "cannot read"),
])
def test_an_account_with_more_is_named_by_what_it_has(line, named):
    assert named in (diagaccount.excess([*GRANTS_OK, line]) or "")
