"""The host over the sampling window, made real: a process that burns CPU, a command line
that carries a secret, kernel lines of the kinds engineers search for, and a server that
runs with jemalloc preloaded."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import pytest

from tests.conftest import Target, _start
from tests.helpers import bundle_files, by_name, collect_json

SAMPLES, INTERVAL = 3, 0.5
BURN = "import sys, time\nend = time.time() + 60\nwhile time.time() < end: pass"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def _lines(files: dict, name: str) -> list:
    return [json.loads(line) for line in files[name].splitlines()]


def _collect(target: Target, out, *extra: str) -> tuple:
    done, summary = collect_json("--host", target.host, "--port", str(target.port), "--user",
                                 target.user, "--output", str(out), "--samples", str(SAMPLES),
                                 "--interval", str(INTERVAL), *extra)
    assert summary is not None, done.stderr
    return summary, bundle_files(summary["bundle"])


@pytest.fixture()
def burners():
    """Two CPU burners whose command lines carry a fresh secret each: one as a generic
    `--password=` option, one as a MySQL client's `-p` (its argv[0] says `mysql`)."""
    secret_a, secret_b = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    long_form = subprocess.Popen([sys.executable, "-c", BURN, f"--password={secret_a}",
                                  "--user", "app"])
    short_form = subprocess.Popen(["mysql", "-c", BURN, "-uapp", f"-p{secret_b}"],
                                  executable=sys.executable)
    time.sleep(0.3)
    yield long_form, short_form, (secret_a, secret_b)
    for child in (long_form, short_form):
        child.kill()
        child.wait(10)


def test_a_cpu_burner_is_on_top_and_its_secret_is_masked(server, burners, tmp_path):
    long_form, short_form, secret_values = burners
    summary, files = _collect(server, tmp_path)
    assert by_name(summary)["os.processes"]["status"] == "ok"
    rows = _lines(files, "os/processes.jsonl")
    for child in (long_form, short_form):
        mine = [r for r in rows if r["pid"] == child.pid]
        later = [r for r in mine if r["sample"] > 0]
        assert len(later) == SAMPLES - 1, mine
        # On a shared 2-core host the share varies; a burner is still among the top 15.
        assert all(r["cpu_rank"] is not None and r["cpu_percent"] > 5 for r in later), later
        for before, after in zip(mine, mine[1:]):
            spent = after["cpu_seconds"] - before["cpu_seconds"]
            assert abs(after["cpu_percent"] - 100 * spent / after["window_seconds"]) < 5, (before, after)
        assert all(r["state"] in ("running", "sleeping") and r["threads"] == 1 for r in mine)
    long_row = next(r for r in rows if r["pid"] == long_form.pid)
    short_row = next(r for r in rows if r["pid"] == short_form.pid)
    assert long_row["cmdline"][-3:] == ["--password=<redacted>", "--user", "app"]
    assert short_row["cmdline"][0] == "mysql" and short_row["cmdline"][-1] == "-p<redacted>"
    assert long_row["name"].startswith("python") and long_row["user"] == "root"
    for data in files.values():
        assert not any(value.encode() in data for value in secret_values)
    manifest = json.loads(files["manifest.json"])
    assert manifest["redaction"].get("command_line_secret", 0) >= 2 * (SAMPLES - 1)


def _kmsg(line: str) -> None:
    """A line in the kernel log, as root may write one (priority 3: an error)."""
    with open("/dev/kmsg", "w") as handle:
        handle.write(f"<3>{line}\n")


