"""Rules: host — the operating system under mysqld (memory, swap, CPU, disks, limits, kernel).

The OS samplers (os/vmstat.jsonl, os/proc_stat.jsonl, os/diskstats.jsonl) write one row per
sample; a row's per-interval values cover the interval that ends there, and the first row's
(`window_seconds` null) cover the time since boot, so the persistence rules read only the
rows of the window's own intervals.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from report.facts import CPUINFO, MEMINFO, PROCESS, before_this_run, intervals, mapping, swap_total
from report.facts import cores as cpu_count
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule
from report.window import Window, guarded_ratio

VMSTAT = "os/vmstat.jsonl"
PROC_STAT = "os/proc_stat.jsonl"
DISKSTATS = "os/diskstats.jsonl"
SYSCTL = "os/sysctl.json"
THP = "os/transparent_hugepage.json"
DISKS = "os/disks.json"
NUMA = "os/numa.json"
OOM = "os/oom_kills.json"
KERNEL_LOG = "os/kernel_log.json"
VARIABLES = "mysql/global_variables.json"
MIB = 1 << 20
#: A condition must hold in at least this share of the window's intervals to be persistent.
PERSISTENT = 0.5
_MYSQLD = ("mysqld", "mariadbd", "mysqld-debug")


def _object(b: Bundle, path: str) -> Dict[str, Any]:
    data = b.json(path)
    if not isinstance(data, dict):
        raise Insufficient(f"{path} is not a JSON object")
    return data


def _share(w: Window, condition: Any) -> float:
    """Persistence over the window's intervals: at least two are needed."""
    if len(w) < 2:
        raise Insufficient(f"{len(w)} interval(s) in the window, 2 needed (collect with --samples 3 or more)")
    return w.persistence(condition, min_samples=2)


#: Pages per second swapped (in + out) that mean the working set does not fit.
SWAP_PAGES = 10.0


@rule("OS-01", "The host swaps during the window",
      group="host", severity="warning", window=True, needs=(VMSTAT,),
      advice="Find what does not fit: compare mysqld's RSS (os/mysqld_process.json) with the RAM "
             "and the cgroup limit, and the other processes' memory. Lower innodb_buffer_pool_size "
             "by the measured shortfall (it is resizable online), or move the other consumers "
             "away, or add RAM. Set vm.swappiness=1 so the kernel prefers dropping page cache.",
      risk="A smaller buffer pool reads more from disk; resizing it online takes a moment of "
           "contention while chunks are freed.",
      verify="pswpin and pswpout per second stay at 0 over a new window (os/vmstat.jsonl).")
def swap_activity(b: Bundle) -> Optional[Hit]:
    """Checks the swap-in and swap-out rates (pages per second from /proc/vmstat's pswpin and
    pswpout) over the window.

    **Why it matters**: a page of the buffer pool or of a thread's memory that was swapped out
    is read back from disk on use: a query that should take microseconds waits for a disk
    read, and under steady swapping the whole server stalls. Swapping during the window means
    memory is short now, not once since boot.

    **Example**: 850 pages/s swapped out and 400 in while mysqld's RSS is 30 GiB on a 32 GiB
    host with a 26 GiB buffer pool.

    **Fix**: make memory fit (smaller buffer pool by the measured shortfall, fewer other
    consumers, more RAM) and set vm.swappiness=1.
    """
    w = b.os_window(VMSTAT, "counters")
    swapped_in, swapped_out = w.rate("pswpin"), w.rate("pswpout")
    pages = swapped_in + swapped_out
    if pages < SWAP_PAGES:
        return None
    return Hit(f"{pages:,.0f} pages/s swapped during the window "
               f"({swapped_in:,.0f} in, {swapped_out:,.0f} out)",
               severity="error" if pages >= 1000 else None,
               evidence=[Evidence(VMSTAT, {"pswpin_per_s": round(swapped_in, 2),
                                           "pswpout_per_s": round(swapped_out, 2),
                                           "window_seconds": round(w.seconds, 1)},
                                  samples=w.evidence_samples("pswpout"))])


