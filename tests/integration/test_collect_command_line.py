"""The DBA at the command line, on an 80-column terminal: a server that is down or refuses the
password is one row and one line in the server's own words; --ask-pass needs a terminal;
--output must be a writable directory; `inspect` shows every path whole."""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import pytest

from tests.conftest import Target, _start
from tests.helpers import NOBODY, ROOT, by_name, collect_json, mydiag, nobody_env, nobody_python
from tests.servers import free_port

NARROW = dict(os.environ, COLUMNS="80")


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A private server with a password account `diag` (the password made here)."""
    instance = _start(tmp_path_factory, "cli")
    password = secrets.token_urlsafe(12)
    for host in ("%", "localhost"):
        instance.sql(f"CREATE USER 'diag'@'{host}' IDENTIFIED BY '{password}'")
    yield Target("127.0.0.1", instance.port, "diag", password, instance)
    instance.stop()


def _rows(table: str, after: str, key: int, glue: str = " ") -> List[List[str]]:
    """The body rows of the box table whose header line holds `after`: a row's wrapped lines
    joined with `glue`, cell by cell; a new row starts where cell `key` is not empty."""
    rows: List[List[str]] = []
    inside = False
    for line in table.splitlines():
        if line.startswith("┃") and after in line:
            inside = True
        elif inside and line.startswith("└"):
            break
        elif inside and line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            if cells[key] or not rows:
                rows.append(cells)
            else:
                rows[-1] = [(a + glue + b).strip() if b else a for a, b in zip(rows[-1], cells)]
    return rows


def _folded_row(stdout: str) -> List[List[str]]:
    return [r for r in _rows(stdout, "reason and fix", 1) if r[1] == "not run"]


def _mysql_count(summary: dict) -> int:
    error = summary["connect_error"]
    return sum(1 for c in summary["collectors"] if c["status"] == "failed" and c["error"] == error)


@pytest.mark.parametrize("where", ["tcp", "socket"])
def test_a_server_that_is_down_is_one_row_and_one_line_in_the_os_words(tmp_path, where):
    if where == "tcp":
        port = free_port()
        target = ["--host", "127.0.0.1", "--port", str(port)]
        words, fix = "(Connection refused)", "--host and --port"
    else:
        target = ["--socket", str(tmp_path / "no-such.sock")]
        words, fix = "(No such file or directory)", "--socket"
    args = [*target, "--user", "root", "--samples", "1", "--profile", "quick",
            "--output", str(tmp_path), "--allow-findings"]
    done = mydiag("collect", *args, env=NARROW)
    assert done.returncode == 4, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "cannot connect to 'root'" in lines[0], lines
    assert "Traceback" not in done.stdout + done.stderr
    # One row of the table says it; before, each of the MySQL collectors did (about 130 lines).
    row = _folded_row(done.stdout)
    assert len(row) == 1 and re.fullmatch(r"\d+ MySQL collectors", row[0][0]), done.stdout
    assert done.stdout.count("cannot connect") == 1
    assert all(len(line) <= 80 for line in done.stdout.splitlines() if line[:1] in "┏┃┡│└")
    reason = row[0][4]
    assert words in reason and "fix: start the server" in reason and fix in reason, reason
    _, summary = collect_json(*args)
    folded = int(row[0][0].split()[0])
    assert folded == _mysql_count(summary) >= 5  # the JSON keeps one entry per collector
    assert words in summary["connect_error"]


def test_what_looks_for_the_absent_server_on_this_host_is_one_row_too(tmp_path):
    """The standard profile also looks for the server's process, settings and slow log on
    this host: with nothing on that port, that is one more fact, told once."""
    port = free_port()
    done = mydiag("collect", "--host", "127.0.0.1", "--port", str(port), "--user", "root",
                  "--samples", "1", "--output", str(tmp_path), "--allow-findings", env=NARROW)
    assert done.returncode == 4, done.stderr
    rows = _rows(done.stdout, "reason and fix", 1)
    said = [r for r in rows if f"port {port} here" in r[4]]
    skipped = [r for r in said if r[1] == "skipped"]
    assert len(skipped) == 1 and re.fullmatch(r"\d+ collectors", skipped[0][0]), done.stdout
    assert "os.mysqld_process" in skipped[0][4] and "fix: start the server" in skipped[0][4]
    _, summary = collect_json("--host", "127.0.0.1", "--port", str(port), "--user", "root",
                              "--samples", "1", "--output", str(tmp_path), "--allow-findings")
    assert by_name(summary)["os.mysqld_process"]["status"] == "skipped"  # the JSON keeps each


def test_a_wrong_password_is_one_row_and_the_servers_own_words(own, tmp_path):
    wrong = secrets.token_urlsafe(16)
    defaults = own.defaults_file(tmp_path, "diag", wrong)
    args = ["--defaults-file", str(defaults), "--samples", "1", "--profile", "quick",
            "--output", str(tmp_path), "--allow-findings"]
    done = mydiag("collect", *args, env=NARROW)
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.search(r"Access denied for user 'diag'@'[^']+' \(using password: YES\)", lines[0])
    row = _folded_row(done.stdout)
    assert len(row) == 1 and "MySQL collectors" in row[0][0]
    assert done.stdout.count("access denied for") == 1
    reason = row[0][4]
    assert "(using password: YES)" in reason and "fix: check the user and password" in reason
    assert "mydiag grants" in reason
    assert wrong not in done.stdout + done.stderr


def test_the_right_password_still_collects(own, tmp_path):
    defaults = own.defaults_file(tmp_path)
    done, summary = collect_json("--defaults-file", str(defaults), "--samples", "1",
                                 "--profile", "quick", "--output", str(tmp_path),
                                 "--allow-findings")
    assert done.returncode in (0, 3) and summary["connect_error"] is None, done.stderr
    assert by_name(summary)["mysql.identity"]["status"] == "ok"


@pytest.mark.parametrize("stdin", ["empty pipe", "piped password", "/dev/null"])
def test_ask_pass_without_a_terminal_is_a_usage_error(own, tmp_path, stdin):
    typed = secrets.token_urlsafe(10)
    feed = {"empty pipe": "", "piped password": typed + "\n", "/dev/null": None}[stdin]
    # A new session has no controlling terminal: cron, a service, a pipe from ssh.
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "collect", "--ask-pass", "--host", "127.0.0.1",
         "--port", str(own.port), "--user", "diag", "--output", str(tmp_path)],
        cwd=ROOT, input=feed, stdin=subprocess.DEVNULL if feed is None else None,
        capture_output=True, text=True, timeout=60, start_new_session=True,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ask-pass needs a terminal" in lines[0], lines
    assert "EOFError" not in done.stderr and "Traceback" not in done.stderr
    assert typed not in done.stdout + done.stderr
    assert done.stdout == "" and not list(tmp_path.glob("*.tar.zst"))


def test_ask_pass_at_a_terminal_reads_the_password_and_does_not_echo_it(own, tmp_path):
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "agent.cli", "collect", "-p", "--json",
                                  "--host", "127.0.0.1", "--port", str(own.port), "--user", "diag",
                                  "--samples", "1", "--profile", "quick", "--allow-findings",
                                  "--output", str(tmp_path)])
    seen = _read_until(fd, b"Password for 'diag'", 60)
    os.write(fd, own.password.encode() + b"\n")
    seen += _read_until(fd, None, 120)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.WEXITSTATUS(status) in (0, 3), seen
    text = seen.decode(errors="replace")
    assert own.password not in text
    summary = json.loads(text[text.index("{"):text.rindex("}") + 1])
    assert summary["connect_error"] is None and summary["bundle"]


def _read_until(fd: int, marker, timeout: float) -> bytes:
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline and (marker is None or marker not in data):
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    return data


# -- --output ------------------------------------------------------------------------------------


def _refused(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 6, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines
    assert done.stdout == "", "refused before anything was collected"


def _collect_into(output, *extra: str, env=None) -> subprocess.CompletedProcess:
    return mydiag("collect", "--host", "127.0.0.1", "--port", str(free_port()), "--samples", "1",
                  "--profile", "quick", "--output", str(output), *extra, env=env)


def test_output_that_is_a_file_or_under_one_is_refused(tmp_path):
    plain = tmp_path / "notes.txt"
    plain.write_text("x")
    _refused(_collect_into(plain), f"--output {plain}", "is a file, not a directory")
    _refused(_collect_into(plain / "a" / "b"), f"{plain} is a file", "cannot be made")
    assert plain.read_text() == "x"


def test_output_on_a_read_only_file_system_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)], check=True)
    try:
        _refused(_collect_into(folder), "read-only file system")
        _refused(_collect_into(folder / "new"), "cannot be made", "read-only file system")
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_output_someone_else_owns_is_refused_for_that_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user")
    base = Path(tempfile.mkdtemp(prefix="mydiag-output-", dir="/tmp"))  # nobody may enter it
    os.chmod(base, 0o755)
    private = base / "root-only"
    private.mkdir(mode=0o700)
    for output, words in ((private, ("is not writable by nobody",)),
                          (private / "new", ("cannot be made", f"{private} is not writable"))):
        done = subprocess.run(NOBODY + nobody_python() + [
            "-m", "agent.cli", "collect", "--host", "127.0.0.1", "--port", str(free_port()),
            "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=60,
            env=nobody_env(base))
        _refused(done, *words)
    shutil.rmtree(base)


def test_a_missing_output_directory_is_still_made(tmp_path):
    target = tmp_path / "new" / "deeper"
    done = _collect_into(target, "--allow-findings")
    assert done.returncode == 4, done.stderr
    assert len(list(target.glob("*.tar.zst"))) == 1


# -- inspect at 80 columns -------------------------------------------------------------------------


def test_inspect_on_80_columns_shows_long_similar_paths_whole(tmp_path):
    # Long, and alike but at the end (bundle member paths stay under 255 bytes).
    deep = tmp_path / "etc" / "mysql-configuration-for-the-reporting-cluster" / "conf.d"
    deep.mkdir(parents=True)
    extra = []
    for name in ("replica-settings-east.cnf", "replica-settings-west.cnf",
                 "a" * 60 + "-one.cnf", "a" * 60 + "-two.cnf"):
        (deep / name).write_text("[mysqld]\nmax_connections = 10\n")
        extra += ["--config-file", str(deep / name)]
    out = tmp_path / "out"
    done = _collect_into(out, "--allow-findings", *extra)
    assert done.returncode == 4, done.stderr
    bundle = next(out.glob("*.tar.zst"))
    manifest = json.loads(mydiag("inspect", str(bundle), "--json").stdout)
    paths = {f["path"] for f in manifest["files"]}
    assert sum(1 for p in paths if "replica-settings-" in p) == 2
    for columns in ("80", "60"):
        shown = mydiag("inspect", str(bundle), env=dict(os.environ, COLUMNS=columns))
        assert shown.returncode == 0, shown.stderr
        assert all(len(line) <= int(columns) for line in shown.stdout.splitlines())
        assert _file_cells(shown.stdout) == paths, columns


def _file_cells(table: str) -> set:
    """The file table's first column, a cell's wrapped lines joined (rows start with a size)."""
    return {row[0] for row in _rows(table, "sha256", 1, glue="")}
