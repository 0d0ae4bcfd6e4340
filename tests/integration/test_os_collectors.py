"""OS collectors against the host itself: every number checked with what /proc and /sys say."""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import psutil
import pytest

from tests.helpers import bundle_files, by_name, collect_json

SAMPLES, INTERVAL = 3, 0.3


def _lines(files: dict, name: str) -> list:
    return [json.loads(line) for line in files[name].splitlines()]


@pytest.fixture(scope="module")
def collected(server, tmp_path_factory):
    """One standard collection while four extra clients hold connections to the server."""
    if server.instance is None:
        pytest.skip("needs a private local instance (MYDIAG_TEST_DSN points elsewhere)")
    held = [server.connect() for _ in range(4)]
    out = tmp_path_factory.mktemp("os-bundles")
    try:
        done, summary = collect_json("--host", server.host, "--port", str(server.port), "--user",
                                     server.user, "--output", str(out), "--samples", str(SAMPLES),
                                     "--interval", str(INTERVAL))
    finally:
        for conn in held:
            conn.close()
    assert summary is not None, done.stderr
    return summary, bundle_files(summary["bundle"])


def test_every_os_collector_succeeds(collected):
    summary, _ = collected
    entries = {n: e for n, e in by_name(summary).items() if n.startswith("os.")}
    assert len(entries) == 17
    assert {n: e["status"] for n, e in entries.items()} == dict.fromkeys(entries, "ok")


def test_memory_matches_proc_meminfo(collected):
    _, files = collected
    meminfo = json.loads(files["os/meminfo.json"])
    with open("/proc/meminfo") as handle:
        real = {line.split(":")[0]: int(line.split()[1]) for line in handle}
    assert meminfo["meminfo"]["MemTotal"] == real["MemTotal"] * 1024
    assert meminfo["meminfo"]["SwapTotal"] == real["SwapTotal"] * 1024
    assert meminfo["summary"]["total_bytes"] == psutil.virtual_memory().total


def test_cpu_counts_and_model_match_the_kernel(collected):
    _, files = collected
    cpu = json.loads(files["os/cpuinfo.json"])
    assert cpu["logical"] == os.cpu_count()
    assert cpu["usable"] == len(os.sched_getaffinity(0))
    with open("/proc/cpuinfo") as handle:
        models = re.findall(r"^model name\s*:\s*(.*)$", handle.read(), re.M)
    assert cpu["model"] == (models[0].strip() if models else cpu["model"])
    assert set(cpu["load_average"]) == {"1m", "5m", "15m"}


def test_per_cpu_utilization_is_sampled_alongside_mysql_status(collected):
    _, files = collected
    rows = _lines(files, "os/proc_stat.jsonl")
    status = _lines(files, "mysql/global_status.jsonl")
    assert [r["sample"] for r in rows] == list(range(SAMPLES))
    assert all(len(r["cpus"]) == os.cpu_count() for r in rows)
    assert rows[0]["window_seconds"] is None
    assert all(abs(r["window_seconds"] - INTERVAL) < 0.15 for r in rows[1:])
    for row in rows:
        for cpu in row["cpus"] + [row["total"]]:
            assert 0 <= cpu["busy"] <= 100
            assert abs(sum(v for k, v in cpu.items() if k not in ("cpu", "busy")) - 100) < 0.5 \
                or sum(v for k, v in cpu.items() if k not in ("cpu", "busy")) == 0
    # The samplers run side by side: each CPU reading is next to its status reading.
    for cpu_row, status_row in zip(rows, status):
        assert cpu_row["ts"].endswith("Z")
        gap = _when(cpu_row["ts"]) - _when(status_row["ts"])
        assert abs(gap.total_seconds()) < 0.25, (cpu_row["ts"], status_row["ts"])