@rule("OS-02", "vm.swappiness is high on a host with swap",
      group="host", severity="notice", needs=(SYSCTL, MEMINFO),
      advice="Set vm.swappiness=1 (`sysctl -w vm.swappiness=1`, and in /etc/sysctl.d/ to keep it): "
             "the kernel then drops page cache before it swaps out mysqld's memory. Keep the swap "
             "itself as a safety margin against the OOM killer.",
      risk="None for mysqld; other processes that relied on swapping idle memory keep more RAM.",
      verify="os/sysctl.json of a new bundle shows vm.swappiness=1.")
def swappiness(b: Bundle) -> Optional[Hit]:
    """Checks vm.swappiness (above 10) when the host has swap.

    **Why it matters**: with the default 60 the kernel swaps out anonymous memory (the buffer
    pool) to keep file cache, which InnoDB with O_DIRECT does not even use: the buffer pool
    ends up on disk while the cache holds log files.

    **Example**: vm.swappiness=60 with 8 GiB of swap; after a nightly backup reads 200 GiB of
    files, the buffer pool is partly swapped out and the morning's queries are slow.

    **Fix**: vm.swappiness=1.
    """
    value = to_number(_object(b, SYSCTL).get("vm.swappiness"))
    if value is None:
        raise Insufficient("vm.swappiness is not in os/sysctl.json")
    swap = swap_total(b)
    if swap is None:
        raise Insufficient("the swap size is not in os/meminfo.json")
    if swap <= 0:
        raise NotApplicable("the host has no swap")
    if value <= 10:
        return None
    return Hit(f"vm.swappiness={value:g} with {swap / MIB:,.0f} MiB of swap",
               evidence=[Evidence(SYSCTL, {"vm.swappiness": value, "swap_total_bytes": int(swap)})])


@rule("OS-03", "Transparent huge pages are enabled for every process (always)",
      group="host", severity="warning", needs=(THP,),
      advice="Set THP to madvise or never: `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled` "
             "now, and `transparent_hugepage=madvise` on the kernel command line (or a systemd unit "
             "that writes it before mysqld starts) to keep it.",
      risk="None for mysqld; processes that benefit from huge pages can still ask for them with "
           "madvise.",
      verify="os/transparent_hugepage.json of a new bundle shows enabled=madvise or never.")
def transparent_hugepages(b: Bundle) -> Optional[Hit]:
    """Checks that transparent huge pages are not in `always` mode.

    **Why it matters**: with THP always, the kernel backs mysqld's memory with 2 MiB pages
    and compacts memory to build them: latency spikes when khugepaged or direct compaction
    runs, and memory use grows (a 4 KiB allocation can pin 2 MiB). MySQL, MariaDB, Percona and
    the allocators (jemalloc, tcmalloc) all advise against it.

    **Example**: `enabled = [always]`; every few minutes queries stall for 100–500 ms while
    compact_stall grows in /proc/vmstat.

    **Fix**: madvise or never, on the kernel command line to survive reboots.
    """
    enabled = str(_object(b, THP).get("enabled") or "").strip().lower()
    if not enabled:
        raise Insufficient("the THP mode is not in os/transparent_hugepage.json")
    if enabled != "always":
        return None
    info = _object(b, THP)
    return Hit("Transparent huge pages are enabled=always",
               evidence=[Evidence(THP, {"enabled": enabled, "defrag": str(info.get("defrag"))[:32],
                                        "anon_huge_pages_bytes":
                                            to_number(info.get("anon_huge_pages_bytes"))})])


_SSD_GOOD = ("none", "noop", "mq-deadline", "deadline", "kyber")
_HDD_BAD = ("cfq", "bfq")


def _mysql_devices(disks: Dict[str, Any]) -> List[str]:
    """The block devices under MySQL's paths (through device-mapper), or all of them."""
    devices = mapping(disks.get("block_devices"))
    mounts = {str(f.get("mountpoint")): str(f.get("block_device") or "")
              for f in disks.get("filesystems") or [] if isinstance(f, dict)}
    wanted: List[str] = []
    for entry in mapping(disks.get("mysql_paths")).values():
        device = mounts.get(str(mapping(entry).get("mountpoint")))
        if device:
            wanted.append(device)
    if not wanted:
        wanted = list(devices)
    found: List[str] = []
    queue = list(dict.fromkeys(wanted))
    while queue and len(found) < 200:
        name = queue.pop(0)
        if name in found:
            continue
        found.append(name)
        under = mapping(devices.get(name)).get("built_on")
        if isinstance(under, list):
            queue.extend(str(u) for u in under if isinstance(u, (str, int)))
    return [name for name in found if name in devices]


