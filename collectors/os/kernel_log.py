"""What the kernel said beyond OOM kills: segfaults, hung tasks, I/O, filesystem and
hardware errors, soft lockups, from the kernel log (collectors/os/kmsg.py).

Every event keeps its kernel line (UTC time when it came from /dev/kmsg), the counts
cover all of the log that was read, and the list keeps the most recent ones.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional, Tuple

from collectors.os.kmsg import kernel_log
from collectors.registry import PROFILES, Artifact, Context, collector

_KEEP = 100
_MESSAGE_BYTES = 500

#: (kind, pattern), first match wins. OOM kills are counted here and detailed in oom_kills.json.
KINDS: Tuple[Tuple[str, re.Pattern[str]], ...] = (
    ("oom_kill", re.compile(r"Killed process \d+|Out of memory")),
    ("segfault", re.compile(r"segfault at|general protection fault|traps: .*\btrap\b|"
                            r"\btraps: \S+\[\d+\]")),
    ("hung_task", re.compile(r"blocked for more than \d+ seconds")),
    ("soft_lockup", re.compile(r"soft lockup|hard LOCKUP|rcu_sched detected stall|"
                               r"rcu: INFO: rcu_\w+ detected stall")),
    ("filesystem_error", re.compile(
        r"EXT[234]-fs (error|warning|critical)|EXT[234]-fs \([^)]*\): (error|warning|"
        r"Remounting filesystem read-only)|XFS \([^)]*\): (.*(error|corrupt|Corruption|"
        r"shutdown|Shutting down|Metadata)|.*I/O Error)|BTRFS (error|critical|warning)|"
        r"Remounting filesystem read-only|Corruption of in-memory data", re.I)),
    ("io_error", re.compile(
        r"I/O error|blk_update_request|critical medium error|print_req_error|"
        r"end_request:|Medium Error|Sense Key|SCSI error|nvme\d+\w*: .*(timeout|reset|error)|"
        r"ata\d+(\.\d+)?: .*(failed|error|exception)|Buffer I/O", re.I)),
    ("hardware_error", re.compile(r"Hardware Error|Machine check|mce: \[|EDAC .*error", re.I)),
    ("kernel_bug", re.compile(r"kernel BUG at|Oops:|BUG: unable to handle")),
)

#: `Killed process 9 (mariadbd)`, `task mariadbd:9 blocked`, `mariadbd[9]: segfault`.
_PROCESS = (re.compile(r"Killed process (?P<pid>\d+) \((?P<name>[^)]*)\)"),
            re.compile(r"(?:task |traps: |^|\s)(?P<name>[\w.:/-]+?)(?:\[|:)(?P<pid>\d+)\]?[:\s]"))
#: `(device sda1)`, `dev sdb,`, `EXT4-fs (sda1):`, `XFS (dm-0):`.
_DEVICE = (re.compile(r"\bdev(?:ice)? ([\w.:/-]+?)[),\s]"),
           re.compile(r"\b(?:EXT[234]-fs|XFS|BTRFS(?: \w+)?) \(([\w.:/-]+)\)"))


@collector("os.kernel_log", profiles=PROFILES, timeout=10)
def kernel_events(ctx: Context) -> Iterator[Artifact]:
    """Segfaults, hung tasks, I/O, filesystem and hardware errors from the kernel log."""
    log = kernel_log(ctx)
    log.explain(ctx, "segfaults, hung tasks and I/O errors from the kernel log")
    events = classify(log.lines)
    counts = Counter(e["kind"] for e in events)
    if len(events) > _KEEP:
        ctx.notes.add(f"{len(events)} kernel events found; the last {_KEEP} kept (the counts "
                      "cover all)")
    yield Artifact.json("os/kernel_log.json", {
        "source": log.source,
        "readable": log.source is not None,
        "counts": {kind: counts.get(kind, 0) for kind, _ in KINDS},
        "first": events[0]["time"] if events else None,
        "events": events[-_KEEP:],
    })


def classify(lines: List[Tuple[Optional[str], str]]) -> List[Dict[str, Any]]:
    """The kernel lines that report a problem, each with its kind, oldest first."""
    events: List[Dict[str, Any]] = []
    for moment, message in lines:
        kind = next((k for k, pattern in KINDS if pattern.search(message)), None)
        if kind is None:
            continue
        event: Dict[str, Any] = {"time": moment, "kind": kind,
                                 "message": message.strip()[:_MESSAGE_BYTES]}
        if kind in ("segfault", "hung_task", "oom_kill"):
            process = _first(_PROCESS, message)
            if process:
                event["process"], event["pid"] = process.group("name"), int(process.group("pid"))
        elif kind in ("filesystem_error", "io_error"):
            device = _first(_DEVICE, message)
            if device:
                event["device"] = device.group(1)
        events.append(event)
    return events


def _first(patterns: Tuple[re.Pattern[str], ...], text: str) -> Optional[re.Match[str]]:
    return next((m for m in (p.search(text) for p in patterns) if m), None)
