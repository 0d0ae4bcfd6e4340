"""The parsers of the window's OS files, on this machine's real /proc and on kernel and
systemd lines of the shapes different versions write."""

from __future__ import annotations

import os
import secrets

import psutil

from collectors.logs.journal import last_port, parse_events, server_lines
from collectors.os.kernel_log import classify
from collectors.os.mysqld_memory import allocator, by_path, parse_maps, summarize
from collectors.os.network import TCP_EXT, parse_netstat
from collectors.os.vmstat import parse_stat, parse_vmstat
from privacy.lint import random_looking


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def test_proc_stat_and_vmstat_of_this_machine_give_gauges_and_counters():
    stat = _read("/proc/stat")
    gauges, counters = parse_stat(stat)
    assert gauges["procs_running"] >= 1 and gauges["procs_blocked"] >= 0
    assert counters["context_switches"] > 0 and counters["forks"] > 1
    intr = next(line.split()[1:] for line in stat.splitlines() if line.startswith("intr "))
    # The line's first number is the total of all interrupts, not one IRQ's count.
    assert counters["interrupts"] == int(intr[0]) >= max(map(int, intr[1:]))
    assert set(counters) == {"context_switches", "interrupts", "forks", "softirqs"}
    text = _read("/proc/vmstat")
    vm = parse_vmstat(text)
    real = {k: int(v) for k, v in (line.split() for line in text.splitlines())}
    assert {k: vm[k] for k in ("pgfault", "pgmajfault", "pswpin", "pswpout")} == {
        k: real[k] for k in ("pgfault", "pgmajfault", "pswpin", "pswpout")}
    assert vm["allocstall"] == sum(v for k, v in real.items() if k.startswith("allocstall"))
    assert not any(k.startswith("allocstall_") for k in vm)


def test_old_kernels_single_allocstall_is_kept():
    assert parse_vmstat("allocstall 7\npgfault 9\n") == {"allocstall": 7, "pgfault": 9}
    assert "allocstall" not in parse_vmstat("pgfault 9\n")


def test_tcp_ext_names_are_read_by_header_and_never_look_like_tokens():
    text = _read("/proc/net/netstat")
    counters = parse_netstat(text)
    assert {"ListenOverflows", "ListenDrops", "TCPTimeouts", "TCPBacklogDrop"} <= set(counters)
    assert set(counters) <= set(TCP_EXT)
    # The secret lint reads a JSON Lines row as one line: no kept name may look generated.
    assert not [name for name in TCP_EXT if random_looking(name)]
    shuffled = "TcpExt: ListenDrops Foo ListenOverflows\nTcpExt: 5 1 3\n"
    assert parse_netstat(shuffled) == {"ListenDrops": 5, "ListenOverflows": 3}
    assert parse_netstat("IpExt: InNoRoutes\nIpExt: 0\n") == {}


def test_own_memory_map_names_glibc_and_sums_segments_per_file():
    # One read, parsed and counted: the map of a running process changes between two reads.
    text = _read("/proc/self/maps")
    mappings = parse_maps(text)
    assert len(mappings) == len(text.splitlines())
    totals = summarize(mappings)
    assert totals["total_bytes"] == sum(m["size_bytes"] for m in mappings)
    assert totals["file_bytes"] > 0 and totals["heap_bytes"] > 0 and totals["stack_bytes"] > 0
    found = allocator(mappings)
    assert found["name"] == "glibc" and found["library"].startswith("libc.so")
    files = by_path(mappings)
    python = os.path.realpath(psutil.Process().exe())
    entry = next(f for f in files if f["path"] == python or f["path"].endswith("libpython3.11.so.1.0")
                 or f["path"] == psutil.Process().exe())
    assert entry["segments"] >= 2


def test_preloaded_allocators_are_told_apart():
    for library, name in (("libjemalloc.so.2", "jemalloc"), ("libtcmalloc_minimal.so.4", "tcmalloc"),
                          ("libtcmalloc.so.4", "tcmalloc"), ("libmimalloc.so.2.0", "mimalloc")):
        maps = (f"7f0000000000-7f0000100000 r-xp 00000000 fd:01 {secrets.randbelow(9999) + 1}"
                f"    /usr/lib/x86_64-linux-gnu/{library}\n"
                "7f0000200000-7f0000300000 r-xp 00000000 fd:01 77    /usr/lib/x86_64-linux-gnu/libc.so.6\n")
        assert allocator(parse_maps(maps))["name"] == name, library
    reserved = parse_maps("7f0000000000-7f8000000000 ---p 00000000 00:00 0 \n")
    assert reserved[0]["kind"] == "reserved" and summarize(reserved)["reserved_bytes"] == 1 << 39