@rule("OS-04", "The I/O scheduler does not suit the disk under MySQL",
      group="host", severity="notice", needs=(DISKS,),
      advice="Use `none` (NVMe, SSD behind a RAID controller or a cloud volume) or `mq-deadline` "
             "(SATA SSD, spinning disks): `echo none > /sys/block/DEV/queue/scheduler`, kept with "
             "a udev rule (ACTION==\"add|change\", KERNEL==\"nvme*\", ATTR{queue/scheduler}=\"none\").",
      risk="None for mysqld; other I/O on the same disk loses the fairness bfq/cfq gave it.",
      verify="os/disks.json of a new bundle shows the scheduler in brackets as none or mq-deadline.")
def io_scheduler(b: Bundle) -> Optional[Hit]:
    """Checks the I/O scheduler of the block devices under MySQL's paths: on an SSD or NVMe
    anything but none/mq-deadline/kyber, on a rotational disk cfq or bfq.

    **Why it matters**: cfq and bfq were made for desktops: they idle between requests to be
    fair across processes, which adds latency to InnoDB's many small synchronous writes (redo
    log flushes, doublewrite) and caps the IOPS of fast devices.

    **Example**: `nvme0n1` uses bfq; fsync latency of the redo log is 3 ms instead of 0.1 ms.

    **Fix**: none (fast devices) or mq-deadline, kept with a udev rule.
    """
    disks = _object(b, DISKS)
    devices = mapping(disks.get("block_devices"))
    bad = []
    for name in _mysql_devices(disks):
        device = mapping(devices.get(name))
        scheduler = str(device.get("scheduler") or "").strip().lower()
        if not scheduler:
            continue
        rotational = to_number(mapping(device.get("queue")).get("rotational"))
        if rotational == 0 and scheduler not in _SSD_GOOD:
            bad.append({"device": name[:64], "scheduler": scheduler[:32], "rotational": False})
        elif rotational != 0 and scheduler in _HDD_BAD:
            bad.append({"device": name[:64], "scheduler": scheduler[:32], "rotational": rotational == 1})
    if not bad:
        return None
    return Hit("I/O scheduler unsuited to a database on " + ", ".join(
        f"{d['device']} ({d['scheduler']}, {'rotational' if d['rotational'] else 'SSD/NVMe'})" for d in bad),
               evidence=[Evidence(DISKS, {"devices": bad[:20]})])


@rule("OS-05", "Several NUMA nodes with automatic NUMA balancing or no memory interleave",
      group="host", severity="notice", needs=(NUMA,), confidence="medium",
      advice="Turn off automatic NUMA balancing (`sysctl -w kernel.numa_balancing=0`, and in "
             "/etc/sysctl.d/) and spread the buffer pool over the nodes: innodb_numa_interleave=ON "
             "where the server has it (MySQL 5.7+, Percona, MariaDB builds with NUMA), or start "
             "mysqld under `numactl --interleave=all` (systemd: "
             "ExecStart=/usr/bin/numactl --interleave=all /usr/sbin/mysqld …).",
      risk="innodb_numa_interleave and numactl take effect at the next restart; interleave makes "
           "memory access uniformly a bit slower instead of sometimes much slower.",
      verify="os/numa.json of a new bundle shows numa_balancing 0 and the nodes' free memory "
             "balanced; numa_miss stops growing.")
def numa_layout(b: Bundle) -> Optional[Hit]:
    """Checks hosts with two or more NUMA nodes for automatic NUMA balancing (on) and for a
    buffer pool that is not interleaved across nodes (innodb_numa_interleave off).

    **Why it matters**: a buffer pool allocated from one node fills that node; the kernel
    then reclaims or swaps on it although other nodes have free memory ("swap insanity"),
    and automatic balancing migrates pages of a shared buffer pool back and forth, with
    latency spikes.

    **Example**: two nodes, node 0 has 200 MiB free and node 1 has 40 GiB free; mysqld
    swaps.

    **Fix**: numa_balancing=0 and an interleaved buffer pool.
    """
    numa = _object(b, NUMA)
    nodes = to_number(numa.get("node_count"))
    if nodes is None:
        raise Insufficient("node_count is not in os/numa.json")
    if nodes < 2:
        raise NotApplicable("one NUMA node")
    balancing = to_number(numa.get("numa_balancing"))
    interleave = b.switch("innodb_numa_interleave")
    problems = []
    if balancing is not None and balancing > 0:
        problems.append("automatic NUMA balancing is on")
    if interleave is False:
        problems.append("innodb_numa_interleave is OFF")
    elif interleave is None and balancing is None:
        raise Insufficient("neither numa_balancing nor innodb_numa_interleave is known")
    if not problems:
        return None
    free = {str(mapping(n).get("node")): to_number(mapping(n).get("memory_free_bytes"))
            for n in (numa.get("nodes") or []) if isinstance(n, dict)}
    return Hit(f"{nodes:g} NUMA nodes and " + " and ".join(problems),
               evidence=[Evidence(NUMA, {"node_count": nodes, "numa_balancing": balancing,
                                         "innodb_numa_interleave": b.variable("innodb_numa_interleave"),
                                         "free_bytes_by_node": dict(list(free.items())[:16])})])


