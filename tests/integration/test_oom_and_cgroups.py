"""cgroup limits and OOM kills, made for real: a test cgroup, a limit, a process that outgrows it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.conftest import Target, _start
from tests.helpers import bundle_files, by_name, collect_json

MIB = 1 << 20


@pytest.fixture()
def own_server(tmp_path_factory):
    """A server of this test's own. Its folder name is neutral on purpose: logs quote their
    paths, and a word such as "private" in a path is what the secret lint looks for."""
    instance = _start(tmp_path_factory, "cgsrv")
    yield Target("127.0.0.1", instance.port, "root", "", instance)
    instance.kill()


def _v2_parent() -> Path:
    """A cgroup v2 folder whose children may get memory and cpu limits, or None."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        head, _, tail = line.partition(" - ")
        if tail.split()[:1] == ["cgroup2"]:
            root = Path(head.split()[4])
            enabled = (root / "cgroup.subtree_control").read_text().split()
            if {"memory", "cpu"} <= set(enabled):
                return root
    return None


@contextlib.contextmanager
def confined(memory: int, cpus: float) -> Iterator[Dict[str, Path]]:
    """Fresh cgroups with these limits; yields the `cgroup.procs` files to join."""
    if os.geteuid() != 0:
        pytest.skip("creating cgroups needs root")
    name = f"mydiag-test-{secrets.token_hex(4)}"
    made = []
    procs: Dict[str, Path] = {}
    try:
        if Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
            mem, cpu = Path("/sys/fs/cgroup/memory") / name, Path("/sys/fs/cgroup/cpu") / name
            for folder in (mem, cpu):
                folder.mkdir()
                made.append(folder)
            (mem / "memory.limit_in_bytes").write_text(str(memory))
            (cpu / "cpu.cfs_period_us").write_text("100000")
            (cpu / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))
            procs = {"memory": mem / "cgroup.procs", "cpu": cpu / "cgroup.procs"}
        else:
            parent = _v2_parent()
            if parent is None:
                pytest.fail("no writable cgroup v1 memory hierarchy nor a v2 one with memory and cpu")
            folder = parent / name
            folder.mkdir()
            made.append(folder)
            (folder / "memory.max").write_text(str(memory))
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
            (folder / "cpu.max").write_text(f"{int(cpus * 100000)} 100000")
            procs = {"unified": folder / "cgroup.procs"}
        yield procs
    finally:
        for folder in reversed(made):
            # Whatever still runs inside (a server moved in) goes back to the tests' own group.
            home = _own_group(folder.parent)
            for pid in (folder / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (home / "cgroup.procs").write_text(pid)
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def _own_group(mount: Path) -> Path:
    """This process's group folder under a cgroup mount (v1 controller or v2)."""
    controller = "" if (mount / "cgroup.subtree_control").exists() else mount.name
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in (names.split(",") if controller else [names]):
            folder = mount / path.lstrip("/")
            return folder if folder.is_dir() else mount
    return mount


def _join(procs: Dict[str, Path]) -> str:
    """Shell that moves itself into the cgroups before exec'ing the real command."""
    return "; ".join(f"echo $$ > {path}" for path in procs.values())


def test_cgroup_limits_of_mydiag_and_of_mysqld_are_reported(own_server, tmp_path):
    pid = int(own_server.instance.pid_file.read_text())
    with confined(768 * MIB, 0.5) as procs:
        for path in procs.values():
            path.write_text(str(pid))  # the server itself now runs under the limits
        script = (f"{_join(procs)}; exec {sys.executable} -m agent.cli collect --json --profile quick "
                  f"--host 127.0.0.1 --port {own_server.port} --user root --output {tmp_path}")
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
        summary = json.loads(done.stdout)
        files = bundle_files(summary["bundle"])
    for name in ("os/host.json", "os/mysqld_process.json"):
        found = json.loads(files[name])["cgroup"]
        assert found["memory"]["limit_bytes"] == 768 * MIB, (name, found)
        assert found["cpu"]["quota_cpus"] == 0.5, (name, found)


def test_a_recent_oom_kill_is_found_in_the_kernel_log(server, tmp_path):
    with confined(64 * MIB, 1.0) as procs:
        hog = subprocess.Popen(["sh", "-c", f"{_join(procs)}; exec {sys.executable} -c "
                                "'import time; b = bytearray(256 << 20); time.sleep(5)'"])
        hog.wait(60)
    assert hog.returncode in (-9, 137), "the kernel did not kill the process over its limit"
    done, summary = collect_json("--profile", "quick", "--host", server.host, "--port",
                                 str(server.port), "--user", server.user, "--output", str(tmp_path))
    assert summary is not None, done.stderr
    assert by_name(summary)["os.oom_kills"]["status"] == "ok"
    report = json.loads(bundle_files(summary["bundle"])["os/oom_kills.json"])
    assert report["readable"] and report["source"] in ("/dev/kmsg", "/var/log/kern.log",
                                                       "/var/log/messages", "/var/log/syslog")
    event = next(e for e in report["events"] if e["pid"] == hog.pid)
    assert event["memory_cgroup_oom"] and event["anon_rss_bytes"] > 32 * MIB
    assert event["time"].endswith("Z")
