"""Collecting as an ordinary user: everything that can be read is, and the manifest says
what root would add (the server's open files and I/O, the kernel log, a private error log)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.helpers import NOBODY, ROOT, bundle_files, by_name


def _python_for_nobody() -> str:
    """An interpreter with mydiag that the nobody user can start: this one, or the project's
    main venv when this one lives in a home nobody may enter (pyenv under /root)."""
    for python in (sys.executable, str(ROOT / ".venv" / "bin" / "python")):
        tried = subprocess.run(NOBODY + [python, "-c", "import agent.cli"], cwd=ROOT,
                               capture_output=True, timeout=60)
        if tried.returncode == 0:
            return python
    pytest.fail(f"the nobody user cannot start {sys.executable} nor the project's .venv python")


@pytest.fixture(scope="module")
def as_nobody(server):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user")
    if server.instance is None:
        pytest.skip("needs a private local instance (MYDIAG_TEST_DSN points elsewhere)")
    out = tempfile.mkdtemp(prefix="mydiag-nonroot-", dir="/tmp")
    os.chmod(out, 0o777)
    try:
        done = subprocess.run(
            NOBODY + [_python_for_nobody(), "-m", "agent.cli", "collect", "--json", "--samples", "1",
                      "--host", server.host, "--port", str(server.port), "--user", server.user,
                      "--output", out],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "HOME": out},
        )
        summary = json.loads(done.stdout)
        yield done, summary, bundle_files(summary["bundle"]), os.stat(summary["bundle"]).st_uid
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _said(entry: dict) -> str:
    return "\n".join(entry["notes"] + [entry.get("error") or "", entry.get("fix") or ""])


def test_non_root_collection_writes_a_bundle_as_that_user(as_nobody):
    done, summary, files, owner = as_nobody
    assert done.returncode == 3, done.stderr  # some parts need root: partial, bundle written
    assert owner == 65534 and "manifest.json" in files
    statuses = {n: e["status"] for n, e in by_name(summary).items()}
    for name in ("os.host", "os.cpu", "os.memory", "os.disks", "os.tcp", "os.cpu_usage",
                 "os.disk_io", "os.network", "config.option_files", "mysql.status"):
        assert statuses[name] == "ok", (name, by_name(summary)[name])


def test_mysqld_is_found_by_its_port_and_root_only_parts_are_named(server, as_nobody):
    _, summary, files, _ = as_nobody
    proc = json.loads(files["os/mysqld_process.json"])
    assert proc["pid"] == int(server.instance.pid_file.read_text())
    assert proc["found_by"] == "--port on its command line"
    assert proc["open_files"] is None and proc["io"] is None
    assert proc["memory"]["VmRSS"] > 0 and proc["limits"]["Max open files"]["soft"] > 0
    said = _said(by_name(summary)["os.mysqld_process"])
    assert "run as root to add mysqld's open file count, I/O counters" in said


def test_kernel_log_and_private_error_log_say_root_would_add_them(as_nobody):
    _, summary, files, _ = as_nobody
    entries = by_name(summary)
    oom = json.loads(files["os/oom_kills.json"])
    with open("/proc/sys/kernel/dmesg_restrict") as handle:
        restricted = handle.read().strip() == "1"
    if restricted:
        assert oom["readable"] is False
        assert "/dev/kmsg" in _said(entries["os.oom_kills"])
        assert "run as root to add recent OOM kills" in _said(entries["os.oom_kills"])
        kernel = json.loads(files["os/kernel_log.json"])
        assert kernel["readable"] is False and kernel["events"] == []
        said = _said(entries["os.kernel_log"])
        assert "not readable as this user (kernel.dmesg_restrict=1): /dev/kmsg" in said
        assert "run as root to add segfaults, hung tasks and I/O errors" in said
    error_log = entries["logs.error_log"]
    assert error_log["status"] == "failed" and "permission denied" in error_log["error"]
    assert "root" in error_log["fix"]
    assert entries["config.persisted"]["status"] == "skipped"
    assert "logs/error.log" not in files


def test_the_process_table_is_read_but_mysqlds_memory_map_needs_root(server, as_nobody):
    _, summary, files, _ = as_nobody
    entries = by_name(summary)
    assert entries["os.processes"]["status"] == "ok"
    pid = int(server.instance.pid_file.read_text())
    rows = [json.loads(line) for line in files["os/processes.jsonl"].splitlines()]
    assert any(r["pid"] == pid and r["cmdline"] for r in rows)  # /proc/PID/cmdline is public
    memory = entries["os.mysqld_memory"]
    assert memory["status"] == "skipped" and f"/proc/{pid}/maps is not readable" in memory["error"]
    assert "run as root to add mysqld's memory map" in _said(memory)