def _limit(value: Any) -> Optional[float]:
    if str(value).strip().lower() == "unlimited":
        return float("inf")
    return to_number(value)


@rule("OS-06", "mysqld's open-files limit is too low for its caches",
      group="host", severity="warning", needs=(PROCESS, VARIABLES),
      advice="Raise the limit where mysqld is started: `LimitNOFILE=` in a systemd drop-in "
             "(systemctl edit mariadb / mysqld), or open_files_limit in [mysqld_safe]; make it at "
             "least 2 × table_open_cache + max_connections + 10. Then restart.",
      risk="None: file descriptors cost a little kernel memory each.",
      verify="os/mysqld_process.json of a new bundle shows 'Max open files' at or above the "
             "wanted value, and open_files_limit matches it.")
def open_files_limit(b: Bundle) -> Optional[Hit]:
    """Checks mysqld's open-files limit (the soft `Max open files` of the running process)
    against what its caches want (2 × table_open_cache + max_connections + 10, the server's own
    formula) and against the files it has open now (above 80%).

    **Why it matters**: when the limit is lower, the server silently shrinks table_open_cache
    or max_connections at start-up (a warning in the error log), or fails with "Too many open
    files" (error 24) under load: connections are refused and tables cannot be opened.

    **Example**: LimitNOFILE=1024 from the distribution's unit while table_open_cache=4000 and
    max_connections=500: the server runs with a table cache of ~250.

    **Fix**: LimitNOFILE in a systemd drop-in (or open_files_limit), then restart.
    """
    process = _object(b, PROCESS)
    limits = mapping(process.get("limits"))
    soft = _limit(mapping(limits.get("Max open files")).get("soft"))
    if soft is None:
        raise Insufficient("the open-files limit of mysqld is not in os/mysqld_process.json")
    cache, connections = b.number("table_open_cache"), b.number("max_connections")
    if cache is None or connections is None:
        raise Insufficient("table_open_cache or max_connections is not in the server variables")
    wanted = 2 * cache + connections + 10
    configured = b.number("open_files_limit")
    open_now = to_number(process.get("open_files"))
    problems = []
    if soft < wanted:
        problems.append(f"the limit {soft:,.0f} is below the {wanted:,.0f} the caches want")
    usage = None
    if open_now is not None and soft != float("inf"):
        usage = guarded_ratio(min(open_now, soft), soft, 64, "open-files limit")
        if usage >= 0.8:
            problems.append(f"{open_now:,.0f} files are open ({usage:.0%} of the limit)")
    if not problems:
        return None
    return Hit("mysqld's open-files limit is too low: " + "; ".join(problems),
               evidence=[Evidence(PROCESS, {"max_open_files_soft": None if soft == float("inf") else soft,
                                            "open_files": open_now, "wanted": wanted,
                                            "open_files_limit": configured, "table_open_cache": cache,
                                            "max_connections": connections})])


@rule("OS-07", "The kernel's OOM killer killed other processes on the host",
      group="host", severity="warning", needs=(OOM,),
      advice="Find what used the memory at the time (the kill line's anon-rss, the cgroup named "
             "in it). When mysqld was killed, size its memory on measured values: lower "
             "innodb_buffer_pool_size so that RSS plus the per-connection peak fits the RAM or the "
             "cgroup limit with headroom; set oom_score_adj of other processes higher rather than "
             "shielding mysqld alone.",
      risk="A smaller buffer pool reads more from disk; a mysqld that cannot be killed lets the "
           "OOM killer take other vital processes.",
      verify="os/oom_kills.json of later bundles has no new events; mysqld's uptime keeps growing.")