def test_kernel_problem_lines_of_each_kind_and_ordinary_lines():
    lines = {
        "mysqld[2211]: segfault at 10 ip 00007f sp 00007ffd error 4 in libc-2.17.so[7f+1c3000]": "segfault",
        "traps: mariadbd[31] general protection fault ip:55 sp:7f error:0 in mariadbd[55+1]": "segfault",
        "INFO: task mysqld:1234 blocked for more than 120 seconds.": "hung_task",
        "print_req_error: I/O error, dev sda, sector 1953525120": "io_error",
        "blk_update_request: critical medium error, dev sdb, sector 29": "io_error",
        "Buffer I/O error on dev dm-3, logical block 8, lost async page write": "io_error",
        "nvme nvme0: I/O 12 QID 3 timeout, aborting": "io_error",
        "EXT4-fs error (device dm-0): ext4_lookup:1601: inode #2: comm mysqld: deleted": "filesystem_error",
        "EXT4-fs (sdb1): Remounting filesystem read-only": "filesystem_error",
        "XFS (sdc1): Corruption detected. Unmount and run xfs_repair": "filesystem_error",
        "XFS (sdc1): metadata I/O error in \"xfs_trans_read_buf_map\" at daddr 0x2": "filesystem_error",
        "BTRFS error (device sdd): bdev /dev/sdd errs: wr 1, rd 0": "filesystem_error",
        "watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [mysqld:811]": "soft_lockup",
        "mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 5: be00000000800400": "hardware_error",
        "Out of memory: Killed process 811 (mysqld) total-vm:2000kB, anon-rss:1000kB": "oom_kill",
    }
    ordinary = ["EXT4-fs (vda): mounted filesystem with ordered data mode. Quota mode: none.",
                "XFS (sda1): Mounting V5 Filesystem", "hrtimer: interrupt took 10275019 ns",
                "mariadbd (pid 12) is a normal process"]
    events = classify([(None, line) for line in list(lines) + ordinary])
    assert {e["message"]: e["kind"] for e in events} == lines
    by_message = {e["message"]: e for e in events}
    assert by_message["INFO: task mysqld:1234 blocked for more than 120 seconds."]["pid"] == 1234
    assert by_message["Buffer I/O error on dev dm-3, logical block 8, lost async page write"][
        "device"] == "dm-3"
    assert by_message["XFS (sdc1): Corruption detected. Unmount and run xfs_repair"]["device"] == "sdc1"
    killed = by_message["Out of memory: Killed process 811 (mysqld) total-vm:2000kB, anon-rss:1000kB"]
    assert (killed["process"], killed["pid"]) == ("mysqld", 811)


def test_systemd_lines_become_events_and_the_servers_own_lines_its_log():
    text = "\n".join([
        "2026-12-01T10:00:00.000001+00:00 db1 systemd[1]: mysql.service: Main process exited, "
        "code=exited, status=1/FAILURE",
        "2026-12-01T10:00:00.000002+00:00 db1 systemd[1]: mysql.service: Failed with result "
        "'exit-code'.",
        "2026-12-01T10:00:01.000000+00:00 db1 systemd[1]: mysql.service: Start request repeated too "
        "quickly.",
        "2026-12-01T10:00:02.000000+00:00 db1 systemd[1]: mysqld.service: A process of this unit has "
        "been killed by the OOM killer.",
        "2026-12-01T10:00:03.000000+00:00 db1 systemd[1]: mysqld.service: start operation timed out. "
        "Terminating.",
        "2026-12-01T10:00:04.000000+00:00 db1 mysqld[77]: 2026-12-01T10:00:04.000000Z 0 [System] "
        "[MY-010931] [Server] /usr/sbin/mysqld: ready for connections. Version: '8.0.36'  socket: "
        "'/var/run/mysqld/mysqld.sock'  port: 3307  MySQL Community Server - GPL.",
        "2026-12-01T10:00:05.000000+00:00 db1 sudo[9]: root : COMMAND=/bin/true",
    ])
    events = parse_events(text)
    assert [e["event"] for e in events] == ["exited", "failed", "start_limit", "oom_killed", "timed_out"]
    assert events[0] == {"time": "2026-12-01T10:00:00.000001+00:00", "event": "exited",
                         "code": "exited", "status": 1, "name": "FAILURE"}
    assert events[1]["result"] == "exit-code" and events[4]["operation"] == "start"
    assert last_port(text) == 3307
    own = server_lines(text)
    assert own.startswith("2026-12-01T10:00:04.000000Z 0 [System]") and own.count("\n") == 1
    assert last_port("no start-up here") is None
