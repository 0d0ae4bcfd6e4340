"""`mydiag collect --stacks`: one pt-pmp style snapshot of a real private server's threads, told
before it starts, refused where it cannot run, and a snapshot tool killed midway never leaves
mysqld stopped."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pymysql
import pytest

from collectors.os import stacks
from tests.conftest import Target, _start
from tests.helpers import (
    NOBODY,
    ROOT,
    bundle_files,
    bundle_json,
    by_name,
    collect_json,
    nobody_env,
    nobody_python,
)

TOOLS = [name for name in stacks.TOOLS if shutil.which(name)]


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("stack snapshots need root")
    if not TOOLS:
        pytest.fail("neither eu-stack (elfutils) nor gdb is installed: scripts/system-deps.sh")
    instance = _start(tmp_path_factory, "stacks")
    yield Target("127.0.0.1", instance.port, "root", "", instance)
    instance.stop()


def _sleeping(target: Target, marker: str, seconds: float = 4) -> threading.Thread:
    """A query busy in SLEEP(), its text holding `marker`, on a connection of its own."""
    started = threading.Event()

    def run() -> None:
        with target.connect() as conn, conn.cursor() as cur:
            started.set()
            cur.execute(f"SELECT SLEEP({seconds}), '{marker}'")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    started.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any("SLEEP" in str(r[7]) for r in target.sql("SHOW FULL PROCESSLIST")):
            return worker
        time.sleep(0.05)
    raise AssertionError("the sleeping query never showed up")


def _answers(target: Target) -> bool:
    with pymysql.connect(host=target.host, port=target.port, user="root", password="",
                         connect_timeout=3, read_timeout=3, ssl_disabled=True) as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone() == (1,)


def _stopped(pid: int) -> set:
    return set(stacks.thread_states(pid).values()) & {"T", "t"}


def test_stacks_show_what_each_thread_is_doing_counted_like_pt_pmp(traced, tmp_path):
    marker = "lit-" + secrets.token_hex(6)
    worker = _sleeping(traced, marker)
    defaults = traced.defaults_file(tmp_path)
    done, summary = collect_json("--defaults-file", str(defaults), "--stacks", "--profile", "quick",
                                 "--samples", "1", "--output", str(tmp_path), "--allow-findings")
    worker.join(10)
    assert done.returncode in (0, 3), done.stderr
    notice = done.stderr.strip().splitlines()[0]
    assert notice.startswith("mydiag: --stacks: mysqld will stand still while") and \
        "snapshot" in notice, done.stderr
    entry = by_name(summary)["os.stacks"]
    assert entry["status"] == "ok", entry
    assert sorted(entry["files"]) == ["os/mysqld_stacks.json", "os/mysqld_stacks_pmp.txt",
                                      "os/mysqld_stacks_raw.txt"]
    files = bundle_files(Path(summary["bundle"]))
    aggregate = bundle_json(files, "os/mysqld_stacks.json")
    assert aggregate["pid"] == traced.instance.process.pid
    assert aggregate["tool"] == TOOLS[0] and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z",
                                                          aggregate["captured"])
    assert 0 < aggregate["seconds"] < stacks.TIME_LIMIT and not aggregate["resumed"]
    counted = sum(s["count"] for s in aggregate["stacks"])
    assert counted == aggregate["threads"] >= 5 and aggregate["distinct"] == len(aggregate["stacks"])
    frames = [f for s in aggregate["stacks"] for f in s["frames"]]
    assert "handle_connections_sockets" in frames  # the listener, always there
    sleeper = [s for s in aggregate["stacks"] if "Item_func_sleep::val_int" in s["frames"]]
    assert len(sleeper) == 1 and "dispatch_command" in sleeper[0]["frames"], aggregate["stacks"]
    pmp = files["os/mysqld_stacks_pmp.txt"].decode().splitlines()
    assert len(pmp) == aggregate["distinct"]
    assert all(re.fullmatch(r" *\d+ [^ ,]+(,[^,]+)*", line) for line in pmp), pmp
    assert sum(int(line.split()[0]) for line in pmp) == counted
    raw = files["os/mysqld_stacks_raw.txt"].decode()
    assert raw.count("Item_func_sleep::val_int") == 1
    for name in entry["files"]:
        assert marker.encode() not in files[name], f"{name} holds the query's text"
    assert _answers(traced) and not _stopped(traced.instance.process.pid)


def test_no_snapshot_unless_asked(traced, tmp_path):
    done, summary = collect_json("--defaults-file", str(traced.defaults_file(tmp_path)),
                                 "--profile", "quick", "--samples", "1", "--output", str(tmp_path),
                                 "--allow-findings")
    assert done.returncode in (0, 3), done.stderr
    assert "os.stacks" not in by_name(summary) and "stand still" not in done.stderr


@pytest.mark.parametrize("name", ["eu-stack", "gdb"])
def test_each_tool_gives_the_same_kind_of_aggregate_and_no_argument_values(traced, name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    marker = "lit-" + secrets.token_hex(6)
    worker = _sleeping(traced, marker, seconds=3)
    shot = stacks.snapshot(traced.instance.process.pid, path)
    worker.join(10)
    assert not shot.timed_out and shot.returncode == 0, shot.errors
    threads = stacks.parse(shot.raw)
    assert len(threads) >= 5 and all(frames for _, frames in threads)
    grouped = stacks.aggregate(threads)
    assert sum(s.count for s in grouped) == len(threads)
    assert [s.count for s in grouped] == sorted((s.count for s in grouped), reverse=True)
    assert any("Item_func_sleep::val_int" in s.frames for s in grouped)
    assert marker not in shot.raw
    # gdb names the arguments but prints no values (`frame-arguments none`).
    assert not re.search(r"\w=0x[0-9a-f]", shot.raw)


@pytest.mark.parametrize("name,limit", [("gdb", 0.05), ("gdb", 0.15), ("gdb", 0.3),
                                        ("eu-stack", 0.005), ("eu-stack", 0.03)])
def test_a_tool_killed_midway_never_leaves_the_server_stopped(traced, name, limit):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    pid = traced.instance.process.pid
    shot = stacks.snapshot(pid, path, limit)
    if name == "gdb" and limit <= 0.05:
        assert shot.timed_out, "gdb takes longer than 50 ms: this run must have killed it"
    assert not _stopped(pid), stacks.thread_states(pid)
    assert _answers(traced)
    # A stop signal the killed tool left pending would land later: look again.
    time.sleep(0.3)
    assert not _stopped(pid), stacks.thread_states(pid)
    assert _answers(traced)


def test_gdb_killed_by_sigkill_mid_attach_leaves_the_server_answering(traced):
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb is not installed")
    pid = traced.instance.process.pid
    for delay in (0.0, 0.02, 0.1, 0.25, 0.4):
        proc = subprocess.Popen(stacks.command(gdb, pid), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        stacks.resume_if_stopped(pid, pending_stop=True)
        assert not _stopped(pid), (delay, stacks.thread_states(pid))
        assert _answers(traced), delay


def test_stacks_are_refused_without_root(traced):
    out = Path(tempfile.mkdtemp(prefix="mydiag-stacks-", dir="/tmp"))
    os.chmod(out, 0o777)
    try:
        done = subprocess.run(NOBODY + nobody_python() + [
            "-m", "agent.cli", "collect", "--stacks", "--host", traced.host,
            "--port", str(traced.port), "--user", "root", "--output", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env=nobody_env(out))
        assert done.returncode == 20, done.stderr
        assert done.stderr.strip().splitlines() == [
            "mydiag: --stacks needs root (it attaches to mysqld with ptrace): run mydiag as root, "
            "or collect without --stacks"]
        assert done.stdout == "" and list(out.iterdir()) == []
    finally:
        shutil.rmtree(out)


def test_stacks_are_refused_without_eu_stack_or_gdb(traced, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "collect", "--stacks", "--host", traced.host,
         "--port", str(traced.port), "--user", "root", "--output", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PATH=str(empty)))
    assert done.returncode == 20, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs eu-stack (package elfutils) or gdb" in lines[0], lines
    assert done.stdout == "" and not list(tmp_path.glob("*.tar.zst"))