def oom_kills(b: Bundle) -> Optional[Hit]:
    """Checks the kernel log for processes other than mysqld that the OOM killer killed (a
    killed mysqld is LOG-02's finding, with its restarts).

    **Why it matters**: a killed neighbour means the host is short of memory, and mysqld, the
    largest process on a database host, is usually next.

    **Example**: "Killed process 1234 (mariadbd) total-vm:41GB, anon-rss:30GB" in a memory
    cgroup of 31 GiB.

    **Fix**: make mysqld's measured memory fit the RAM or the cgroup limit with headroom.
    """
    data = _object(b, OOM)
    if data.get("readable") is False:
        raise Insufficient("the kernel log was not readable on the host (needs root or CAP_SYSLOG)")
    events = [e for e in (data.get("events") or []) if isinstance(e, dict)]
    if not events:
        return None
    others = [e for e in events if str(e.get("process") or "").lower() not in _MYSQLD]
    if not others:
        return None
    listed = [{"time": str(e.get("time"))[:32], "process": str(e.get("process"))[:64],
               "anon_rss_bytes": to_number(e.get("anon_rss_bytes")),
               "memory_cgroup_oom": bool(e.get("memory_cgroup_oom"))} for e in others[-10:]]
    who = ", ".join(sorted({e["process"] for e in listed}))
    old = before_this_run(b, others)
    return Hit(f"The OOM killer killed {len(others)} process(es) other than mysqld: {who}"
               + (" (all before mysqld's current run started)" if old else ""),
               severity="notice" if old else None,
               evidence=[Evidence(OOM, {"events": len(others), "before_this_run": old, "last": listed})])


def _cpu_rule(b: Bundle, field: str, threshold: float) -> Optional[Hit]:
    w = intervals(b, PROC_STAT, "total")
    if not w.has(field):
        raise Insufficient(f"{field} is not in os/proc_stat.jsonl")
    share = _share(w, lambda v: (to_number(v.get(field)) or 0) > threshold)
    if share < PERSISTENT:
        return None
    gauge = w.gauge(field)
    return Hit(f"CPU {field} above {threshold:g}% in {share:.0%} of the window's intervals "
               f"(average {gauge.avg:.1f}%, peak {gauge.max:.1f}%)",
               evidence=[Evidence(PROC_STAT, {f"{field}_avg_percent": round(gauge.avg, 2),
                                              f"{field}_max_percent": round(gauge.max, 2),
                                              "share_of_intervals": round(share, 3), "intervals": len(w)},
                                  samples=w.evidence_samples(field))])


@rule("OS-09", "CPU iowait is persistently high during the window",
      group="host", severity="warning", window=True, needs=(PROC_STAT,),
      advice="Find the I/O: compare the disks' utilization and await (OS-11) with InnoDB's reads "
             "(Innodb_buffer_pool_reads per second) and writes (Innodb_data_fsyncs, redo). Reads "
             "from a buffer pool too small for the working set are fixed with memory (sized on "
             "measured RAM and RSS) or indexes; writes with innodb_io_capacity matched to the "
             "device and a faster disk for the redo log.",
      risk="Depends on the cause; none from reading more.",
      verify="iowait stays below 20% over a new window (os/proc_stat.jsonl).")
def cpu_iowait(b: Bundle) -> Optional[Hit]:
    """Checks the share of CPU time spent waiting for I/O (iowait above 20%) in at least half of
    the window's intervals.

    **Why it matters**: high iowait means the CPUs idle because the threads they run wait for
    the disk: queries are I/O-bound, and adding CPU will not help.

    **Example**: iowait 45% in 5 of 6 intervals while the datadir's disk is at 100% util.

    **Fix**: reduce the I/O (memory for the working set, indexes) or make it faster.
    """
    return _cpu_rule(b, "iowait", 20.0)


@rule("OS-10", "CPU steal is persistently high during the window (the hypervisor takes CPU)",
      group="host", severity="warning", window=True, needs=(PROC_STAT,),
      advice="The virtual machine gets less CPU than it was promised: move it to a dedicated or "
             "larger instance type (no burstable/shared CPU), or ask the provider about the host's "
             "contention. Tuning mysqld does not help.",
      risk="A larger instance costs more.",
      verify="steal stays below 5% over a new window (os/proc_stat.jsonl).")
