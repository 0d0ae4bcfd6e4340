"""What the diag console reads of the host outside MySQL: a log's last lines, the OS state.

Only files: a log read backwards from its end, and /proc (uptime, load, memory, mounted
file systems, the busiest processes over half a second). No program is started.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List


def last_lines(path: str, count: int, block: int = 65536) -> str:
    """The last `count` lines of `path`, read backwards from the end in blocks."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count and len(data) < (8 << 20):
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:]).decode("utf-8", "replace")


def os_report() -> str:
    """Uptime, load, memory, file systems and the busiest processes, from /proc."""
    out: List[str] = []
    uptime = float(_read("/proc/uptime").split()[0] or 0)
    load = " ".join(_read("/proc/loadavg").split()[:3])
    out.append(f"up {uptime / 86400:.1f} days; load {load}; {os.cpu_count()} CPUs")
    mem = {}
    for line in _read("/proc/meminfo").splitlines():
        name, _, value = line.partition(":")
        if value.split():
            mem[name] = int(value.split()[0]) * 1024
    if mem:
        out.append(f"memory: {_gib(mem.get('MemTotal', 0))} total, {_gib(mem.get('MemAvailable', 0))} "
                   f"available; swap {_gib(mem.get('SwapTotal', 0) - mem.get('SwapFree', 0))} used of "
                   f"{_gib(mem.get('SwapTotal', 0))}")
    out.append("file systems:")
    seen = set()
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[0].startswith("/dev/") or parts[1] in seen:
            continue
        seen.add(parts[1])
        try:
            stats = os.statvfs(parts[1])
        except OSError:
            continue
        total = stats.f_blocks * stats.f_frsize
        free = stats.f_bavail * stats.f_frsize
        used = 100.0 * (total - free) / total if total else 0.0
        out.append(f"  {parts[1]:<30} {parts[2]:<8} {_gib(total):>10} {used:5.1f}% used")
    before = _processes()
    time.sleep(0.5)
    after = _processes()
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = []
    for pid, (name, cpu, rss) in after.items():
        used_cpu = (cpu - before.get(pid, (name, cpu, rss))[1]) / ticks / 0.5 * 100
        busy.append((used_cpu, rss, pid, name))
    busy.sort(reverse=True)
    out.append("busiest processes (CPU over 0.5 s):")
    out.append(f"  {'pid':>7} {'cpu%':>6} {'rss':>10}  command")
    for used_cpu, rss, pid, name in busy[:10]:
        out.append(f"  {pid:>7} {used_cpu:6.1f} {_gib(rss):>10}  {name}")
    return "\n".join(out) + "\n"


def _processes() -> Dict[int, tuple]:
    found: Dict[int, tuple] = {}
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        text = _read(f"/proc/{entry}/stat")
        if ")" not in text:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        if len(fields) < 22:
            continue
        found[int(entry)] = (name, int(fields[11]) + int(fields[12]), int(fields[21]) * page)
    return found


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _gib(count: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"
