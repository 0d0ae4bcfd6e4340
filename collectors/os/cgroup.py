"""CPU and memory limits of a process's control group, cgroup v1, v2 or hybrid.

The limit that counts is the tightest one between the process's group and the root
of its hierarchy, so parents are read too. Inside a cgroup namespace the kernel shows
the group as `/`: the mount's own files are then the ones that apply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from collectors.os.procfs import Reader

#: cgroup v1 reports "no limit" as a huge page-aligned number close to 2**63.
_V1_UNLIMITED = 1 << 62


@dataclass
class Mount:
    point: str
    root: str
    version: int
    controllers: Tuple[str, ...]


def mounts(reader: Reader) -> List[Mount]:
    """cgroup mounts from /proc/self/mountinfo."""
    found: List[Mount] = []
    for line in (reader.text("/proc/self/mountinfo") or "").splitlines():
        head, sep, tail = line.partition(" - ")
        fields, extra = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(extra) < 3:
            continue
        fstype, options = extra[0], extra[2].split(",")
        point = fields[4].replace("\\040", " ")
        if fstype == "cgroup2":
            found.append(Mount(point, fields[3], 2, ()))
        elif fstype == "cgroup":
            found.append(Mount(point, fields[3], 1, tuple(o for o in options if o != "rw")))
    return found


def membership(reader: Reader, pid: str) -> Dict[str, str]:
    """Controller (or "" for the v2 unified group) -> group path, from /proc/PID/cgroup."""
    groups: Dict[str, str] = {}
    for line in (reader.text(f"/proc/{pid}/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            groups[controller] = parts[2]
    return groups


def limits(pid: str = "self", reader: Optional[Reader] = None) -> Dict[str, Any]:
    """The process's cgroup version, CPU quota, memory limit and cpuset, tightest first."""
    reader = reader or Reader()
    groups = membership(reader, pid)
    all_mounts = mounts(reader)
    if not groups:
        return {"version": None}
    v1 = [c for c in groups if c]
    result: Dict[str, Any] = {
        "version": "v2" if not v1 else ("hybrid" if "" in groups else "v1"),
        "groups": {c or "unified": p for c, p in sorted(groups.items())},
    }
    result["cpu"] = _cpu(reader, groups, all_mounts)
    result["memory"] = _memory(reader, groups, all_mounts)
    result["cpuset"] = _cpuset(reader, groups, all_mounts)
    return result


def _chain(groups: Dict[str, str], all_mounts: List[Mount], controller: str,
           v2_file: str) -> Tuple[int, List[str]]:
    """The version serving `controller` and the group folders from the process's up to the root."""
    for mount in all_mounts:
        if mount.version == 1 and controller in mount.controllers and controller in groups:
            return 1, _folders(mount, groups[controller])
    for mount in all_mounts:
        if mount.version == 2 and "" in groups:
            folders = _folders(mount, groups[""])
            if any(os.path.exists(os.path.join(f, v2_file)) for f in folders):
                return 2, folders
    return 0, []


def _folders(mount: Mount, group: str) -> List[str]:
    relative = group
    if mount.root != "/" and (group == mount.root or group.startswith(mount.root + "/")):
        relative = group[len(mount.root):]
    leaf = os.path.normpath(os.path.join(mount.point, relative.lstrip("/")))
    if not os.path.isdir(leaf):
        leaf = mount.point
    folders = [leaf]
    while folders[-1] != mount.point and folders[-1].startswith(mount.point):
        folders.append(os.path.dirname(folders[-1]))
    return folders


def _cpu(reader: Reader, groups: Dict[str, str], all_mounts: List[Mount]) -> Dict[str, Any]:
    version, folders = _chain(groups, all_mounts, "cpu", "cpu.max")
    quotas: List[float] = []
    for folder in folders:
        if version == 1:
            quota = reader.number(f"{folder}/cpu.cfs_quota_us")
            period = reader.number(f"{folder}/cpu.cfs_period_us")
            if quota is not None and quota > 0 and period:
                quotas.append(quota / period)
        elif version == 2:
            parts = (reader.line(f"{folder}/cpu.max") or "").split()
            if len(parts) == 2 and parts[0] != "max":
                quotas.append(int(parts[0]) / int(parts[1]))
    own = folders[0] if folders else None
    weight = None
    if own and version == 1:
        weight = {"cpu.shares": reader.number(f"{own}/cpu.shares")}
    elif own and version == 2:
        weight = {"cpu.weight": reader.number(f"{own}/cpu.weight")}
    return {"cgroup_version": version or None, "path": own,
            "quota_cpus": round(min(quotas), 3) if quotas else None, "weight": weight}


def _memory(reader: Reader, groups: Dict[str, str], all_mounts: List[Mount]) -> Dict[str, Any]:
    version, folders = _chain(groups, all_mounts, "memory", "memory.max")
    names = {1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.memsw.limit_in_bytes"),
             2: ("memory.max", "memory.current", "memory.swap.max")}.get(version)
    if not names or not folders:
        return {"cgroup_version": None}
    found: List[int] = []
    swap: List[int] = []
    for folder in folders:
        for bucket, name in ((found, names[0]), (swap, names[2])):
            value = _bytes(reader.line(f"{folder}/{name}"))
            if value is not None:
                bucket.append(value)
    result = {
        "cgroup_version": version, "path": folders[0],
        "limit_bytes": min(found) if found else None,
        "usage_bytes": _bytes(reader.line(f"{folders[0]}/{names[1]}")),
        # v1 limits memory+swap together; v2 limits swap alone.
        ("memsw_limit_bytes" if version == 1 else "swap_limit_bytes"): min(swap) if swap else None,
    }
    if version == 2:
        result["high_bytes"] = _bytes(reader.line(f"{folders[0]}/memory.high"))
    return result


def _cpuset(reader: Reader, groups: Dict[str, str], all_mounts: List[Mount]) -> Optional[str]:
    version, folders = _chain(groups, all_mounts, "cpuset", "cpuset.cpus.effective")
    if not folders:
        return None
    name = "cpuset.cpus" if version == 1 else "cpuset.cpus.effective"
    return reader.line(f"{folders[0]}/{name}") or None


def _bytes(value: Optional[str]) -> Optional[int]:
    """A limit in bytes, None when unlimited ("max", or v1's near-2**63)."""
    if value is None or value == "max":
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return None if number >= _V1_UNLIMITED or number < 0 else number