def cpu_steal(b: Bundle) -> Optional[Hit]:
    """Checks the share of CPU time stolen by the hypervisor (steal above 10%) in at least half
    of the window's intervals.

    **Why it matters**: stolen time is time a runnable thread of mysqld waited for a physical
    CPU that another guest was using: latency rises and throughput falls with no sign inside
    MySQL; burstable instances that ran out of credits look the same.

    **Example**: steal at 25–40% during the window on a t3 instance after its CPU credits ran out.

    **Fix**: a dedicated or larger instance.
    """
    return _cpu_rule(b, "steal", 10.0)


UTIL_BUSY = 90.0
#: await (ms) that is slow: rotational disks are allowed more.
AWAIT_SLOW = {True: 50.0, False: 10.0, None: 20.0}
MIN_IOPS = 10.0


@rule("OS-11", "A disk is persistently saturated or slow during the window",
      group="host", severity="warning", window=True, needs=(DISKSTATS,),
      advice="See which I/O it is: InnoDB reads (buffer pool misses: memory or indexes, sized on "
             "measured values), writes (innodb_io_capacity matched to the device, redo log on a "
             "faster disk), or something else on the same disk (backups, logs). Move the datadir "
             "or the redo log to a faster device when the load is legitimate.",
      risk="Depends on the change; moving files needs a restart.",
      verify="The disk's util stays below 90% and await below the threshold over a new window "
             "(os/diskstats.jsonl).")
def disk_saturation(b: Bundle) -> Optional[Hit]:
    """Checks each disk's utilization (above 90%) and average wait per I/O (above 10 ms on an
    SSD, 50 ms on a rotational disk, with at least 10 I/Os per second) in at least half of the
    window's intervals.

    **Why it matters**: a disk busy all the time queues every request: commits wait for the
    redo log, reads for the data files, and latency grows faster than the load.

    **Example**: `sdb` at 100% util with 35 ms await in 6 of 6 intervals during a report job.

    **Fix**: reduce the I/O or move it to a faster device.
    """
    w = intervals(b, DISKSTATS, "disks")
    if len(w) < 2:
        raise Insufficient(f"{len(w)} interval(s) of disk statistics, 2 needed")
    devices = mapping(mapping(b.json(DISKS)).get("block_devices"))
    names = sorted({str(n) for _t, values in w.samples for n in values if isinstance(values.get(n), dict)})
    bad = []
    for name in names[:200]:
        rotational = to_number(mapping(mapping(devices.get(name)).get("queue")).get("rotational"))
        slow = AWAIT_SLOW[None if rotational is None else rotational != 0]

        def busy(values: Dict[str, Any], name: str = name, slow: float = slow) -> bool:
            disk = mapping(values.get(name))
            ios = (to_number(disk.get("reads_per_s")) or 0) + (to_number(disk.get("writes_per_s")) or 0)
            return ((to_number(disk.get("util_percent")) or 0) >= UTIL_BUSY
                    or (ios >= MIN_IOPS and (to_number(disk.get("await_ms")) or 0) >= slow))

        share = _share(w, busy)
        if share >= PERSISTENT:
            utils = [to_number(mapping(v.get(name)).get("util_percent")) or 0 for _t, v in w.samples]
            awaits = [to_number(mapping(v.get(name)).get("await_ms")) or 0 for _t, v in w.samples]
            bad.append({"device": name[:64], "share_of_intervals": round(share, 3),
                        "util_max_percent": max(utils), "await_max_ms": max(awaits),
                        "await_threshold_ms": slow})
    if not bad:
        return None
    return Hit("Disk(s) saturated or slow for most of the window: " + ", ".join(
        f"{d['device']} (util up to {d['util_max_percent']:.0f}%, await up to {d['await_max_ms']:.0f} ms, "
        f"{d['share_of_intervals']:.0%} of intervals)" for d in bad),
               evidence=[Evidence(DISKSTATS, {"disks": bad[:20], "intervals": len(w)})])


