"""The host's and the server's facts that rules of several groups read, written once.

Every function treats the bundle's members as hostile (wrong types, missing keys, strings
where numbers belong) and returns None when a figure is missing or not a usable number;
`memory_limit` raises `Insufficient` instead, because its callers cannot go on without it.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from report.finding import Insufficient
from report.model import Bundle, to_number
from report.window import Window, parse_ts

MEMINFO = "os/meminfo.json"
HOST = "os/host.json"
PROCESS = "os/mysqld_process.json"
MEMORY_MAP = "os/mysqld_memory_map.json"
CPUINFO = "os/cpuinfo.json"
MONITOR_START = "mysql/innodb_status.txt"
MONITOR_END = "mysql/innodb_status_end.txt"

#: cgroup v1 reports "no limit" as a number close to 2**63; anything this big is no limit.
UNLIMITED = 1 << 60
#: A CPU count above this is a malformed member, not a host.
_MAX_CPUS = 1 << 16


def mapping(value: Any) -> Dict[str, Any]:
    """value when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def dig(data: Any, *keys: str) -> Any:
    """data[k1][k2]… or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def size(value: Optional[float]) -> str:
    """Bytes as a short human figure (1.5 GiB)."""
    if value is None:
        return "?"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def setting(b: Bundle, name: str) -> str:
    """A server variable as evidence shows it: its first 40 characters, or "unknown"."""
    value = b.variable(name)
    return "unknown" if value is None else value[:40]


def known_rates(w: Window, names: Sequence[str]) -> Dict[str, float]:
    """`<name>_per_s` (2 decimals) of each counter the window has and can give a rate of; the
    others are left out (they are context for evidence, not what a rule decides on)."""
    rates: Dict[str, float] = {}
    for name in names:
        if w.has(name):
            try:
                rates[f"{name}_per_s"] = round(w.rate(name), 2)
            except Insufficient:
                continue
    return rates


def _positive(value: Any) -> Optional[float]:
    number = to_number(value)
    return number if number is not None and number > 0 else None


def ram_bytes(b: Bundle) -> Optional[float]:
    """The host's physical memory (MemTotal), from os/meminfo.json."""
    data = b.json(MEMINFO, {})
    return _positive(dig(data, "meminfo", "MemTotal")) or _positive(dig(data, "summary", "total_bytes"))


def cgroup_limit_bytes(b: Bundle) -> Optional[float]:
    """mysqld's cgroup memory limit (its own process's, else the host collector's), or None
    when there is none (cgroup v1's near-2**63 "no limit" included)."""
    for path in (PROCESS, HOST):
        limit = _positive(dig(b.json(path, {}), "cgroup", "memory", "limit_bytes"))
        if limit is not None and limit < UNLIMITED:
            return limit
    return None


def memory_limit(b: Bundle) -> Tuple[float, str]:
    """The memory mysqld can really use: the tighter of RAM and the cgroup limit, and which.
    Raises Insufficient when neither is known."""
    ram, cgroup = ram_bytes(b), cgroup_limit_bytes(b)
    if ram is None and cgroup is None:
        raise Insufficient(f"neither the host's RAM nor a cgroup limit is known ({b.why_missing(MEMINFO)})")
    if cgroup is not None and (ram is None or cgroup < ram):
        return cgroup, "the cgroup memory limit"
    return ram, "the host's RAM"  # type: ignore[return-value]


def mysqld_rss_bytes(b: Bundle) -> Optional[float]:
    """mysqld's measured resident memory (the process collector's, else the memory map's)."""
    rss = _positive(dig(b.json(PROCESS, {}), "memory", "VmRSS"))
    if rss is None:
        rss = _positive(dig(b.json(MEMORY_MAP, {}), "resident", "rss_bytes"))
    return rss


def cores(b: Bundle) -> Optional[float]:
    """The CPUs mysqld can use: os/cpuinfo.json's `usable` (the affinity's count), else
    `logical`, lowered by a cgroup CPU quota (mysqld's own cgroup, else the host's); None when
    no count is a number between 1 and 65,536."""
    count: Optional[float] = None
    for key in ("usable", "logical"):
        value = to_number(dig(b.json(CPUINFO, {}), key))
        if value is not None and 1 <= value <= _MAX_CPUS:
            count = value
            break
    for path in (PROCESS, HOST):
        quota = to_number(dig(b.json(path, {}), "cgroup", "cpu", "quota_cpus"))
        if quota is not None and 0 < quota <= _MAX_CPUS:
            count = min(count, quota) if count else quota
            break
    return count


def swap_total(b: Bundle) -> Optional[float]:
    """The host's swap space in bytes (SwapTotal), from os/meminfo.json; 0 when it has none."""
    data = b.json(MEMINFO, {})
    total = to_number(dig(data, "meminfo", "SwapTotal"))
    if total is None:
        total = to_number(dig(data, "summary", "swap_total_bytes"))
    return total


def intervals(b: Bundle, path: str, key: Optional[str]) -> Window:
    """An OS sampler's rows that cover an interval of the window, as a Window: the first
    row's figures are since boot (its window_seconds is null) and are left out."""
    rows = [r for r in b.jsonl(path) if (to_number(r.get("window_seconds")) or 0) > 0]
    return Window.from_rows(rows, key)


def monitor_number(b: Bundle, path: str, label: str) -> Optional[float]:
    """The number after `label` at a line's start in SHOW ENGINE INNODB STATUS text, or None."""
    text = b.text(path)
    if not text:
        return None
    match = re.search(rf"^{re.escape(label)}\s*:?\s+(\d{{1,20}})\b", text, re.MULTILINE)
    return to_number(match.group(1)) if match else None


REPLICA_HOSTS = "mysql/replication/replica_hosts.json"


def replica_count(b: Bundle) -> Optional[int]:
    """How many replicas registered with this server (SHOW REPLICAS), or None when not read."""
    data = b.json(REPLICA_HOSTS)
    if not isinstance(data, dict) or not isinstance(data.get("replicas"), list):
        return None
    return len(data["replicas"])


def mysqld_started(b: Bundle) -> Optional[float]:
    """When the running mysqld started (POSIX seconds): the first status sample's time minus
    its Uptime; None when the samples do not say."""
    w = b.window
    uptime = w.first("Uptime")
    if w.start is None or uptime is None or uptime < 0:
        return None
    return w.start - uptime


def before_this_run(b: Bundle, events: Sequence[Dict[str, Any]]) -> bool:
    """True when every event (each with a UTC `time`) happened before mysqld's current run
    started: history of the host, not of this server."""
    started = mysqld_started(b)
    if started is None or not events:
        return False
    times = [parse_ts(e.get("time")) for e in events]
    return all(t is not None and t < started for t in times)


def rows(value: Any) -> List[Dict[str, Any]]:
    """The objects of a member's list (anything else in it, or a value that is no list: none)."""
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []
