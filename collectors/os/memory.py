"""Memory and swap: /proc/meminfo in bytes, a summary, and the swap devices, read at the
start of the sampling window; /proc/meminfo again at its end, with what changed."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import psutil

from collectors.os.procfs import Reader, key_values, utc_stamp
from collectors.os.sampling import schedule
from collectors.registry import PROFILES, Artifact, Context, collector


@collector("os.memory", profiles=PROFILES, timeout=5, sampled=True)
def memory(ctx: Context) -> Iterator[Artifact]:
    """Physical memory and swap (totals, available, cache, huge pages, swap devices), at the
    window's start and end."""
    reader = Reader()
    stamp = utc_stamp()
    meminfo = parse_meminfo(reader.text("/proc/meminfo") or "")
    virtual, swap = psutil.virtual_memory(), psutil.swap_memory()
    info = {
        "ts": stamp,
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
        "end": None,
    }
    if ctx.readings > 1:
        # Only the last reading of the shared schedule matters: the end of the window.
        end_stamp = [stamp for _index, stamp, _moment in schedule(ctx)][-1]
        end = parse_meminfo(reader.text("/proc/meminfo") or "")
        info["end"] = {"ts": end_stamp, "meminfo": end,
                       "change": {k: v - meminfo[k] for k, v in end.items()
                                  if k in meminfo and v != meminfo[k]}}
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