@rule("OS-12", "The run queue is persistently longer than the CPUs can serve",
      group="host", severity="warning", window=True, needs=(VMSTAT, CPUINFO),
      advice="Find who runs: mysqld's threads (Threads_running, the processlist) or other processes "
             "(os/processes.jsonl). For mysqld: fix the statements that burn CPU (PFS-01, PFS-02) "
             "before adding CPUs; cap concurrency with a connection pool in the application. A "
             "cgroup CPU quota below the load needs raising.",
      risk="Depends on the change.",
      verify="procs_running stays at or below the CPU count over a new window (os/vmstat.jsonl).")
def run_queue(b: Bundle) -> Optional[Hit]:
    """Checks the number of runnable tasks (procs_running) against the CPUs mysqld can use
    (affinity, lowered by a cgroup quota): more than twice the CPUs plus one in at least half
    of the samples.

    **Why it matters**: runnable tasks beyond the CPUs wait for a turn: every query's latency
    grows with the queue even when each statement is cheap; the server is CPU-bound.

    **Example**: procs_running 18–25 on 8 CPUs throughout the window while Threads_running is 20.

    **Fix**: less CPU per statement, less concurrency, or more CPUs.
    """
    cores = cpu_count(b)
    if cores is None:
        raise Insufficient("the number of CPUs is not in the bundle (os/cpuinfo.json)")
    w = b.os_window(VMSTAT, None)
    if not w.has("procs_running"):
        raise Insufficient("procs_running is not in os/vmstat.jsonl")
    threshold = 2 * cores + 1  # the sampler itself is one of the runnable tasks
    share = w.above("procs_running", threshold)
    if share < PERSISTENT:
        return None
    gauge = w.gauge("procs_running")
    # Whose tasks they are: mysqld's own running threads against the CPUs. When mysqld runs
    # no more threads than there are CPUs, the queue is other processes' (a notice).
    mysqld_running = None
    if b.window.has("Threads_running"):
        mysqld_running = b.window.gauge("Threads_running").avg
    others = mysqld_running is not None and mysqld_running <= cores
    return Hit(f"{gauge.avg:.0f} runnable tasks on average (peak {gauge.max:.0f}) on {cores:g} CPUs; "
               f"above {threshold:g} in {share:.0%} of the samples"
               + (f"; mysqld ran {mysqld_running:.1f} threads on average: other processes fill the queue"
                  if others else ""),
               severity="notice" if others else None,
               evidence=[Evidence(VMSTAT, {"cpus": cores, "procs_running_avg": round(gauge.avg, 1),
                                           "procs_running_max": gauge.max,
                                           "share_of_samples": round(share, 3),
                                           "mysqld_threads_running_avg": None if mysqld_running is None
                                           else round(mysqld_running, 1)},
                                  samples=w.evidence_samples("procs_running"))])


_KERNEL_KINDS = ("io_error", "hung_task", "filesystem_error", "hardware_error")


@rule("OS-13", "The kernel log reports I/O, filesystem, hardware errors or hung tasks",
      group="host", severity="error", needs=(KERNEL_LOG,),
      advice="Read the listed kernel lines: I/O and medium errors mean a failing disk or path "
             "(check SMART, the RAID controller, the cloud volume's status) — plan a failover and "
             "verify backups now; a filesystem error needs an fsck at the next maintenance; hung "
             "tasks point at storage that stopped answering.",
      risk="None from investigating; a failing disk can lose data at any time.",
      verify="os/kernel_log.json of a new bundle counts no new events of these kinds.")
def kernel_errors(b: Bundle) -> Optional[Hit]:
    """Checks the kernel log's counts of I/O errors, filesystem errors, hardware errors (MCE,
    EDAC) and hung tasks ("blocked for more than 120 seconds").

    **Why it matters**: InnoDB trusts the storage: an I/O error under the datadir can corrupt
    pages or crash mysqld, a filesystem remounted read-only stops every write, and hung tasks
    mean the storage froze for minutes (the server looks hung too).

    **Example**: "blk_update_request: I/O error, dev sdb, sector 81920" three times and
    "task mariadbd:1234 blocked for more than 120 seconds".

    **Fix**: treat the storage as failing: check it, fail over, verify backups.
    """
    data = _object(b, KERNEL_LOG)
    if data.get("readable") is False:
        raise Insufficient("the kernel log was not readable on the host (needs root or CAP_SYSLOG)")
    counts = mapping(data.get("counts"))
    found = {kind: int(min(to_number(counts.get(kind)) or 0, 1e9)) for kind in _KERNEL_KINDS}
    found = {kind: count for kind, count in found.items() if count > 0}
    if not found:
        return None
    lines = [{"time": str(e.get("time"))[:32], "kind": str(e.get("kind"))[:32],
              "message": str(e.get("message") or "")[:300]}
             for e in (data.get("events") or []) if isinstance(e, dict) and e.get("kind") in found][-10:]
    said = ", ".join(f"{count} {kind.replace('_', ' ')}(s)" for kind, count in found.items())
    events = [e for e in (data.get("events") or []) if isinstance(e, dict) and e.get("kind") in found]
    old = before_this_run(b, events)
    if old:
        severity = "notice"  # host history from before this mysqld started: worth a look, not an alarm
    else:
        severity = "critical" if found.get("filesystem_error") or found.get("io_error") else None
    return Hit(f"Kernel log: {said}" + (" (all before mysqld's current run started)" if old else ""),
               severity=severity,
               evidence=[Evidence(KERNEL_LOG, {"counts": found, "before_this_run": old, "last": lines})])


