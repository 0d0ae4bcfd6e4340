"""The host's process table over the window (a ps/top equivalent, with psutil).

Each sample keeps the busiest processes by CPU over its window and the largest by
resident memory, one row per process (its ranks in both lists), with pid, user, name,
state, threads and command line: the redaction pipeline masks secrets in command lines,
and a line of its own keeps one process's arguments from another's words. An argument the
bundle's last look would still take for a secret is masked here (privacy.argmask),
so that one odd program on the host costs its arguments, not the whole bundle. The whole
table's process, thread and state counts go to a second file. The first window of a
process starts at its own start, as ps's %CPU does.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional, Tuple

import psutil

from collectors.os.sampling import schedule
from collectors.registry import PROFILES, Artifact, Context, collector
from privacy.argmask import mask_arguments

TOP = 15
#: A command line is kept whole up to these bounds; longer ones say how much was cut.
_MAX_ARGS = 64
_MAX_ARG_CHARS = 4096
_ATTRS = ("pid", "ppid", "name", "username", "status", "num_threads", "cpu_times",
          "memory_info", "create_time")

_Key = Tuple[int, float]


@collector("os.processes", profiles=PROFILES, timeout=10, sampled=True)
def processes(ctx: Context) -> Iterator[Artifact]:
    """The top processes by CPU and by resident memory per sample, and the table's state counts."""
    rows: List[Dict[str, Any]] = []
    counts: List[Dict[str, Any]] = []
    before: Dict[_Key, float] = {}
    previous: Optional[float] = None
    for index, stamp, moment in schedule(ctx):
        table = _table()
        seconds = None if previous is None else moment - previous
        now = time.time()
        for proc in table:
            cpu = proc["cpu_seconds"]
            if seconds is None or (proc["pid"], proc["create_time"]) not in before:
                lived = max(now - proc["create_time"], 1e-3)
                span, spent = lived, cpu
            else:
                span, spent = seconds, cpu - before[(proc["pid"], proc["create_time"])]
            proc["cpu_percent"] = round(100.0 * max(spent, 0.0) / span, 2)
        by_cpu = sorted(table, key=lambda p: (-p["cpu_percent"], p["pid"]))[:TOP]
        by_rss = sorted(table, key=lambda p: (-p["rss_bytes"], p["pid"]))[:TOP]
        shown = {p["pid"]: p for p in by_cpu + by_rss}
        for proc in shown.values():
            proc["cmdline"], proc["cmdline_cut"] = _cmdline(proc["pid"])
            if proc["cmdline"]:
                proc["cmdline"], proc["cmdline_masked"] = mask_arguments(proc["cmdline"])
        window = None if seconds is None else round(seconds, 3)
        counts.append({"ts": stamp, "sample": index, "window_seconds": window,
                       "processes": len(table), "threads": sum(p["threads"] or 0 for p in table),
                       "states": dict(Counter(p["state"] for p in table))})
        cpu_rank = {p["pid"]: n for n, p in enumerate(by_cpu, 1)}
        rss_rank = {p["pid"]: n for n, p in enumerate(by_rss, 1)}
        for pid, proc in shown.items():
            rows.append({"ts": stamp, "sample": index, "window_seconds": window,
                         "cpu_rank": cpu_rank.get(pid), "rss_rank": rss_rank.get(pid),
                         **_shown(proc)})
        before = {(p["pid"], p["create_time"]): p["cpu_seconds"] for p in table}
        previous = moment
    yield Artifact.jsonl("os/processes.jsonl", rows)
    yield Artifact.jsonl("os/process_table.jsonl", counts)


def _table() -> List[Dict[str, Any]]:
    """One reading of every process: /proc/PID/stat and statm, which anyone may read."""
    table: List[Dict[str, Any]] = []
    for proc in psutil.process_iter(_ATTRS):
        info = proc.info
        times, memory = info.get("cpu_times"), info.get("memory_info")
        if times is None or memory is None:
            continue  # exited while the table was read
        table.append({
            "pid": info["pid"], "ppid": info.get("ppid"), "name": info.get("name"),
            "user": info.get("username"), "state": info.get("status"),
            "threads": info.get("num_threads"),
            "cpu_seconds": times.user + times.system,
            "rss_bytes": memory.rss, "vms_bytes": memory.vms,
            "create_time": info.get("create_time") or 0.0,
        })
    return table


def _cmdline(pid: int) -> Tuple[Optional[List[str]], bool]:
    """The process's arguments (None for kernel threads and the unreadable), bounded."""
    try:
        args = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return None, False
    if not args:
        return None, False
    kept, size = [], 0
    for arg in args[:_MAX_ARGS]:
        if size + len(arg) > _MAX_ARG_CHARS:
            break
        kept.append(arg)
        size += len(arg)
    return kept, len(kept) < len(args)


def _shown(proc: Dict[str, Any]) -> Dict[str, Any]:
    row = {k: proc[k] for k in ("pid", "ppid", "user", "name", "state", "threads",
                                "cpu_percent", "cpu_seconds", "rss_bytes", "vms_bytes")}
    row["cpu_seconds"] = round(row["cpu_seconds"], 2)
    row["cmdline"] = proc.get("cmdline")
    if proc.get("cmdline_cut"):
        row["cmdline_cut"] = True
    if proc.get("cmdline_masked"):
        row["cmdline_masked"] = True
    row["self"] = proc["pid"] == os.getpid()
    return row
