"""The error log and the journal of a server that is down or runs without option files:
found where servers put them, and never another server's.

The default datadir is the machine's own server's, so a test puts its stopped server's
datadir there only for the collection, in a mount namespace of its own (`unshare`). The
machine has no running systemd and no journal files: the journal tests put a journalctl
on PATH that prints lines in journalctl's own `-o short-iso-precise --utc` format.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers
from tests.helpers import ROOT, bundle_files, by_name, collect_json
from tests.servers import free_port

HOST = socket.gethostname()


@pytest.fixture()
def stopped(tmp_path_factory):
    """A server started with --no-defaults that wrote `<datadir>/<hostname>.err`, then killed."""
    holder = tmp_path_factory.mktemp("downsrv")
    port = free_port()
    datadir = holder / "data"
    instance = servers.Instance(holder, port, [f"--log-error={datadir}/{HOST}.err"])
    try:
        instance.init()
        instance.start()
    except servers.ServerUnavailable as exc:
        pytest.skip(str(exc))
    log = datadir / f"{HOST}.err"
    assert f"port: {port}" in log.read_text()
    instance.kill()
    yield instance, log


def _in_namespace(datadir: Path, *args: str, env=None) -> tuple:
    """`mydiag collect --json ARGS` with DATADIR mounted on /var/lib/mysql for it alone."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a private mount namespace needs root and unshare")
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount --bind "$1" /var/lib/mysql && shift && exec "$@"', "sh", str(datadir),
               sys.executable, "-m", "agent.cli", "collect", "--json", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)
    summary = json.loads(done.stdout) if done.stdout.strip().startswith("{") else None
    assert summary is not None, done.stderr
    return done, summary


def test_a_stopped_server_without_option_files_still_has_its_error_log(stopped, tmp_path):
    instance, log = stopped
    done, summary = _in_namespace(instance.datadir, "--host", "127.0.0.1", "--port",
                                  str(instance.port), "--user", "root", "--samples", "1",
                                  "--profile", "quick", "--output", str(tmp_path))
    assert "server not reachable" in summary["connect_error"], done.stderr
    entry = by_name(summary)["logs.error_log"]
    assert entry["status"] == "ok", entry
    copied = bundle_files(summary["bundle"])["logs/error.log"]
    assert copied == log.read_bytes()
    notes = "\n".join(entry["notes"])
    assert f"/var/lib/mysql/{HOST}.err: whole file" in notes
    assert f"the default datadir's <hostname>.err, whose last start-up names port {instance.port}" in notes


def test_a_default_datadir_log_of_another_port_is_refused(stopped, tmp_path):
    instance, log = stopped
    other = free_port()
    done, summary = _in_namespace(instance.datadir, "--host", "127.0.0.1", "--port", str(other),
                                  "--user", "root", "--samples", "1", "--profile", "quick",
                                  "--output", str(tmp_path))
    entry = by_name(summary)["logs.error_log"]
    assert entry["status"] == "failed", entry
    assert f"no server runs on port {other} here" in entry["error"]
    assert f"no error log at the usual places names port {other}" in entry["error"]
    assert "start the server" not in (entry["fix"] or "")
    assert "--config-file" in entry["fix"]
    notes = "\n".join(entry["notes"])
    assert f"/var/lib/mysql/{HOST}.err (its last start-up names port {instance.port})" in notes
    # The machine's own server logs to /var/log/mysql/error.log on port 3306: named, not used.
    own = Path("/var/log/mysql/error.log")
    if own.exists() and "port: 3306" in own.read_text(errors="replace"):
        assert "/var/log/mysql/error.log (its last start-up names port 3306)" in notes
    assert "logs/error.log" not in bundle_files(summary["bundle"])


JOURNAL = "".join(line + "\n" for line in (
    "{t0} {host} systemd[1]: Starting mariadb.service - MariaDB 10.11.19 database server...",
    "{t0} {host} mariadbd[4121]: 2026-12-01 21:00:00 0 [Note] Starting MariaDB"
    " 10.11.19-MariaDB-0+deb12u1 source revision  server_uid abc as process 4121",
    "{t0} {host} mariadbd[4121]: 2026-12-01 21:00:00 0 [Note] InnoDB: Buffer pool(s) load"
    " completed at 261201 21:00:00",
    "{t0} {host} mariadbd[4121]: 2026-12-01 21:00:00 0 [Note] /usr/sbin/mariadbd: ready for"
    " connections.",
    "{t0} {host} mariadbd[4121]: Version: '10.11.19-MariaDB-0+deb12u1'  socket:"
    " '/run/mysqld/mysqld.sock'  port: {port}  Debian 12",
    "{t0} {host} systemd[1]: Started mariadb.service - MariaDB 10.11.19 database server.",
    "{t1} {host} systemd[1]: mariadb.service: Main process exited, code=killed, status=9/KILL",
    "{t1} {host} systemd[1]: mariadb.service: Failed with result 'signal'.",
    "{t1} {host} systemd[1]: mariadb.service: Consumed 3min 12.345s CPU time.",
    "{t2} {host} systemd[1]: mariadb.service: Scheduled restart job, restart counter is at 1.",
    "{t2} {host} systemd[1]: Stopped mariadb.service - MariaDB 10.11.19 database server.",
    "{t2} {host} systemd[1]: Starting mariadb.service - MariaDB 10.11.19 database server...",
    "{t2} {host} mariadbd[4188]: 2026-12-01 21:05:00 0 [ERROR] mariadbd: Got error 'Table is"
    " marked as crashed' for './shop/t1.MYI'",
    "{t3} {host} systemd[1]: mariadb.service: State 'stop-sigterm' timed out. Killing.",
    "{t3} {host} systemd[1]: mariadb.service: Killing process 4188 (mariadbd) with signal SIGKILL.",
    "{t3} {host} systemd[1]: mariadb.service: Main process exited, code=dumped, status=11/SEGV",
    "{t3} {host} systemd[1]: mariadb.service: Failed with result 'core-dump'.",
))