ALLOCSTALLS = 1.0
DIRECT_SCAN = 1000.0


@rule("OS-14", "Processes stall in direct memory reclaim during the window",
      group="host", severity="warning", window=True, needs=(VMSTAT,),
      advice="Memory is short even without swap: the kernel makes allocating threads (mysqld's) "
             "free pages themselves. Leave more memory free: lower innodb_buffer_pool_size by the "
             "measured shortfall, reduce other consumers, or raise vm.min_free_kbytes moderately "
             "(e.g. 1% of RAM) so kswapd starts earlier.",
      risk="A smaller buffer pool reads more from disk; a much larger min_free_kbytes wastes memory.",
      verify="allocstall and pgscan_direct per second stay at 0 over a new window (os/vmstat.jsonl).")
def direct_reclaim(b: Bundle) -> Optional[Hit]:
    """Checks the rates of allocation stalls (allocstall) and pages scanned by direct reclaim
    (pgscan_direct) over the window.

    **Why it matters**: in direct reclaim the thread that asked for memory (a query allocating a
    sort buffer, InnoDB reading a page) stops until the kernel frees enough: unexplained
    latency spikes of tens to hundreds of milliseconds, often before any swapping shows.

    The evidence also says in which share of the window's intervals processes stalled
    (allocstall above 0 or more than 100 pages/s scanned directly), from the sampler's
    per-interval rates: a steady stall, not one burst.

    **Example**: 40 allocation stalls per second and 90,000 pages/s scanned directly while the
    page cache is nearly empty, in 5 of 6 intervals.

    **Fix**: leave the kernel more free memory (buffer pool by the measured shortfall,
    vm.min_free_kbytes).
    """
    w = b.os_window(VMSTAT, "counters")
    rates: Dict[str, float] = {}
    reasons = []
    for name in ("allocstall", "pgscan_direct"):
        try:
            rates[name] = w.rate(name)
        except Insufficient as exc:
            reasons.append(str(exc))
    if not rates:
        raise Insufficient("; ".join(reasons))
    if rates.get("allocstall", 0) < ALLOCSTALLS and rates.get("pgscan_direct", 0) < DIRECT_SCAN:
        return None
    name = "allocstall" if rates.get("allocstall", 0) >= ALLOCSTALLS else "pgscan_direct"
    values: Dict[str, Any] = {f"{k}_per_s": round(v, 2) for k, v in rates.items()}
    share = _reclaim_share(b)
    if share is not None:
        values["share_of_intervals"] = round(share, 3)
    return Hit("Direct reclaim during the window: " + ", ".join(f"{k} {v:,.1f}/s" for k, v in rates.items())
               + (f", in {share:.0%} of its intervals" if share is not None else ""),
               evidence=[Evidence(VMSTAT, values, samples=w.evidence_samples(name))])


def _reclaim_share(b: Bundle) -> Optional[float]:
    """The share of the window's intervals in which processes stalled in direct reclaim (the
    sampler's per-interval rates), or None with fewer than two intervals: a steady stall and one
    burst have the same average rate."""
    w = intervals(b, VMSTAT, "rates")
    try:
        return _share(w, lambda v: (to_number(v.get("allocstall_per_s")) or 0) > 0
                      or (to_number(v.get("pgscan_direct_per_s")) or 0) > 100)
    except Insufficient:
        return None
