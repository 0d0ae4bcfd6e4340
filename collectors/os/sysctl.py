"""Kernel settings that shape a database's memory and I/O behaviour (/proc/sys)."""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Union

from collectors.os.procfs import Reader
from collectors.registry import PROFILES, Artifact, Context, collector

#: vm.* first (swappiness, writeback, overcommit, reclaim), then AIO, files and sockets.
SYSCTLS = (
    "vm.swappiness", "vm.dirty_ratio", "vm.dirty_background_ratio", "vm.dirty_bytes",
    "vm.dirty_background_bytes", "vm.dirty_expire_centisecs", "vm.dirty_writeback_centisecs",
    "vm.overcommit_memory", "vm.overcommit_ratio", "vm.overcommit_kbytes", "vm.min_free_kbytes",
    "vm.vfs_cache_pressure", "vm.zone_reclaim_mode", "vm.max_map_count", "vm.nr_hugepages",
    "vm.panic_on_oom", "vm.oom_kill_allocating_task",
    "kernel.numa_balancing", "kernel.sched_autogroup_enabled",
    "fs.aio-max-nr", "fs.aio-nr", "fs.file-max", "fs.file-nr", "fs.nr_open",
    "net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_keepalive_time",
)


@collector("os.sysctl", profiles=PROFILES, timeout=5)
def sysctl(ctx: Context) -> Iterator[Artifact]:
    """vm.* (swappiness, dirty_*, overcommit), AIO, file and socket limits."""
    reader = Reader()
    values: Dict[str, Optional[Union[int, str, List[int]]]] = {}
    for name in SYSCTLS:
        raw = reader.line("/proc/sys/" + name.replace(".", "/"))
        values[name] = _value(raw)
    reader.note_denied(ctx, "the restricted kernel settings")
    yield Artifact.json("os/sysctl.json", values)


def _value(raw: Optional[str]) -> Optional[Union[int, str, List[int]]]:
    """A number, a list of numbers (fs.file-nr, port ranges), or the text as it is."""
    if raw is None:
        return None
    parts = raw.split()
    if parts and all(p.lstrip("-").isdigit() for p in parts):
        return int(parts[0]) if len(parts) == 1 else [int(p) for p in parts]
    return raw
