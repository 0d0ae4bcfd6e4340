"""The mysqld process: command line, memory, threads, files, I/O, limits, OOM score."""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterator, Optional

import psutil

from collectors.os import cgroup
from collectors.os.mysqld import find
from collectors.os.procfs import Reader, epoch_stamp, key_values
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

#: /proc/PID/limits columns are fixed-width: a name, soft, hard and (optional) units.
_LIMIT_LINE = re.compile(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)\s*(\S*)\s*$")
_STATUS_BYTES = ("VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem",
                 "VmData", "VmSwap", "VmLck", "VmPTE", "HugetlbPages")


@collector("os.mysqld_process", profiles=PROFILES, timeout=10)
def mysqld_process(ctx: Context) -> Iterator[Artifact]:
    """The server process found by pid file, port or name, as /proc sees it."""
    search = find(ctx)
    if search.found is None:
        raise Skip(search.reason)
    found, pid = search.found, search.found.pid
    reader = Reader()
    status = key_values(reader.text(f"/proc/{pid}/status"))
    info: Dict[str, Any] = {
        "pid": pid,
        "found_by": found.found_by,
        "cmdline": found.cmdline,
        "user": found.user,
        "exe": _readlink(reader, f"/proc/{pid}/exe"),
        "state": status.get("State"),
        "threads": _int(status.get("Threads")),
        "memory": {k: _kib(status.get(k)) for k in _STATUS_BYTES if k in status},
        "context_switches": {
            "voluntary": _int(status.get("voluntary_ctxt_switches")),
            "involuntary": _int(status.get("nonvoluntary_ctxt_switches")),
        },
        "open_files": _count(reader, f"/proc/{pid}/fd"),
        "io": {k: int(v) for k, v in key_values(reader.text(f"/proc/{pid}/io")).items()
               if v.isdigit()} or None,
        "limits": parse_limits(reader.text(f"/proc/{pid}/limits") or ""),
        "oom_score_adj": reader.number(f"/proc/{pid}/oom_score_adj"),
        "oom_score": reader.number(f"/proc/{pid}/oom_score"),
        "cgroup": cgroup.limits(str(pid), reader),
    }
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        parent = proc.parent()
        info.update({
            "started": epoch_stamp(proc.create_time()),
            "cpu_seconds": {"user": times.user, "system": times.system},
            "nice": proc.nice(),
            "cpu_affinity": sorted(proc.cpu_affinity()) if hasattr(proc, "cpu_affinity") else None,
            "parent": {"pid": parent.pid, "name": parent.name()} if parent else None,
        })
    except psutil.NoSuchProcess:
        ctx.notes.add(f"mysqld (pid {pid}) exited while it was being read", partial=True)
    except psutil.AccessDenied:
        pass
    reader.note_denied(ctx, "mysqld's open file count, I/O counters and executable path "
                            "(or run as the server's user)")
    yield Artifact.json("os/mysqld_process.json", info)


def parse_limits(text: str) -> Dict[str, Dict[str, Any]]:
    """/proc/PID/limits as {"Max open files": {"soft": 1024, "hard": 4096, "units": "files"}}."""
    limits: Dict[str, Dict[str, Any]] = {}
    for line in text.splitlines()[1:]:
        match = _LIMIT_LINE.match(line)
        if match:
            name, soft, hard, units = match.groups()
            limits[name] = {"soft": _limit(soft), "hard": _limit(hard), "units": units or None}
    return limits


def _limit(value: str) -> Any:
    return int(value) if value.isdigit() else value


def _readlink(reader: Reader, path: str) -> Optional[str]:
    try:
        return os.readlink(path)
    except PermissionError:
        reader.denied.append(path)
    except OSError:
        pass
    return None


def _count(reader: Reader, folder: str) -> Optional[int]:
    try:
        return len(os.listdir(folder))
    except PermissionError:
        reader.denied.append(folder)
    except OSError:
        pass
    return None


def _int(value: Optional[str]) -> Optional[int]:
    return int(value) if value and value.isdigit() else None


def _kib(value: Optional[str]) -> Optional[int]:
    parts = (value or "").split()
    return int(parts[0]) * 1024 if parts and parts[0].isdigit() else None
