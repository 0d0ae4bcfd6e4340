"""Recent OOM kills from the kernel log: /dev/kmsg (non-blocking), else the syslog files.

Reading the kernel log needs root (or CAP_SYSLOG) where `kernel.dmesg_restrict=1`, and
the syslog files need the `adm` group; without them the collector says so.
"""

from __future__ import annotations

import errno
import os
import re
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import psutil

from collectors.logs.tail import read_tail
from collectors.os.procfs import Reader, epoch_stamp
from collectors.registry import PROFILES, Artifact, Context, collector

_KMSG = "/dev/kmsg"
_SYSLOGS = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")
#: Bounds: the kernel ring buffer is small, but a syslog file is not.
_MAX_RECORDS = 200_000
_SYSLOG_TAIL = 8 << 20
_KEEP = 50

_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)(.*)")
_OOM_KILL = re.compile(r"oom-kill:(\S+)")
_INVOKED = re.compile(r"(\S+) invoked oom-killer: (.*)")
_SIZE_FIELD = re.compile(r"([\w-]+):(\d+)(kB)?")


@collector("os.oom_kills", profiles=PROFILES, timeout=10)
def oom_kills(ctx: Context) -> Iterator[Artifact]:
    """Processes the kernel's OOM killer killed (which, when, how big, which cgroup)."""
    reader = Reader()
    source, lines = _from_kmsg(ctx, reader)
    if source is None:
        source, lines = _from_syslog(ctx, reader)
    if source is None:
        reader.note_denied(ctx, "recent OOM kills from the kernel log")
        if not reader.denied:
            ctx.notes.add("no kernel log found (/dev/kmsg, /var/log/kern.log, /var/log/messages)")
    events = parse_oom(lines)
    if len(events) > _KEEP:
        ctx.notes.add(f"{len(events)} OOM kills found; the last {_KEEP} kept")
    yield Artifact.json("os/oom_kills.json", {
        "source": source,
        "readable": source is not None,
        "events": events[-_KEEP:],
    })


def parse_oom(lines: List[Tuple[Optional[str], str]]) -> List[Dict[str, Any]]:
    """OOM-kill events from (UTC time or None, message) kernel lines, oldest first."""
    events: List[Dict[str, Any]] = []
    invoked: Optional[str] = None
    details: Dict[str, str] = {}
    for moment, message in lines:
        match = _INVOKED.search(message)
        if match:
            invoked, details = match.group(1), {}
            continue
        match = _OOM_KILL.search(message)
        if match:
            details = dict(p.split("=", 1) for p in match.group(1).split(",") if "=" in p)
            continue
        match = _KILLED.search(message)
        if not match:
            continue
        event: Dict[str, Any] = {
            "time": moment, "pid": int(match.group(1)), "process": match.group(2),
            "memory_cgroup_oom": "Memory cgroup" in message, "invoked_by": invoked,
        }
        for key, value, unit in _SIZE_FIELD.findall(match.group(3)):
            event[key.lower().replace("-", "_") + ("_bytes" if unit else "")] = \
                int(value) * (1024 if unit else 1)
        if details.get("pid") == match.group(1):
            event["constraint"] = details.get("constraint")
            event["oom_memcg"] = details.get("oom_memcg")
            event["task_memcg"] = details.get("task_memcg")
        event["message"] = message.strip()
        events.append(event)
        invoked, details = None, {}
    return events


def _from_kmsg(ctx: Context, reader: Reader) -> Tuple[Optional[str], List[Tuple[Optional[str], str]]]:
    try:
        fd = os.open(_KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        reader.denied.append(_KMSG)
        return None, []
    except OSError:
        return None, []
    boot = psutil.boot_time()
    lines: List[Tuple[Optional[str], str]] = []
    try:
        for _ in range(_MAX_RECORDS):
            try:
                record = os.read(fd, 16384)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    # The ring buffer overwrote the next record while reading: go on.
                    continue
                if exc.errno in (errno.EPERM, errno.EACCES):
                    reader.denied.append(_KMSG)
                    return None, []
                raise
            if not record:
                break
            if ctx.deadline and time.monotonic() > ctx.deadline - 0.5:
                ctx.notes.add("kernel log read stopped at the deadline", partial=True)
                break
            head, _, body = record.decode("utf-8", "replace").partition(";")
            message = body.split("\n", 1)[0]
            if "oom" in message or "Killed process" in message:
                fields = head.split(",")
                stamp = epoch_stamp(boot + int(fields[2]) / 1e6) if len(fields) > 2 else None
                lines.append((stamp, message))
    finally:
        os.close(fd)
    return _KMSG, lines


def _from_syslog(ctx: Context, reader: Reader) -> Tuple[Optional[str], List[Tuple[Optional[str], str]]]:
    for path in _SYSLOGS:
        try:
            tail = read_tail(path, _SYSLOG_TAIL)
        except PermissionError:
            reader.denied.append(path)
            continue
        except OSError:
            continue
        lines: List[Tuple[Optional[str], str]] = []
        for line in tail.data.decode("utf-8", "replace").splitlines():
            if "oom" in line or "Killed process" in line:
                # Syslog's own time format varies (RFC 3164 or ISO 8601): kept as written.
                lines.append((line.split(" ", 1)[0] if line[:4].isdigit() else line[:15], line))
        if tail.truncated:
            ctx.notes.add(f"{tail.describe()} (OOM kills searched there)")
        return path, lines
    return None, []
