"""Disk I/O from /proc/diskstats, sampled into IOPS, throughput, latency and utilization."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional

from collectors.os.procfs import Reader
from collectors.os.sampling import rate, schedule
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

#: /proc/diskstats counts in 512-byte sectors whatever the device's block size.
_SECTOR = 512
_FIELDS = ("reads", "reads_merged", "sectors_read", "read_ms", "writes", "writes_merged",
           "sectors_written", "write_ms", "in_flight", "io_ms", "weighted_io_ms")


@collector("os.disk_io", profiles=PROFILES, timeout=5, sampled=True)
def disk_io(ctx: Context) -> Iterator[Artifact]:
    """Per-disk IOPS, MB/s, average wait, queue size and % utilization per sample (JSON Lines)."""
    reader = Reader()
    rows: List[Dict[str, Any]] = []
    before: Optional[Dict[str, Dict[str, int]]] = None
    previous = 0.0
    uptime = 0.0
    for index, stamp, moment in schedule(ctx):
        now = parse_diskstats(reader.text("/proc/diskstats") or "")
        if not now:
            raise Skip("no /proc/diskstats here (no block devices visible, e.g. a container)")
        if before is None:
            uptime = float((reader.line("/proc/uptime") or "0").split()[0])
        seconds = moment - previous if before is not None else uptime
        rows.append({
            "ts": stamp, "sample": index,
            "window_seconds": round(seconds, 3) if before is not None else None,
            "disks": {name: _rates(counters, (before or {}).get(name), seconds)
                      for name, counters in now.items()},
        })
        before, previous = now, moment
    yield Artifact.jsonl("os/diskstats.jsonl", rows)


def parse_diskstats(text: str) -> Dict[str, Dict[str, int]]:
    """Whole disks (not partitions, loops or ram disks) and their counters."""
    disks: Dict[str, Dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 14:
            continue
        name = parts[2]
        if name.startswith(("loop", "ram")) or _is_partition(name):
            continue
        disks[name] = {f: int(v) for f, v in zip(_FIELDS, parts[3:14])}
    return disks


def _is_partition(name: str) -> bool:
    return os.path.exists(f"/sys/class/block/{name}/partition")


def _rates(now: Dict[str, int], before: Optional[Dict[str, int]], seconds: float) -> Dict[str, Any]:
    base = before or {f: 0 for f in _FIELDS}
    delta = {f: max(now[f] - base[f], 0) for f in _FIELDS}
    ios = delta["reads"] + delta["writes"]
    return {
        "reads_per_s": rate(now["reads"], base["reads"], seconds),
        "writes_per_s": rate(now["writes"], base["writes"], seconds),
        "read_bytes_per_s": rate(now["sectors_read"] * _SECTOR, base["sectors_read"] * _SECTOR, seconds),
        "write_bytes_per_s": rate(now["sectors_written"] * _SECTOR, base["sectors_written"] * _SECTOR,
                                  seconds),
        "await_ms": round((delta["read_ms"] + delta["write_ms"]) / ios, 3) if ios else 0.0,
        "queue_size": round(delta["weighted_io_ms"] / (seconds * 1000), 3) if seconds > 0 else 0.0,
        "util_percent": min(round(100.0 * delta["io_ms"] / (seconds * 1000), 2), 100.0)
        if seconds > 0 else 0.0,
        "in_flight": now["in_flight"],
        "counters": now,
    }
