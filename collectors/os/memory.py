"""Memory and swap: /proc/meminfo in bytes, a summary, and the swap devices."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import psutil

from collectors.os.procfs import Reader, key_values
from collectors.registry import PROFILES, Artifact, Context, collector


@collector("os.memory", profiles=PROFILES, timeout=5)
def memory(ctx: Context) -> Iterator[Artifact]:
    """Physical memory and swap: totals, available, cache, huge pages, swap devices."""
    reader = Reader()
    meminfo = parse_meminfo(reader.text("/proc/meminfo") or "")
    virtual, swap = psutil.virtual_memory(), psutil.swap_memory()
    info = {
        "summary": {
            "total_bytes": virtual.total, "available_bytes": virtual.available,
            "used_bytes": virtual.used, "free_bytes": virtual.free,
            "cached_bytes": getattr(virtual, "cached", None),
            "buffers_bytes": getattr(virtual, "buffers", None),
            "available_percent": round(100.0 * virtual.available / virtual.total, 2),
            "swap_total_bytes": swap.total, "swap_used_bytes": swap.used,
            "swap_in_bytes": swap.sin, "swap_out_bytes": swap.sout,
        },
        "meminfo": meminfo,
        "swaps": _swaps(reader.text("/proc/swaps") or ""),
    }
    yield Artifact.json("os/meminfo.json", info)


def parse_meminfo(text: str) -> Dict[str, int]:
    """/proc/meminfo with every `kB` value in bytes (HugePages_* stay counts)."""
    result: Dict[str, int] = {}
    for key, value in key_values(text).items():
        parts = value.split()
        if not parts or not parts[0].isdigit():
            continue
        result[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return result


def _swaps(text: str) -> List[Dict[str, Any]]:
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            rows.append({"device": parts[0], "type": parts[1], "size_bytes": int(parts[2]) * 1024,
                         "used_bytes": int(parts[3]) * 1024, "priority": int(parts[4])})
    return rows
