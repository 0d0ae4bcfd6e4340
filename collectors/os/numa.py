"""NUMA layout: nodes, their CPUs, memory, distances and allocation counters (/sys)."""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterator, List

from collectors.os.procfs import Reader, key_values
from collectors.registry import PROFILES, Artifact, Context, collector

_NODES = "/sys/devices/system/node"
_NODE = re.compile(r"^node(\d+)$")


@collector("os.numa", profiles=PROFILES, timeout=5)
def numa(ctx: Context) -> Iterator[Artifact]:
    """Each NUMA node's CPUs, total and free memory, distances, hit/miss counters."""
    reader = Reader()
    try:
        names = sorted((n for n in os.listdir(_NODES) if _NODE.match(n)),
                       key=lambda n: int(n[4:]))
    except OSError:
        names = []
    nodes: List[Dict[str, Any]] = []
    for name in names:
        folder = f"{_NODES}/{name}"
        meminfo = {k.split()[-1]: v for k, v in key_values(reader.text(f"{folder}/meminfo")).items()}
        nodes.append({
            "node": int(name[4:]),
            "cpus": reader.line(f"{folder}/cpulist"),
            "memory_total_bytes": _kib(meminfo.get("MemTotal")),
            "memory_free_bytes": _kib(meminfo.get("MemFree")),
            "distances": [int(d) for d in (reader.line(f"{folder}/distance") or "").split()],
            "numastat": {k: int(v) for k, v in key_values(reader.text(f"{folder}/numastat"), " ").items()
                         if v.isdigit()},
        })
    if not nodes:
        ctx.notes.add("no NUMA information in /sys (kernel without NUMA support): one node assumed")
    yield Artifact.json("os/numa.json", {
        "node_count": len(nodes) or 1,
        "online": reader.line(f"{_NODES}/online"),
        "numa_balancing": reader.number("/proc/sys/kernel/numa_balancing"),
        "nodes": nodes,
    })


def _kib(value: Any) -> Any:
    parts = str(value or "").split()
    return int(parts[0]) * 1024 if parts and parts[0].isdigit() else None