def test_kernel_lines_of_every_kind_are_sorted_with_their_process_or_device(server, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("writing to the kernel log needs root")
    tag = secrets.token_hex(4)
    device = f"mdt{tag}"
    crashed, stuck = 40000 + secrets.randbelow(9999), 50000 + secrets.randbelow(9999)
    lines = {
        "segfault": f"mariadbd[{crashed}]: segfault at 0 ip 000055d0c1a2b3c4 sp 00007ffd1e2f3a40 "
                    f"error 4 in mariadbd[55d0c1000000+1a00000] (mydiag test {tag})",
        "hung_task": f"INFO: task mariadbd:{stuck} blocked for more than 120 seconds. "
                     f"(mydiag test {tag})",
        "io_error": f"blk_update_request: I/O error, dev {device}, sector 123456 op 0x1:(WRITE) "
                    f"flags 0x800 phys_seg 1 prio class 0 (mydiag test {tag})",
        "filesystem_error": f"EXT4-fs error (device {device}): ext4_find_entry:1455: inode #2: "
                            f"comm mariadbd: reading directory lblock 0 (mydiag test {tag})",
    }
    lines["xfs"] = f"XFS ({device}): Metadata corruption detected at xfs_buf_ioend (mydiag test {tag})"
    lines["unrelated"] = f"mydiag test {tag}: an ordinary line that reports nothing"
    for line in lines.values():
        _kmsg(line)
    summary, files = _collect(server, tmp_path, "--profile", "quick")
    entry = by_name(summary)["os.kernel_log"]
    assert entry["status"] == "ok", entry
    report = json.loads(files["os/kernel_log.json"])
    assert report["readable"] and report["source"] == "/dev/kmsg"
    ours = {e["message"]: e for e in report["events"] if f"mydiag test {tag}" in e["message"]}
    kinds = {e["kind"] for e in ours.values()}
    assert kinds == {"segfault", "hung_task", "io_error", "filesystem_error"}
    assert len(ours) == 5 and not any("ordinary line" in m for m in ours)
    by_kind = {e["kind"]: e for e in ours.values() if not e["message"].startswith("XFS")}
    assert (by_kind["segfault"]["process"], by_kind["segfault"]["pid"]) == ("mariadbd", crashed)
    assert (by_kind["hung_task"]["process"], by_kind["hung_task"]["pid"]) == ("mariadbd", stuck)
    assert by_kind["io_error"]["device"] == device and by_kind["filesystem_error"]["device"] == device
    assert all(e["time"].endswith("Z") for e in ours.values())
    assert all(report["counts"][k] >= 1 for k in kinds)
    # The OOM collector reads the same kernel log, once, and finds none of these.
    oom = json.loads(files["os/oom_kills.json"])
    assert oom["source"] == "/dev/kmsg" and not any(tag in e["message"] for e in oom["events"])


@pytest.fixture()
def jemalloc_server(tmp_path_factory, monkeypatch):
    if not os.path.exists(JEMALLOC):
        pytest.skip(f"{JEMALLOC} is not installed (apt-get install libjemalloc2)")
    monkeypatch.setenv("LD_PRELOAD", JEMALLOC)
    instance = _start(tmp_path_factory, "jemsrv")
    monkeypatch.delenv("LD_PRELOAD")
    yield Target("127.0.0.1", instance.port, "root", "", instance)
    instance.kill()


def test_a_preloaded_jemalloc_is_named_as_the_allocator(jemalloc_server, server, tmp_path):
    summary, files = _collect(jemalloc_server, tmp_path / "jemalloc", "--profile", "quick")
    assert by_name(summary)["os.mysqld_memory"]["status"] == "ok"
    info = json.loads(files["os/mysqld_memory_map.json"])
    assert info["pid"] == jemalloc_server.instance.process.pid
    assert info["allocator"]["name"] == "jemalloc"
    assert info["allocator"]["library"] == "libjemalloc.so.2"
    assert any(f["path"] == os.path.realpath(JEMALLOC) or f["path"] == JEMALLOC for f in info["files"])
    # The server of the same binary without the preload is glibc's.
    _, plain = _collect(server, tmp_path / "plain", "--profile", "quick")
    assert json.loads(plain["os/mysqld_memory_map.json"])["allocator"]["name"] == "glibc"
