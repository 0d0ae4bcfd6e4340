"""The kernel log, read once per run: /dev/kmsg (non-blocking), else the syslog files.

Reading the kernel log needs root (or CAP_SYSLOG) where `kernel.dmesg_restrict=1`, and
the syslog files need the `adm` group. The OOM-kill and kernel-event collectors both
filter the same lines, so the ring buffer is walked once and shared.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import psutil

from collectors.logs.tail import read_tail
from collectors.os.procfs import Reader, epoch_stamp
from collectors.registry import Context

KMSG = "/dev/kmsg"
SYSLOGS = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")
#: Bounds: the kernel ring buffer is small, but a syslog file is not.
_MAX_RECORDS = 200_000
_SYSLOG_TAIL = 8 << 20
_SHARED_KEY = "os.kmsg"
_READING = threading.Lock()
#: Only lines some collector looks at are kept, so a big syslog tail costs no memory: OOM
#: kills (os.oom_kills) and the events os.kernel_log sorts (collectors/os/kernel_log.py).
KEPT = re.compile(
    r"oom|Killed process|segfault|general protection|traps?:|blocked for more than|"
    r"I/O error|blk_update_request|critical medium error|print_req_error|timeout|"
    r"EXT[234]-fs|XFS|BTRFS|Corruption|read-only|Hardware Error|Machine check|MCE|"
    r"soft lockup|hard LOCKUP|rcu_sched|Call Trace|kernel BUG|Oops", re.I)


@dataclass
class KernelLog:
    #: Where the lines came from (/dev/kmsg or a syslog file), None when nothing was readable.
    source: Optional[str] = None
    #: (UTC time or None, message), oldest first.
    lines: List[Tuple[Optional[str], str]] = field(default_factory=list)
    denied: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def explain(self, ctx: Context, what_root_adds: str) -> None:
        """The notes of the read, and why nothing was read when nothing was."""
        for note in self.notes:
            ctx.notes.add(note, partial="deadline" in note)
        if self.source is not None:
            return
        if self.denied:
            restrict = Reader().line("/proc/sys/kernel/dmesg_restrict")
            why = " (kernel.dmesg_restrict=1)" if restrict == "1" else ""
            ctx.notes.add(f"the kernel log is not readable as this user{why}: "
                          f"{', '.join(self.denied)}; run as root to add {what_root_adds}")
        else:
            ctx.notes.add("no kernel log found (" + ", ".join((KMSG,) + SYSLOGS) + ")")


def kernel_log(ctx: Context) -> KernelLog:
    """The kernel log's lines, read once per run and shared between collectors."""
    with _READING:
        if _SHARED_KEY not in ctx.shared:
            found = KernelLog()
            if not _from_kmsg(ctx, found):
                _from_syslog(found)
            ctx.shared[_SHARED_KEY] = found
        return ctx.shared[_SHARED_KEY]


def _from_kmsg(ctx: Context, found: KernelLog) -> bool:
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        found.denied.append(KMSG)
        return False
    except OSError:
        return False
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
                    found.denied.append(KMSG)
                    return False
                raise
            if not record:
                break
            if ctx.deadline and time.monotonic() > ctx.deadline - 0.5:
                found.notes.append("kernel log read stopped at the deadline")
                break
            head, _, body = record.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            message = body.split("\n", 1)[0]
            if KEPT.search(message):
                stamp = epoch_stamp(boot + int(fields[2]) / 1e6) if len(fields) > 2 else None
                lines.append((stamp, message))
    finally:
        os.close(fd)
    found.source, found.lines = KMSG, lines
    return True


def _from_syslog(found: KernelLog) -> None:
    for path in SYSLOGS:
        try:
            tail = read_tail(path, _SYSLOG_TAIL)
        except PermissionError:
            found.denied.append(path)
            continue
        except OSError:
            continue
        for line in tail.data.decode("utf-8", "replace").splitlines():
            if not KEPT.search(line):
                continue
            # Syslog's own time format varies (RFC 3164 or ISO 8601): kept as written.
            found.lines.append((line.split(" ", 1)[0] if line[:4].isdigit() else line[:15], line))
        if tail.truncated:
            found.notes.append(f"{tail.describe()} (the kernel log searched there)")
        found.source = path
        return
