"""Filesystems and block devices: mounts, options, usage, inodes, I/O scheduler, queue."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional

import psutil

from collectors.os.mysqld import connected, running_variables
from collectors.os.procfs import Reader, selected
from collectors.registry import PROFILES, Artifact, Context, collector

#: Server variables naming folders whose filesystem matters (data, logs, temp).
_MYSQL_PATHS = ("datadir", "tmpdir", "innodb_data_home_dir", "innodb_log_group_home_dir",
                "innodb_undo_directory", "innodb_temp_data_file_path", "log_bin_basename",
                "relay_log_basename", "log_error", "slow_query_log_file", "general_log_file")
_QUEUE = ("rotational", "nr_requests", "read_ahead_kb", "max_sectors_kb", "logical_block_size",
          "physical_block_size", "discard_max_bytes", "write_cache")


@collector("os.disks", profiles=PROFILES, timeout=10)
def disks(ctx: Context) -> Iterator[Artifact]:
    """Mounted filesystems (type, options, usage, inodes), block devices, MySQL paths' mounts."""
    reader = Reader()
    mounts: List[Dict[str, Any]] = []
    for part in psutil.disk_partitions(all=False):
        entry: Dict[str, Any] = {
            "device": part.device, "mountpoint": part.mountpoint, "fstype": part.fstype,
            "options": part.opts.split(","), "block_device": block_device(part.device),
        }
        entry.update(_usage(part.mountpoint))
        mounts.append(entry)
    devices = {}
    for name in _block_names():
        devices[name] = _device(reader, name)
    info = {"filesystems": mounts, "block_devices": devices, "mysql_paths": _mysql_paths(ctx, mounts)}
    reader.note_denied(ctx, "the missing block device details")
    yield Artifact.json("os/disks.json", info)


def block_device(device: str) -> Optional[str]:
    """The whole-disk name under /sys/block for a device path (partition -> its disk)."""
    name = os.path.basename(os.path.realpath(device))
    node = f"/sys/class/block/{name}"
    if not os.path.exists(node):
        return None
    if os.path.exists(f"{node}/partition"):
        return os.path.basename(os.path.dirname(os.path.realpath(node)))
    return name


def _block_names() -> List[str]:
    try:
        names = sorted(os.listdir("/sys/block"))
    except OSError:
        return []
    return [n for n in names if not n.startswith(("loop", "ram"))]


def _device(reader: Reader, name: str) -> Dict[str, Any]:
    folder = f"/sys/block/{name}"
    queue = {key: _number_or_text(reader.line(f"{folder}/queue/{key}")) for key in _QUEUE}
    sectors = reader.number(f"{folder}/size")
    try:
        holders = sorted(os.listdir(f"{folder}/holders"))
        slaves = sorted(os.listdir(f"{folder}/slaves"))
    except OSError:
        holders, slaves = [], []
    return {
        "size_bytes": sectors * 512 if sectors is not None else None,
        "scheduler": selected(reader.line(f"{folder}/queue/scheduler")),
        "schedulers": reader.line(f"{folder}/queue/scheduler"),
        "queue": queue,
        "model": reader.line(f"{folder}/device/model"),
        "vendor": reader.line(f"{folder}/device/vendor"),
        "dm_name": reader.line(f"{folder}/dm/name"),
        "built_on": slaves, "used_by": holders,
    }


def _number_or_text(value: Optional[str]) -> Any:
    return int(value) if value is not None and value.isdigit() else value


def _usage(mountpoint: str) -> Dict[str, Any]:
    try:
        stats = os.statvfs(mountpoint)
        usage = psutil.disk_usage(mountpoint)
    except OSError as exc:
        return {"usage_error": exc.strerror}
    return {
        "total_bytes": usage.total, "used_bytes": usage.used, "free_bytes": usage.free,
        "used_percent": usage.percent,
        "inodes_total": stats.f_files, "inodes_free": stats.f_ffree,
        "inodes_used_percent": round(100.0 * (stats.f_files - stats.f_ffree) / stats.f_files, 2)
        if stats.f_files else None,
    }


def _mysql_paths(ctx: Context, mounts: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Which mount each of the server's folders lives on (only when connected)."""
    if not connected(ctx):
        return None
    running = running_variables(ctx) or dict(ctx.session.identity)
    datadir = str(running.get("datadir") or "")
    every = [p.mountpoint for p in psutil.disk_partitions(all=True)]
    result: Dict[str, Any] = {}
    for name in _MYSQL_PATHS:
        value = running.get(name)
        if not value or not isinstance(value, str) or value in ("stderr", "OFF"):
            continue
        path = value.split(":", 1)[0] if name == "innodb_temp_data_file_path" else value
        if name == "innodb_temp_data_file_path" and not os.path.isabs(path):
            continue
        path = os.path.realpath(os.path.join(datadir, path))
        mountpoint = max((m for m in every if path == m or path.startswith(m.rstrip("/") + "/")),
                         key=len, default=None)
        known = next((m for m in mounts if m["mountpoint"] == mountpoint), None)
        result[name] = {"path": path, "mountpoint": mountpoint,
                        "fstype": known["fstype"] if known else None,
                        "used_percent": known.get("used_percent") if known else None}
    return result