def _when(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_disk_io_counters_come_from_proc_diskstats(collected):
    _, files = collected
    rows = _lines(files, "os/diskstats.jsonl")
    assert len(rows) == SAMPLES
    root_disk = _disk_of("/")
    assert root_disk in rows[-1]["disks"], rows[-1]["disks"].keys()
    with open("/proc/diskstats") as handle:
        now = {p[2]: int(p[3]) for p in (line.split() for line in handle)}
    first, last = rows[0]["disks"][root_disk], rows[-1]["disks"][root_disk]
    assert first["counters"]["reads"] <= last["counters"]["reads"] <= now[root_disk]
    assert 0 <= last["util_percent"] <= 100 and last["reads_per_s"] >= 0


def _disk_of(path: str) -> str:
    device = os.stat(path).st_dev
    node = os.path.realpath(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    return os.path.basename(os.path.dirname(node) if os.path.exists(f"{node}/partition") else node)


def test_network_counters_include_loopback_and_never_run_ahead(collected):
    _, files = collected
    rows = _lines(files, "os/net_dev.jsonl")
    assert len(rows) == SAMPLES
    last = rows[-1]
    assert "lo" in last["counters"]["interfaces"]
    assert last["counters"]["interfaces"]["lo"]["bytes_recv"] <= \
        psutil.net_io_counters(pernic=True)["lo"].bytes_recv
    assert last["interfaces"]["lo"]["bytes_recv_per_s"] >= 0
    assert "RetransSegs_per_s" in last["tcp"]


def test_sysctls_thp_and_numa_match_proc_and_sys(collected):
    _, files = collected
    sysctl = json.loads(files["os/sysctl.json"])
    for name in ("vm.swappiness", "vm.dirty_ratio", "vm.overcommit_memory"):
        with open("/proc/sys/" + name.replace(".", "/")) as handle:
            assert sysctl[name] == int(handle.read())
    thp = json.loads(files["os/transparent_hugepage.json"])
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as handle:
        assert f"[{thp['enabled']}]" in handle.read()
    numa = json.loads(files["os/numa.json"])
    nodes = [n for n in os.listdir("/sys/devices/system/node") if re.match(r"node\d+$", n)]
    assert numa["node_count"] == max(len(nodes), 1)


def test_host_reports_the_running_kernel_and_uptime(collected):
    _, files = collected
    host = json.loads(files["os/host.json"])
    assert host["kernel"]["release"] == os.uname().release
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    assert 0 <= uptime - host["uptime_seconds"] < 120
    assert host["cgroup"]["version"] in ("v1", "v2", "hybrid")


def test_disks_show_usage_and_the_datadir_mount(server, collected):
    _, files = collected
    disks = json.loads(files["os/disks.json"])
    datadir = disks["mysql_paths"]["datadir"]
    assert datadir["path"] == os.path.realpath(server.instance.datadir)
    mounts = {m["mountpoint"]: m for m in disks["filesystems"]}
    if datadir["mountpoint"] in mounts:
        stats = os.statvfs(datadir["mountpoint"])
        assert mounts[datadir["mountpoint"]]["total_bytes"] == stats.f_blocks * stats.f_frsize


def test_tcp_states_see_the_clients_of_the_private_instance(server, collected):
    _, files = collected
    tcp = json.loads(files["os/net_tcp.json"])
    assert tcp["port"] == server.port and tcp["port_from"] == "server"
    assert [entry["address"] for entry in tcp["listening"]] == ["127.0.0.1"]
    # mydiag's own connection plus the four held ones.
    assert tcp["inbound"]["states"].get("ESTABLISHED", 0) >= 5
    assert tcp["inbound"]["by_remote_address"].get("127.0.0.1", 0) >= 5


def test_mysqld_process_is_the_private_instance_as_proc_sees_it(server, collected):
    _, files = collected
    proc = json.loads(files["os/mysqld_process.json"])
    pid = int(server.instance.pid_file.read_text())
    assert proc["pid"] == pid and proc["found_by"] == f"pid file {server.instance.pid_file}"
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        assert proc["cmdline"] == handle.read().decode().rstrip("\0").split("\0")
    with open(f"/proc/{pid}/status") as handle:
        status = dict(line.split(":", 1) for line in handle)
    rss_now = int(status["VmRSS"].split()[0]) * 1024
    assert abs(proc["memory"]["VmRSS"] - rss_now) < max(0.2 * rss_now, 32 << 20)
    assert abs(proc["threads"] - int(status["Threads"])) <= 8
    with open(f"/proc/{pid}/limits") as handle:
        files_line = next(line for line in handle if line.startswith("Max open files"))
    assert proc["limits"]["Max open files"]["soft"] == int(files_line.split()[3])
    with open(f"/proc/{pid}/oom_score_adj") as handle:
        assert proc["oom_score_adj"] == int(handle.read())
    assert proc["open_files"] > 0 and proc["io"]["rchar"] > 0
    assert proc["exe"] == os.readlink(f"/proc/{pid}/exe")


def _proc_stat() -> dict:
    with open("/proc/stat") as handle:
        return {p[0]: int(p[1]) for p in (line.split() for line in handle) if len(p) > 1}


def test_vmstat_rates_come_from_proc_stat_and_vmstat(collected):
    _, files = collected
    rows = _lines(files, "os/vmstat.jsonl")
    assert [r["sample"] for r in rows] == list(range(SAMPLES))
    assert rows[0]["window_seconds"] is None
    assert all(abs(r["window_seconds"] - INTERVAL) < 0.15 for r in rows[1:])
    now = _proc_stat()
    with open("/proc/vmstat") as handle:
        vm = dict(line.split() for line in handle)
    for row in rows:
        assert row["procs_running"] >= 1 and row["procs_blocked"] >= 0  # the sampler itself runs
        assert set(row["counters"]) >= {"context_switches", "interrupts", "forks", "pswpin",
                                        "pswpout", "pgfault", "pgmajfault", "allocstall"}
        assert row["counters"]["context_switches"] <= now["ctxt"]  # never run ahead of the kernel
        assert row["counters"]["pgfault"] <= int(vm["pgfault"])
        assert all(v >= 0 for v in row["rates"].values())
    for before, after in zip(rows, rows[1:]):
        delta = after["counters"]["context_switches"] - before["counters"]["context_switches"]
        assert delta > 0  # a 2-core host with four servers always switches
        assert abs(after["rates"]["context_switches_per_s"] - delta / after["window_seconds"]) \
            <= 0.01 * delta / after["window_seconds"] + 1
    stalls = sum(int(v) for k, v in vm.items() if k.startswith("allocstall"))
    assert rows[-1]["counters"]["allocstall"] <= stalls


def test_tcp_ext_counters_are_sampled_with_the_network(collected):
    _, files = collected
    rows = _lines(files, "os/net_dev.jsonl")
    with open("/proc/net/netstat") as handle:
        header, values = [line.split()[1:] for line in handle if line.startswith("TcpExt:")]
    real = dict(zip(header, map(int, values)))
    for row in rows:
        ext = row["counters"]["tcp_ext"]
        assert {"ListenOverflows", "ListenDrops", "TCPTimeouts", "TCPBacklogDrop"} <= set(ext)
        assert all(ext[k] <= real[k] for k in ("ListenOverflows", "ListenDrops", "TCPTimeouts"))
        assert set(row["tcp_ext_per_s"]) == set(ext)
        assert "RetransSegs_per_s" in row["tcp"]
    assert rows[0]["window_seconds"] is None and rows[1]["window_seconds"] > 0


def test_meminfo_is_read_at_the_start_and_the_end_of_the_window(collected):
    _, files = collected
    meminfo = json.loads(files["os/meminfo.json"])
    start = dt.datetime.fromisoformat(meminfo["ts"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(meminfo["end"]["ts"].replace("Z", "+00:00"))
    assert (SAMPLES - 1) * INTERVAL - 0.1 <= (end - start).total_seconds() <= SAMPLES * INTERVAL + 1
    first, last = meminfo["meminfo"], meminfo["end"]["meminfo"]
    assert first["MemTotal"] == last["MemTotal"]
    assert meminfo["end"]["change"] == {k: v - first[k] for k, v in last.items() if v != first[k]}


def test_process_table_ranks_the_host_by_cpu_and_rss(server, collected):
    _, files = collected
    rows = _lines(files, "os/processes.jsonl")
    table = _lines(files, "os/process_table.jsonl")
    assert [r["sample"] for r in table] == list(range(SAMPLES))
    assert all(abs(r["processes"] - len(psutil.pids())) < 60 for r in table)
    assert all(sum(r["states"].values()) == r["processes"] for r in table)
    for sample in range(SAMPLES):
        shown = [r for r in rows if r["sample"] == sample]
        cpu = sorted((r for r in shown if r["cpu_rank"]), key=lambda r: r["cpu_rank"])
        rss = sorted((r for r in shown if r["rss_rank"]), key=lambda r: r["rss_rank"])
        assert len(cpu) == len(rss) == 15
        assert [r["cpu_percent"] for r in cpu] == sorted((r["cpu_percent"] for r in cpu), reverse=True)
        assert [r["rss_bytes"] for r in rss] == sorted((r["rss_bytes"] for r in rss), reverse=True)
    pid = int(server.instance.pid_file.read_text())
    mine = [r for r in rows if r["pid"] == pid]
    assert mine and all(r["name"] == "mariadbd" and r["user"] == "root" for r in mine)
    assert mine[0]["cmdline"][1:3] == ["--no-defaults", f"--datadir={server.instance.datadir}"]
    assert abs(mine[0]["threads"] - psutil.Process(pid).num_threads()) <= 8


def test_mysqld_memory_map_splits_anonymous_and_file_backed(server, collected):
    _, files = collected
    info = json.loads(files["os/mysqld_memory_map.json"])
    pid = int(server.instance.pid_file.read_text())
    assert info["pid"] == pid and info["ts"].endswith("Z")
    resident = info["resident"]
    with open(f"/proc/{pid}/status") as handle:
        status = dict(line.split(":", 1) for line in handle)
    rss = int(status["VmRSS"].split()[0]) * 1024
    assert abs(resident["rss_bytes"] - rss) < max(0.2 * rss, 32 << 20)
    assert resident["anonymous_bytes"] > resident["file_backed_bytes"] > 0
    assert resident["anonymous_bytes"] + resident["file_backed_bytes"] <= resident["rss_bytes"] + (1 << 20)
    with open(f"/proc/{pid}/maps") as handle:
        assert abs(info["mappings"] - len(handle.readlines())) < 40
    sizes = [m["size_bytes"] for m in info["largest"]]
    assert len(sizes) == 20 and sizes == sorted(sizes, reverse=True)
    assert all(m["kind"] != "reserved" for m in info["largest"])  # no-access reservations cost nothing
    assert any(m["path"] == "[heap]" for m in info["largest"])
    files = {f["path"]: f for f in info["files"]}
    binary = os.readlink(f"/proc/{pid}/exe")
    assert files[binary]["segments"] >= 2 and files[binary]["size_bytes"] > 1 << 20
    assert [f["size_bytes"] for f in info["files"]] == sorted((f["size_bytes"] for f in info["files"]),
                                                              reverse=True)
    assert info["virtual"]["file_bytes"] > 0 and info["virtual"]["anonymous_bytes"] > 0
    assert info["allocator"]["name"] == "glibc" and info["allocator"]["library"].startswith("libc.so")
    assert any(lib.startswith("libstdc++") for lib in info["allocator"]["libraries"])
