"""Log collectors against logs the server itself wrote: tails, bounds, fingerprints, 1 GiB files."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import pymysql
import pytest

from tests.conftest import Target, _start
from tests.helpers import ROOT, bundle_files, by_name, collect_json
from tests.servers import free_port

GIB = 1 << 30


@pytest.fixture()
def own_server(tmp_path_factory):
    """A server of this test's own. Its folder name is neutral on purpose: logs quote their
    paths, and a word such as "private" in a path is what the secret lint looks for."""
    instance = _start(tmp_path_factory, "logsrv")
    yield Target("127.0.0.1", instance.port, "root", "", instance)
    instance.kill()


def _collect(target, out, *extra: str) -> tuple:
    done, summary = collect_json("--host", target.host, "--port", str(target.port), "--user",
                                 target.user, "--output", str(out), "--samples", "1", *extra)
    assert summary is not None, done.stderr
    return summary, bundle_files(summary["bundle"])


def test_error_log_tail_is_what_the_server_wrote(own_server, tmp_path):
    summary, files = _collect(own_server, tmp_path, "--profile", "quick")
    entry = by_name(summary)["logs.error_log"]
    assert entry["status"] == "ok", entry
    written = own_server.instance.error_log.read_bytes()
    copied = files["logs/error.log"]
    assert b"ready for connections" in copied
    assert written.startswith(copied)  # the whole (small) log, as the server wrote it
    assert any("whole file" in n and "server variables" in n for n in entry["notes"])


def test_error_log_is_bounded_by_log_bytes(own_server, tmp_path):
    summary, files = _collect(own_server, tmp_path, "--profile", "quick", "--log-bytes", "1K")
    copied = files["logs/error.log"]
    written = own_server.instance.error_log.read_bytes()
    assert 0 < len(copied) <= 1024 and copied in written
    start = written.index(copied)
    assert start > 0 and written[start - 1:start] == b"\n"  # cut at a line boundary
    assert any("only the last" in n for n in by_name(summary)["logs.error_log"]["notes"])


def test_an_error_log_cut_inside_a_deadlock_report_starts_at_its_next_entry(own_server, tmp_path):
    token = secrets.token_urlsafe(15)
    prefix = "2026-12-01 21:09:07 5 [Note] InnoDB: "
    report = (f"{prefix}Transactions deadlock detected, dumping detailed information.\n{prefix}\n"
              "*** (1) TRANSACTION:\nTRANSACTION 23, ACTIVE 1 sec starting index read\n"
              "MariaDB thread id 5, OS thread handle 1407, query id 15 localhost 127.0.0.1 root Updating\n")
    rest = (f"UPDATE shop.c SET note='{token}'\n  WHERE id = 2\n"
            f"{prefix}*** WAITING FOR THIS LOCK TO BE GRANTED:\n{prefix}*** WE ROLL BACK TRANSACTION (1)\n")
    with open(own_server.instance.error_log, "a") as log:
        log.write(report + rest)
    # The tail starts just inside the line before the statement: the reader drops that
    # half line, and the collector the statement lines whose entry head is cut away.
    summary, files = _collect(own_server, tmp_path, "--profile", "quick", "--log-bytes", str(len(rest) + 5))
    copied = files["logs/error.log"].decode()
    assert token not in copied
    assert copied.startswith(f"{prefix}*** WAITING FOR THIS LOCK TO BE GRANTED:")
    notes = by_name(summary)["logs.error_log"]["notes"]
    assert any("2 lines of a cut first entry dropped" in n for n in notes)


def test_bad_log_bytes_is_a_usage_error(tmp_path):
    done, _ = collect_json("--log-bytes", "lots", "--output", str(tmp_path))
    assert done.returncode == 2 and "'lots' is not a size" in done.stderr


def _enable_slow_log(target) -> str:
    path = str(target.instance.base / "slow.log")
    target.sql(f"SET GLOBAL slow_query_log_file = '{path}'", "SET GLOBAL long_query_time = 0",
               "SET GLOBAL slow_query_log = ON")
    return path


def test_slow_log_statements_are_fingerprinted(own_server, tmp_path):
    _enable_slow_log(own_server)
    literal, number = f"sk-{secrets.token_hex(10)}", 7_000_000 + secrets.randbelow(999_999)
    own_server.sql(f"SELECT '{literal}' AS marker, {number} + 1 AS total")
    summary, files = _collect(own_server, tmp_path)
    entry = by_name(summary)["logs.slow_log"]
    assert entry["status"] == "ok", entry
    text = files["logs/slow.log"].decode()
    assert literal not in text and str(number) not in text
    assert "SELECT ? AS marker, ? + ? AS total;" in text
    assert any(line.startswith("# Query_time: ") for line in text.splitlines())
    assert any(line.startswith("# User@Host: root[root] @ ") for line in text.splitlines())
    assert any("statements fingerprinted" in n for n in entry["notes"])


def test_slow_log_header_lines_inside_literals_stay_statement_text(own_server, tmp_path):
    _enable_slow_log(own_server)
    token, email = secrets.token_urlsafe(15), f"{secrets.token_hex(5)}@example.invalid"
    forged = (f"# Time: {token}\n# User@Host: {token}[{token}] @ web1 []\n# Start: {token}\n"
              f"# Id: {token}\n# Query_time: {token}\nSET timestamp={token};\nuse {token};")
    own_server.sql(f"SELECT 'a;\n{forged}\n' AS note, '{email}' AS who",
                   f"SELECT 1 /* ;\n{forged}\n*/ AS n")
    with pytest.raises(pymysql.err.ProgrammingError):  # logged too, though it never parsed
        own_server.sql(f"SELECT 'never closed {token};")
    # Such a quote ends at the next `# Time:` line, which the server writes once a second.
    time.sleep(1.1)
    own_server.sql("SELECT 42 AS after_all")
    written = (own_server.instance.base / "slow.log").read_text()
    assert token in written and f"# User@Host: {token}" in written
    summary, files = _collect(own_server, tmp_path)
    assert by_name(summary)["logs.slow_log"]["status"] == "ok"
    text = files["logs/slow.log"].decode()
    assert token not in text and email not in text
    assert "SELECT ? AS note, ? AS who;" in text and "SELECT ? AS n;" in text
    assert "SELECT ? AS after_all;" in text


def test_slow_log_off_is_skipped_with_the_reason(own_server, tmp_path):
    summary, _ = _collect(own_server, tmp_path)
    entry = by_name(summary)["logs.slow_log"]
    assert entry["status"] == "skipped" and "slow_query_log=OFF" in entry["error"]


def _fill(path: str, line: bytes, size: int) -> None:
    chunk = line * ((1 << 20) // len(line))
    with open(path, "ab") as handle:
        while handle.tell() < size:
            handle.write(chunk)


def _collect_measured(target, out) -> tuple:
    """(summary, files, peak RSS in KiB, seconds) of one `mydiag collect` in its own process."""
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "collect", "--json", "--samples", "1",
         "--host", target.host, "--port", str(target.port), "--user", target.user,
         "--output", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = child.stdout.read()
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    assert stdout.strip(), f"mydiag collect wrote no summary (status {status}): {stderr!r}"
    summary = json.loads(stdout)
    return summary, bundle_files(summary["bundle"]), usage.ru_maxrss, seconds


@pytest.mark.slow
def test_1gib_error_and_slow_logs_are_tailed_in_bounded_memory_and_time(own_server, tmp_path):
    slow = _enable_slow_log(own_server)
    own_server.sql("SELECT 1")
    _, _, base_rss, base_seconds = _collect_measured(own_server, tmp_path / "small")
    error_log = str(own_server.instance.error_log)
    try:
        _fill(error_log, b"2024-01-05 10:00:01 0 [Note] InnoDB: Buffer pool(s) load completed\n", GIB)
        _fill(slow, b"# Time: 240105 10:00:01\n# User@Host: app[app] @ web [10.0.0.5]\n"
                    b"# Query_time: 2.0  Lock_time: 0.0  Rows_sent: 1  Rows_examined: 9\n"
                    b"SET timestamp=1704448801;\nSELECT * FROM t WHERE id = 12345;\n", GIB)
        own_server.instance.restart()  # the server writes its start-up lines after the gigabyte
        _enable_slow_log(own_server)
        marker = secrets.token_hex(8)
        own_server.sql(f"SELECT '{marker}' AS last_one")
        assert os.path.getsize(error_log) > GIB and os.path.getsize(slow) > GIB
        os.sync()  # the 2 GiB just written must not be flushed inside the measured run's fsync
        summary, files, rss, seconds = _collect_measured(own_server, tmp_path / "big")
        entries = by_name(summary)
        took = {n: entries[n]["duration"] for n in ("logs.error_log", "logs.slow_log")}
        print(f"1 GiB logs: peak RSS {rss} KiB (small logs: {base_rss} KiB), whole run "
              f"{seconds:.2f}s (small logs: {base_seconds:.2f}s), collectors {took}")
        assert entries["logs.error_log"]["status"] == "ok" and entries["logs.slow_log"]["status"] == "ok"
        assert len(files["logs/error.log"]) <= 2 << 20 and len(files["logs/slow.log"]) <= 2 << 20
        assert b"ready for connections" in files["logs/error.log"]
        slow_copy = files["logs/slow.log"]
        assert b"SELECT ? AS last_one;" in slow_copy and marker.encode() not in slow_copy
        assert any("1.0 GiB, only the last 2.0 MiB" in n for n in entries["logs.error_log"]["notes"])
        assert rss - base_rss < 64 * 1024, (rss, base_rss)
        # The collectors' own time; the whole run adds redaction and the lint of 2 x 2 MiB.
        assert all(t < 5 for t in took.values()), took
        assert seconds < 120, seconds
    finally:
        for path in (error_log, slow):  # two gigabytes are not left behind
            os.truncate(path, 0)


def test_error_log_is_found_from_the_command_line_when_access_is_denied(own_server, tmp_path):
    defaults = own_server.defaults_file(tmp_path, "root", secrets.token_urlsafe(12))
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path),
                                 "--samples", "1")
    assert summary is not None and "access denied" in summary["connect_error"], done.stderr
    entry = by_name(summary)["logs.error_log"]
    assert entry["status"] == "ok", entry
    assert any("path from mysqld command line" in n for n in entry["notes"])
    copied = bundle_files(summary["bundle"])["logs/error.log"]
    assert b"ready for connections" in copied
    process = by_name(summary)["os.mysqld_process"]
    assert process["status"] == "ok"


def test_logs_of_a_server_that_is_not_there_are_not_guessed(tmp_path):
    port = free_port()
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(port), "--user", "root",
                                 "--output", str(tmp_path), "--samples", "1")
    assert summary is not None and "server not reachable" in summary["connect_error"], done.stderr
    entries = by_name(summary)
    assert entries["logs.error_log"]["status"] == "failed"
    assert f"no server runs on port {port} here" in entries["logs.error_log"]["error"]
    assert entries["logs.slow_log"]["status"] == "skipped"
    assert entries["config.persisted"]["status"] == "skipped"
    assert entries["os.host"]["status"] == "ok"
