"""The diag console's read-only boundary, attacked on a real MariaDB: as the account that
`mydiag grants --purpose diag` makes, and as root (refused unless the grant allowed it).

The attacks go through the real console (agent.console.Console, or its process with the
connection on a pipe, as the session host starts it); what they tried to do is then checked
on the server as root: no file read or written, no lock held, no hash shown, no row more
than the console shows."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.session.console import EXIT_REFUSED, Console
from agent.session.diagsql import Ledger
from collectors.mysql.session import ConnectSpec
from tests.serverkit import ROOT

pytestmark = pytest.mark.mysql

LOCK_NAME = "shop_app_lock"
UNICODE_SPACES = ["\u00a0", "\u0085", "\u1680", *[chr(c) for c in range(0x2000, 0x200c)], "\u2028", "\u2029",
                  "\u202f", "\u205f", "\u3000", "\ufeff"]


@pytest.fixture(scope="module")
def diag_account(server):
    """The account exactly as `mydiag grants --purpose diag` prints it, with a fresh password."""
    user, password = f"diag_{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    printed = subprocess.run([sys.executable, "-m", "agent.cli", "grants", "--purpose", "diag", "--flavor",
                              "mariadb", "--user", user, "--host", "%"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    statements = [line.replace("<choose a password>", password).rstrip(";")
                  for line in printed.splitlines() if line and not line.startswith("--")]
    assert any("WITH MAX_USER_CONNECTIONS" in s for s in statements)
    server.sql(*statements)
    yield ConnectSpec(host=server.host, port=server.port, user=user, password=password)
    server.sql(f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    """A world-readable file on the database host whose content must never reach the engineer."""
    path = tmp_path_factory.mktemp("dbhost") / "secret.txt"
    token = secrets.token_hex(16)
    path.write_text(token + "\n")
    path.chmod(0o644)
    path.parent.chmod(0o755)
    return path, token


def root_spec(server) -> ConnectSpec:
    return ConnectSpec(host=server.host, port=server.port, user=server.user, password=server.password)


@pytest.fixture(params=["diag", "root-allowed"])
def console(request, server, diag_account, tmp_path):
    """A console as each account that may run one: the diag account, and root where the
    customer passed --allow-privileged-account (only the console's own checks hold then)."""
    out: list = []
    spec = diag_account if request.param == "diag" else root_spec(server)
    made = Console(spec, out.append, tmp_path, allow_privileged=request.param == "root-allowed")
    made.lines = out
    assert made.admit() is None
    yield made
    made.close()


def run(console: Console, line: str) -> str:
    console.lines.clear()
    console.run_line(line)
    return "".join(console.lines)


#: Runs the console as `-m agent.session.console` does, then reports its own peak memory on stderr.
#: VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest
#: process would report the parent's size.
MEASURED = ("import atexit, re, runpy, sys; atexit.register(lambda: sys.stderr.write("
            "'peak_kib=' + re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)"
            " + '\\n')); "
            "runpy.run_module('agent.session.console', run_name='__main__', alter_sys=True)")


def console_process(spec: ConnectSpec, workdir: Path, command: str, *, allow: bool = False,
                    timeout: float = 60, measure: bool = False) -> subprocess.CompletedProcess:
    """`python -m agent.session.console` as the session host starts it: settings on an inherited pipe."""
    read, write = os.pipe()
    data = {"host": spec.host, "port": spec.port, "user": spec.user, "password": spec.password}
    if allow:
        data["allow_privileged_account"] = True
    os.write(write, json.dumps(data).encode())
    os.close(write)
    try:
        program = ["-c", MEASURED] if measure else ["-m", "agent.session.console"]
        return subprocess.run([sys.executable, *program, "--spec-fd", str(read), "--command",
                               command], pass_fds=[read], cwd=workdir, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(read)


# -- the account: the server holds the line first -------------------------------------------


def test_the_diag_account_cannot_read_files_write_files_or_read_the_accounts(server, diag_account,
                                                                             secret_file, tmp_path):
    """Whatever the console's checks let through, the server itself refuses these."""
    import pymysql

    path, token = secret_file
    conn = pymysql.connect(host=diag_account.host, port=diag_account.port, user=diag_account.user,
                           password=diag_account.password, autocommit=True, ssl_disabled=True)
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT LOAD_FILE('{path}')")
        assert cur.fetchone() == (None,)
        for statement in (f"SELECT 1 INTO OUTFILE '{tmp_path / 'out.txt'}'", "SELECT * FROM mysql.user",
                          "SELECT * FROM mysql.global_priv", "CREATE TABLE performance_schema.x (a INT)",
                          "SET GLOBAL max_connections = 10", "KILL 1"):
            with pytest.raises(pymysql.err.MySQLError):
                cur.execute(statement)
    assert not (tmp_path / "out.txt").exists()
    grants = " ".join(r[0] for r in server.sql(f"SHOW GRANTS FOR '{diag_account.user}'@'%'"))
    assert "MAX_USER_CONNECTIONS 4" in grants and "FILE" not in grants and "`mysql`" not in grants


def test_the_console_starts_as_the_diag_account_and_reads_what_diagnostics_need(diag_account, tmp_path):
    out: list = []
    console = Console(diag_account, out.append, tmp_path)
    try:
        assert console.admit() is None
        for line in ("sql SHOW GLOBAL STATUS LIKE 'Uptime'", "sql SHOW FULL PROCESSLIST",
                     "sql SELECT COUNT(*) AS n FROM performance_schema.threads",
                     "sql SELECT sys.format_bytes(1048576) AS mb", "sql SHOW ENGINE INNODB STATUS\\G",
                     "sql SELECT @@max_statement_time AS limit_s, @@tx_read_only AS ro, "
                     "@@sql_select_limit AS row_cap"):
            out.clear()
            assert console.run_line(line) == 0, "".join(out)
        assert "| 10.0    | 1  | 1001    |" in "".join(out)
    finally:
        console.close()


def test_root_is_refused_at_start_unless_the_grant_allowed_it(server, tmp_path):
    refused = console_process(root_spec(server), tmp_path, "sql SELECT 1 AS one")
    assert refused.returncode == EXIT_REFUSED
    line = refused.stdout.strip()
    assert "\n" not in line and "ALL PRIVILEGES on *.*" in line
    assert "mydiag grants --purpose diag" in line and "--allow-privileged-account" in line
    assert "| 1 " not in refused.stdout and not refused.stderr
    allowed = console_process(root_spec(server), tmp_path, "sql SELECT 1 AS one", allow=True)
    assert allowed.returncode == 0 and "| 1   |" in allowed.stdout
    assert "warning: the account root@localhost has ALL PRIVILEGES" in allowed.stdout


def test_an_account_with_file_through_its_default_role_is_refused(server, diag_account, tmp_path):
    role = f"r_{secrets.token_hex(3)}"
    server.sql(f"CREATE ROLE {role}", f"GRANT FILE ON *.* TO {role}",
               f"GRANT {role} TO '{diag_account.user}'@'%'",
               f"SET DEFAULT ROLE {role} FOR '{diag_account.user}'@'%'")
    try:
        refused = console_process(diag_account, tmp_path, "sql SELECT 1")
        assert refused.returncode == EXIT_REFUSED and "FILE on *.*" in refused.stdout
    finally:
        server.sql(f"SET DEFAULT ROLE NONE FOR '{diag_account.user}'@'%'", f"DROP ROLE {role}")


# -- the lexer tricks ---------------------------------------------------------------------------


@pytest.mark.parametrize("space", UNICODE_SPACES, ids=lambda c: f"U+{ord(c):04X}")
def test_diag_refuses_load_file_hidden_behind_a_unicode_space_comment(console, secret_file, space):
    path, token = secret_file
    shown = run(console, f"sql SELECT 1 --{space}, LOAD_FILE('{path}') AS f FROM (SELECT 1 AS {space}) t")
    assert shown.startswith("refused:") and token not in shown


def test_diag_writes_no_file_whatever_the_spelling(console, tmp_path):
    target = tmp_path / "written.txt"
    for statement in (f"SELECT 1 INTO OUTFILE '{target}'", f"SELECT 1 INTO DUMPFILE '{target}'",
                      f"SELECT 1 --\u00a0, 2 INTO OUTFILE '{target}' -- \u00a0",
                      f"SELECT 1 /*!50000 INTO OUTFILE '{target}' */",
                      f"SELECT 1 /*M! INTO OUTFILE '{target}' */",
                      "SELECT 1 INTO @x", "SELECT @x := 1"):
        assert run(console, f"sql {statement}").startswith("refused:"), statement
    assert not target.exists()


def test_named_locks_sleep_and_benchmark_never_run_even_in_show_where(console, server):
    began = time.monotonic()
    for statement in (f"SELECT GET_LOCK('{LOCK_NAME}', 0)", f"SHOW STATUS WHERE GET_LOCK('{LOCK_NAME}', 0)",
                      f"SHOW VARIABLES WHERE Variable_name = 'x' OR GET_LOCK('{LOCK_NAME}', 0)",
                      f"SHOW TABLES FROM information_schema WHERE GET_LOCK('{LOCK_NAME}', 0)",
                      f"SELECT 1 --\u00a0, GET_LOCK('{LOCK_NAME}', 0) FROM (SELECT 1 AS \u00a0) t",
                      "SELECT SLEEP(5)", "SHOW STATUS WHERE SLEEP(5)", "SHOW VARIABLES LIKE 'x' OR SLEEP(5)",
                      "SELECT BENCHMARK(500000000, MD5('x'))", "SHOW STATUS WHERE BENCHMARK(500000000, 1)"):
        assert run(console, f"sql {statement}").startswith("refused:"), statement
    assert time.monotonic() - began < 4
    assert server.sql(f"SELECT IS_USED_LOCK('{LOCK_NAME}')") == [(None,)]


def test_error_messages_exfiltrate_nothing(console, secret_file):
    path, token = secret_file
    for statement in (f"SHOW STATUS WHERE EXTRACTVALUE(1, CONCAT(0x7e, LOAD_FILE('{path}')))",
                      f"SELECT EXTRACTVALUE(1, CONCAT(0x7e, LOAD_FILE('{path}')))",
                      f"SELECT UPDATEXML(1, CONCAT(0x7e, LOAD_FILE('{path}')), 1)",
                      f"SHOW VARIABLES WHERE UPDATEXML(1, CONCAT(0x7e, (SELECT LOAD_FILE('{path}'))), 1)"):
        shown = run(console, f"sql {statement}")
        assert shown.startswith("refused:") and token not in shown, statement


def test_credentials_never_show_whatever_function_is_around_them(console, server):
    if not server.sql("SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'"):
        server.sql("INSTALL SONAME 'auth_ed25519'")
    user, password = f"app_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    server.sql(f"CREATE USER '{user}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{password}')")
    try:
        auth = server.sql(f"SELECT authentication_string FROM mysql.user WHERE User = '{user}'")[0][0]
        assert auth
        for statement in ("SELECT HEX(authentication_string) FROM mysql.user",
                          "SELECT SUBSTR(authentication_string, 2) AS s FROM mysql.user",
                          "SELECT REVERSE(authentication_string) FROM mysql.user",
                          "SELECT TO_BASE64(authentication_string) FROM mysql.user",
                          "SELECT CONCAT('x', authentication_string) FROM mysql.user",
                          "SELECT CAST(authentication_string AS BINARY) FROM mysql.user",
                          "SELECT a FROM (SELECT authentication_string AS a FROM mysql.user) t",
                          "SELECT * FROM mysql.user", "SELECT * FROM mysql.global_priv",
                          "SELECT JSON_EXTRACT(Priv, '$.authentication_string') FROM mysql.global_priv",
                          "SELECT 1 --\u00a0, Priv FROM mysql.global_priv", "TABLE mysql.global_priv",
                          f"SHOW GRANTS FOR '{user}'@'%'", f"SHOW CREATE USER '{user}'@'%'"):
            shown = run(console, f"sql {statement}")
            assert shown.startswith("refused:"), statement
            assert auth not in shown and auth[::-1] not in shown and auth.encode().hex() not in shown.lower()
    finally:
        server.sql(f"DROP USER '{user}'@'%'")


def test_the_sessions_own_sql_mode_decides_how_strings_and_quotes_read(server, diag_account, secret_file,
                                                                       tmp_path):
    path, token = secret_file
    hex_path = "0x" + str(path).encode().hex()
    before = server.sql("SELECT @@GLOBAL.sql_mode")[0][0]
    out: list = []
    try:
        server.sql(f"SET GLOBAL sql_mode = CONCAT('{before}', ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES')")
        console = Console(diag_account, out.append, tmp_path)
        try:
            # The old lexer took `\'` for an escaped quote; this session does not.
            console.run_line(f"sql SELECT 'a\\' AS s, LOAD_FILE({hex_path}) AS f -- '")
            assert "".join(out).startswith("refused:") and token not in "".join(out)
            out.clear()
            assert console.run_line("sql SELECT 'C:\\dir' AS p, \"x\" AS q FROM (SELECT 5 AS x) t") == 0
            assert "| C:\\dir | 5 |" in "".join(out), "".join(out)
        finally:
            console.close()
    finally:
        server.sql(f"SET GLOBAL sql_mode = '{before}'")
    out.clear()
    console = Console(diag_account, out.append, tmp_path)
    try:
        assert console.run_line("sql SELECT 'C:\\\\dir' AS p, \"x\" AS q") == 0
        assert "| C:\\dir | x |" in "".join(out), "".join(out)
    finally:
        console.close()


def test_statements_that_are_not_reads_are_refused(console):
    for statement in ("HANDLER mysql.user OPEN", "TABLE mysql.user", "VALUES (1)",
                      "PREPARE s FROM 'SELECT 1'", "EXECUTE s", "SELECT 1 FROM DUAL PROCEDURE ANALYSE()",
                      "SELECT * FROM mysql.db FOR UPDATE", "SELECT * FROM mysql.db LOCK IN SHARE MODE",
                      "SELECT 1; SELECT LOAD_FILE('/etc/hostname')", "SELECT 1 ; ; SELECT 2", "DO SLEEP(3)",
                      "SET SESSION sql_select_limit = DEFAULT",
                      "SET STATEMENT max_statement_time=0 FOR SELECT 1"):
        assert run(console, f"sql {statement}").startswith("refused:"), statement


def test_a_semicolon_inside_a_string_stays_inside_it(console):
    began = time.monotonic()
    for statement, value in (("SELECT '\\'; DO SLEEP(3) -- ' AS s", "'; DO SLEEP(3) -- "),
                             ('SELECT "\\"; DO SLEEP(3) -- " AS s', '"; DO SLEEP(3) -- '),
                             ("SELECT 'a'';DO SLEEP(3);' AS s", "a';DO SLEEP(3);")):
        shown = run(console, f"sql {statement}")
        assert f"| {value} |" in shown, shown
    assert time.monotonic() - began < 3


# -- what one statement, and one session, may cost ------------------------------------------


CROSS_JOIN = ("SELECT a.ID, b.ID, c.ID FROM information_schema.COLLATIONS a, information_schema.COLLATIONS b,"
              " information_schema.COLLATIONS c")


def test_the_server_sends_at_most_one_row_more_than_the_console_shows(diag_account, tmp_path):
    out: list = []
    console = Console(diag_account, out.append, tmp_path)
    try:
        def rows_sent() -> int:
            return int(console.query("SHOW SESSION STATUS LIKE 'Rows_sent'")[0]["Value"])

        first, second = rows_sent(), rows_sent()
        assert console.run_line(f"sql {CROSS_JOIN}") == 0
        sent = rows_sent() - second - (second - first)
        assert sent == 1001, sent
        assert "1000 rows shown; the server has more" in "".join(out)
        out.clear()
        assert console.run_line("sql SHOW GLOBAL VARIABLES") == 0
        assert console.run_line(f"sql {CROSS_JOIN} LIMIT 3000000") == 1
    finally:
        console.close()


def test_a_huge_result_keeps_the_console_small(diag_account, tmp_path):
    began = time.monotonic()
    shown = console_process(diag_account, tmp_path, f"sql {CROSS_JOIN}", measure=True)
    took = time.monotonic() - began
    peak_mib = int(shown.stderr.rsplit("peak_kib=", 1)[1]) / 1024
    assert shown.returncode == 0 and "1000 rows shown; the server has more" in shown.stdout
    assert peak_mib < 120, f"the console peaked at {peak_mib:.0f} MiB"
    assert took < 8


WIDE = ("SELECT REPEAT('a', {n}) AS wide, 'end' AS tail FROM information_schema.COLLATIONS a,"
        " information_schema.COLLATIONS b")


@pytest.mark.parametrize("cell", [1 << 20, 16_000_000], ids=["1MiB-cells", "16MB-cells"])
def test_wide_cells_keep_the_console_small_whatever_their_size(diag_account, tmp_path, cell):
    """The row cap does not bound bytes: 1001 cells of 16 MB (max_allowed_packet) would be
    16 GB. Cells are cut as they arrive and a result stops being read past its byte limit."""
    began = time.monotonic()
    shown = console_process(diag_account, tmp_path, f"sql {WIDE.format(n=cell)}", measure=True)
    took = time.monotonic() - began
    peak_mib = int(shown.stderr.rsplit("peak_kib=", 1)[1]) / 1024
    assert shown.returncode == 0, shown.stderr
    assert "the console stopped reading this result after 64 MiB" in shown.stdout
    assert "the server has more" in shown.stdout and "| " + "a" * 200 + "… | end  |" in shown.stdout
    assert peak_mib < 160, f"the console peaked at {peak_mib:.0f} MiB"
    assert took < 20


def test_wide_cells_under_the_byte_limit_show_every_row_and_the_next_statement_runs(diag_account, tmp_path):
    out: list = []
    console = Console(diag_account, out.append, tmp_path)
    try:
        assert console.run_line(f"sql {WIDE.format(n=10_000)}") == 0
        shown = "".join(out)
        assert "1000 rows shown; the server has more" in shown and "stopped reading" not in shown
        out.clear()
        assert console.run_line(f"sql {WIDE.format(n=1 << 20)}") == 0
        assert "stopped reading" in "".join(out)
        out.clear()
        # A new connection for the next statement, with the row cap again.
        assert console.run_line(f"sql {CROSS_JOIN}") == 0
        assert "1000 rows shown; the server has more" in "".join(out)
    finally:
        console.close()


def test_one_statement_at_a_time_per_session(diag_account, tmp_path):
    out: list = []
    console = Console(diag_account, out.append, tmp_path)
    try:
        console.ledger.wait = 0.3
        with Ledger(tmp_path).statement():  # another channel of the session, mid-statement
            assert console.run_line("sql SELECT 1") == 1
        assert "another channel of this session is still running a statement" in "".join(out)
        assert console.run_line("sql SELECT 1") == 0
    finally:
        console.close()


def test_a_session_that_spent_its_statement_time_is_refused_on_every_channel(diag_account, tmp_path):
    out: list = []
    one = Console(diag_account, out.append, tmp_path, budget=0.001)
    two = Console(diag_account, out.append, tmp_path, budget=0.001)
    try:
        assert one.run_line("sql SELECT COUNT(*) FROM information_schema.COLLATIONS a, "
                            "information_schema.COLLATIONS b") == 0
        assert two.run_line("sql SELECT 2") == 1
        assert "this session has used its 0.001s of statement time" in "".join(out)
    finally:
        one.close()
        two.close()


@pytest.mark.server
def test_diag_channels_over_the_cap_are_refused(server, diag_account, tmp_path):
    from agent.session.channel import MAX_DIAG_CHANNELS
    from tests.sessionkit import Grant, make_gateway, wait_until

    gateway = make_gateway(tmp_path / "gateway")
    consoles: list = []
    try:
        gateway.engineer("alice")
        defaults = server.defaults_file(tmp_path, diag_account.user, diag_account.password)
        grant = Grant(gateway, gateway.server.ticket(), tmp_path / "home", mode="diag",
                      extra=["--defaults-file", str(defaults)]).ready()
        try:
            for _ in range(MAX_DIAG_CHANNELS):
                consoles.append(gateway.ssh_popen("alice", grant.id))
                grant.wait_for("joined, interactive")
            over = gateway.ssh("alice", grant.id, "sql SELECT 1")
            assert over.returncode == 1
            assert f"this session already runs {MAX_DIAG_CHANNELS} diag consoles" in over.stderr
            consoles[0].stdin.close()
            consoles[0].wait(15)
            wait_until(lambda: "| 42 |" in gateway.ssh("alice", grant.id, "sql SELECT 40+2 AS x").stdout,
                       timeout=15, step=0.3)
        finally:
            for process in consoles:
                if process.poll() is None:
                    process.kill()
                    process.wait(5)
            grant.stop()
    finally:
        gateway.server.stop()
