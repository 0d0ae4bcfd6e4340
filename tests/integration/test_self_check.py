"""`mydiag self-check` on this machine, as root and as nobody, with a private MariaDB running:
it finds the server's process and log, says what not being root costs, notices a tool
that is not on PATH, prints one line per row, and never a secret. And `--version`, the
first thing a support engineer asks for."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

from bundle.version import FORMAT_VERSION, __version__
from tests.helpers import NOBODY, ROOT, mydiag, nobody_env, nobody_python


def row_list(done: subprocess.CompletedProcess) -> List[Dict[str, str]]:
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["version"] == __version__ and report["bundle_format"] == FORMAT_VERSION
    return report["rows"]


def rows_of(done: subprocess.CompletedProcess) -> Dict[str, Dict[str, str]]:
    """The rows by what they check (a host with several servers has several mysqld rows: the
    first is kept here)."""
    rows: Dict[str, Dict[str, str]] = {}
    for row in row_list(done):
        rows.setdefault(row["what"], row)
    return rows


def server_pid(server) -> int:
    return int(server.instance.pid_file.read_text().strip())


def test_as_root_it_finds_the_private_server_its_proc_files_and_its_log(server, tmp_path):
    pid = server_pid(server)
    marker = "self-check-" + secrets.token_hex(8)
    with open(server.instance.error_log, "a") as log:
        log.write(f"2026-12-01 10:00:00 0 [Note] IDENTIFIED BY '{marker}'\n")
    done = mydiag("self-check", "--json", "--port", str(server.port),
                  env=dict(os.environ, MYDIAG_HOME=str(tmp_path / "home"), MYDIAG_TOKEN=marker))
    rows = rows_of(done)
    assert marker not in done.stdout
    assert rows["root"]["status"] == "ok"
    state = rows["state directory"]
    assert state["status"] == "ok" and str(tmp_path / "home") in state["found"]
    servers = [row for row in row_list(done) if row["what"] == "mysqld process"]
    chosen = [row for row in servers if "chosen:" in row["found"]]
    assert len(chosen) == 1 and chosen[0]["status"] == "ok", servers
    assert f"pid {pid} " in chosen[0]["found"] and "--port on its command line" in chosen[0]["found"]
    for name in ("status", "limits", "io", "fd", "maps"):
        assert rows[f"/proc/{pid}/{name}"]["status"] == "ok"
    log = rows[f"error log {server.instance.error_log}"]
    assert log["status"] == "ok" and "mysqld command line" in log["found"]
    assert rows[f"socket {server.instance.socket}"]["status"] == "ok"
    assert rows["python"]["found"].startswith(".".join(map(str, sys.version_info[:3])))


def test_as_nobody_it_says_what_not_being_root_costs(server, tmp_path):
    pid = server_pid(server)
    home = Path(tempfile.mkdtemp(prefix="mydiag-selfcheck-", dir="/tmp"))
    os.chown(home, *_nobody_ids())
    try:
        done = subprocess.run(NOBODY + nobody_python() + ["-m", "agent.cli", "self-check", "--json", "--port",
                                                          str(server.port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120,
                              # A state directory behind root's own (0700) folder: a row, not a crash.
                              env={**nobody_env(home), "MYDIAG_HOME": str(tmp_path / "state")})
    finally:
        shutil.rmtree(home, ignore_errors=True)
    rows = rows_of(done)
    assert rows["root"]["status"] == "limited" and "nobody" in rows["root"]["found"]
    # The private server runs as root: its I/O counters, open files and maps are its own.
    for name in ("io", "fd", "maps"):
        row = rows[f"/proc/{pid}/{name}"]
        assert row["status"] == "not readable" and "loses" in row["means"] and "run as root" in row["means"]
    assert rows[f"/proc/{pid}/status"]["status"] == "ok"
    assert rows[f"error log {server.instance.error_log}"]["status"] == "not readable"
    state = rows["state directory"]
    assert state["status"] == "not readable" and "Permission denied" in state["found"], state


def test_a_tool_missing_from_path_is_said_missing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "eu-stack").symlink_to("/bin/true")
    rows = rows_of(mydiag("self-check", "--json", env=dict(os.environ, PATH=str(bin_dir))))
    assert rows["tool gdb"]["status"] == "missing" and "os.stacks" in rows["tool gdb"]["means"]
    stack = rows["tool eu-stack"]
    assert (stack["status"], stack["found"]) == ("ok", str(bin_dir / "eu-stack"))
    assert rows["tool journalctl"]["status"] == "missing"


def test_the_table_has_one_line_per_row_and_exit_status_zero(server):
    as_json = row_list(mydiag("self-check", "--json", "--port", str(server.port)))
    done = mydiag("self-check", "--port", str(server.port))
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["what", "status", "found", "means"]
    assert len(lines) == 1 + len(as_json)
    status_column = lines[0].index("status")
    for line, row in zip(lines[1:], as_json):
        assert line.startswith(row["what"] + " ") and line[status_column:].startswith(row["status"]), line


def test_version_names_the_tool_and_the_bundle_format():
    agent = mydiag("--version")
    assert (agent.returncode, agent.stdout) == (0, f"mydiag {__version__} (bundle format {FORMAT_VERSION})\n")
    server = subprocess.run([sys.executable, "-m", "server.cli", "--version"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert (server.returncode, server.stdout) == (
        0, f"mydiag-server {__version__} (bundle format {FORMAT_VERSION})\n")


def _nobody_ids() -> tuple:
    import grp
    import pwd

    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid

