"""vmstat over the window: run queue, blocked tasks, context switches, interrupts, forks,
swapping, page faults and allocation stalls, from /proc/stat and /proc/vmstat.

Gauges (running and blocked tasks) are read at each sample; counters become rates per
second over the window that ends there (the first row's window starts at boot).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

from collectors.os.procfs import Reader
from collectors.os.sampling import rate, schedule
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

#: /proc/stat counters: output name → the line's key.
_STAT = {"context_switches": "ctxt", "interrupts": "intr", "forks": "processes",
         "softirqs": "softirq"}
#: /proc/vmstat counters kept as rates; `allocstall*` (one per zone, or one in old
#: kernels) are summed into `allocstall`: direct reclaim, a process waiting for memory.
_VMSTAT = ("pswpin", "pswpout", "pgpgin", "pgpgout", "pgfault", "pgmajfault", "pgscan_kswapd",
           "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct", "compact_stall", "oom_kill",
           "thp_fault_alloc", "thp_collapse_alloc", "workingset_refault_file",
           "workingset_refault")


@collector("os.vmstat", profiles=PROFILES, timeout=5, sampled=True)
def vmstat(ctx: Context) -> Iterator[Artifact]:
    """Run queue, blocked tasks and the rates of context switches, forks, swap, faults (JSON Lines)."""
    reader = Reader()
    rows: List[Dict[str, Any]] = []
    before: Optional[Dict[str, int]] = None
    previous = 0.0
    for index, stamp, moment in schedule(ctx):
        gauges, counters = parse_stat(reader.text("/proc/stat") or "")
        if not gauges:
            raise Skip("/proc/stat is not readable here")
        counters.update(parse_vmstat(reader.text("/proc/vmstat") or ""))
        if before is None:
            seconds = float((reader.line("/proc/uptime") or "0").split()[0])
            base: Dict[str, int] = {}
        else:
            seconds, base = moment - previous, before
        rows.append({
            "ts": stamp, "sample": index,
            "window_seconds": round(seconds, 3) if before is not None else None,
            **gauges,
            "rates": {f"{k}_per_s": rate(v, base.get(k, 0), seconds)
                      for k, v in sorted(counters.items())},
            "counters": counters,
        })
        before, previous = counters, moment
    yield Artifact.jsonl("os/vmstat.jsonl", rows)


def parse_stat(text: str) -> Tuple[Dict[str, int], Dict[str, int]]:
    """(gauges, counters) of /proc/stat: procs_running/blocked, and ctxt, intr, forks."""
    values: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit() and not parts[0].startswith("cpu"):
            values[parts[0]] = int(parts[1])  # intr and softirq: the first number is the total
    gauges = {k: values[k] for k in ("procs_running", "procs_blocked") if k in values}
    return gauges, {name: values[key] for name, key in _STAT.items() if key in values}


def parse_vmstat(text: str) -> Dict[str, int]:
    """The kept /proc/vmstat counters, and `allocstall`: every allocstall* summed."""
    counters: Dict[str, int] = {}
    stalls = 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if not value.strip().isdigit():
            continue
        if name.startswith("allocstall"):
            stalls += int(value)
        elif name in _VMSTAT:
            counters[name] = int(value)
    if "allocstall" in text:
        counters["allocstall"] = stalls
    return counters
