"""Recent OOM kills from the kernel log (collectors/os/kmsg.py: /dev/kmsg, else syslog).

Reading the kernel log needs root (or CAP_SYSLOG) where `kernel.dmesg_restrict=1`, and
the syslog files need the `adm` group; without them the collector says so.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from collectors.os.kmsg import kernel_log
from collectors.registry import PROFILES, Artifact, Context, collector

_KEEP = 50

_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)(.*)")
_OOM_KILL = re.compile(r"oom-kill:(\S+)")
_INVOKED = re.compile(r"(\S+) invoked oom-killer: (.*)")
_SIZE_FIELD = re.compile(r"([\w-]+):(\d+)(kB)?")


@collector("os.oom_kills", profiles=PROFILES, timeout=10)
def oom_kills(ctx: Context) -> Iterator[Artifact]:
    """Processes the kernel's OOM killer killed (which, when, how big, which cgroup)."""
    log = kernel_log(ctx)
    log.explain(ctx, "recent OOM kills from the kernel log")
    source = log.source
    events = parse_oom([(t, m) for t, m in log.lines if "oom" in m or "Killed process" in m])
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