def _fake_journalctl(folder: Path, port: int) -> Path:
    """A journalctl that prints the unit's lines and records how it was called."""
    now = dt.datetime.now(dt.timezone.utc)
    stamps = {f"t{n}": (now - dt.timedelta(hours=3 - n)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
              for n in range(4)}
    (folder / "journal.txt").write_text(JOURNAL.format(host=HOST, port=port, **stamps))
    script = folder / "journalctl"
    script.write_text("#!/bin/sh\n"
                      f"printf '%s\\n' \"$*\" >> {folder}/calls\n"
                      "case \" $* \" in *\" -u mariadb.service \"*) "
                      f"cat {folder}/journal.txt;; esac\n")
    script.chmod(0o755)
    return folder


def _env_with(folder: Path) -> dict:
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def test_the_stopped_servers_unit_journal_has_its_restarts_kills_and_exits(tmp_path):
    port = free_port()
    fake = _fake_journalctl(tmp_path, port)
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(port), "--user", "root",
                                 "--samples", "1", "--profile", "quick", "--output", str(tmp_path),
                                 env=_env_with(fake))
    assert summary is not None, done.stderr
    entries = by_name(summary)
    assert entries["logs.journal"]["status"] == "ok", entries["logs.journal"]
    files = bundle_files(summary["bundle"])
    assert files["logs/journal.log"].decode().count("\n") == JOURNAL.count("\n")
    events = json.loads(files["logs/journal_events.json"])
    assert events["unit"] == "mariadb.service" and events["restarts"] == 1
    assert events["exit_statuses"] == {"killed=9/KILL": 1, "dumped=11/SEGV": 1}
    assert events["kill_signals"] == {"SIGKILL": 1}
    assert [e["event"] for e in events["events"]] == [
        "starting", "started", "exited", "failed", "restart_scheduled", "stopped", "starting",
        "timed_out", "killing", "exited", "failed"]
    assert all(e["time"].endswith("+00:00") for e in events["events"])
    call = (fake / "calls").read_text().splitlines()[0].split()
    assert call[:2] == ["-u", "mariadb.service"] and call[call.index("-o") + 1] == "short-iso-precise"
    assert "--utc" in call and "--no-pager" in call and call[call.index("-n") + 1] == "2000"
    assert call[call.index("--since") + 1].startswith("@")
    # The error log of a server that is down: its own lines of the journal.
    error = entries["logs.error_log"]
    assert error["status"] == "ok", error
    log = files["logs/error.log"].decode()
    assert log.splitlines()[0].startswith("2026-12-01 21:00:00 0 [Note] Starting MariaDB")
    assert f"port: {port}" in log and "systemd" not in log and "Got error 'Table is marked" in log
    assert any("from the journal of mariadb.service" in n for n in error["notes"])


def test_a_journal_that_names_another_port_is_not_this_servers(tmp_path):
    fake = _fake_journalctl(tmp_path, 3306)
    port = free_port()
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(port), "--user", "root",
                                 "--samples", "1", "--profile", "quick", "--output", str(tmp_path),
                                 env=_env_with(fake))
    entries = by_name(summary)
    assert entries["logs.journal"]["status"] == "skipped"
    assert "mariadb.service last started a server on port 3306" in entries["logs.journal"]["error"]
    assert entries["logs.error_log"]["status"] == "failed"
    assert f"no server runs on port {port} here" in entries["logs.error_log"]["error"]
    files = bundle_files(summary["bundle"])
    assert "logs/journal.log" not in files and "logs/error.log" not in files


def test_without_systemd_the_journal_is_skipped_with_the_reason(server, tmp_path):
    done, summary = collect_json("--host", server.host, "--port", str(server.port), "--user",
                                 server.user, "--samples", "1", "--profile", "quick",
                                 "--output", str(tmp_path))
    entry = by_name(summary)["logs.journal"]
    assert entry["status"] == "skipped"
    assert "is not run by a systemd unit (its cgroup names none)" in entry["error"]
    if os.path.isdir("/run/systemd/system") or any(
            Path(d).is_dir() and any(Path(d).rglob("*.journal"))
            for d in ("/var/log/journal", "/run/log/journal")):
        return
    # The server down, nothing else to go by: the installed unit, and no journal at all.
    port = free_port()
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(port), "--user", "root",
                                 "--samples", "1", "--profile", "quick", "--output", str(tmp_path))
    entry = by_name(summary)["logs.journal"]
    assert entry["status"] == "skipped"
    assert entry["error"].startswith("no systemd journal on this host: systemd is not running")
