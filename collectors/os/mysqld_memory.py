"""mysqld's memory map: anonymous against file-backed memory, the largest mappings, and the
memory allocator it runs with (jemalloc, tcmalloc or glibc's malloc).

Sizes per mapping come from /proc/PID/maps, which costs the kernel nothing per page;
resident totals from /proc/PID/smaps_rollup, one walk of the page tables. The full
/proc/PID/smaps is never read: on a server with a large buffer pool it walks every page
of every mapping while holding the lock mysqld needs to map memory. LD_PRELOAD is in
the server's environment, which only root can read: the mapped libraries say the same.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterator, List, Optional

from collectors.os.memory import parse_meminfo
from collectors.os.mysqld import find
from collectors.os.procfs import Reader, utc_stamp
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

LARGEST = 20
#: Library name → allocator; the first mapped one wins (a preloaded allocator replaces malloc).
ALLOCATORS = (("libjemalloc", "jemalloc"), ("libtcmalloc", "tcmalloc"),
              ("libmimalloc", "mimalloc"), ("libhoard", "hoard"))
_MAPS_LIMIT = 16 << 20
_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+\S+\s+\S+\s+(\d+)\s*(.*)$")


@collector("os.mysqld_memory", profiles=PROFILES, timeout=10)
def mysqld_memory(ctx: Context) -> Iterator[Artifact]:
    """mysqld's anonymous and file-backed memory, largest mappings, and memory allocator."""
    search = find(ctx)
    if search.found is None:
        raise Skip(search.reason)
    pid = search.found.pid
    reader = Reader()
    stamp = utc_stamp()
    maps = reader.text(f"/proc/{pid}/maps", _MAPS_LIMIT)
    rollup = reader.text(f"/proc/{pid}/smaps_rollup")
    if maps is None:
        reader.note_denied(ctx, "mysqld's memory map (or run as the server's user)")
        raise Skip(f"/proc/{pid}/maps is not readable"
                   + (" as this user" if reader.denied else " (mysqld exited?)"))
    mappings = parse_maps(maps)
    if rollup is None:
        ctx.notes.add(f"/proc/{pid}/smaps_rollup not readable (kernel before 4.14, or denied): "
                      "resident totals missing", partial=True)
    yield Artifact.json("os/mysqld_memory_map.json", {
        "ts": stamp,
        "pid": pid,
        "resident": _rollup(rollup),
        "virtual": summarize(mappings),
        "mappings": len(mappings),
        "largest": sorted((m for m in mappings if m["kind"] != "reserved"),
                          key=lambda m: (-m["size_bytes"], m["start"]))[:LARGEST],
        "files": by_path(mappings)[:LARGEST],
        "allocator": allocator(mappings),
    })


def parse_maps(text: str) -> List[Dict[str, Any]]:
    """/proc/PID/maps as mappings: start, size, permissions, and the path or [heap]/[stack]."""
    mappings = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        start, end, perms, inode, path = match.groups()
        path = path.strip()
        mappings.append({
            "start": start, "size_bytes": int(end, 16) - int(start, 16), "perms": perms,
            "path": path or None, "kind": _kind(path, int(inode), perms),
        })
    return mappings


def _kind(path: str, inode: int, perms: str) -> str:
    if perms.startswith("---"):
        # Address space reserved without access (guard pages, a reservation to grow into):
        # it costs no memory, however large.
        return "reserved"
    if path.startswith("["):
        return path.strip("[]").split(":")[0]  # heap, stack, vdso, anon:name
    if path.startswith(("/memfd:", "/SYSV", "/dev/shm/")):
        return "shared"
    if path and inode:
        return "file"
    return "anonymous"


def summarize(mappings: List[Dict[str, Any]]) -> Dict[str, int]:
    """Virtual sizes by kind (anonymous, heap, file, stack, …) and in all."""
    totals: Dict[str, int] = {}
    for mapping in mappings:
        key = f"{mapping['kind']}_bytes"
        totals[key] = totals.get(key, 0) + mapping["size_bytes"]
    totals["total_bytes"] = sum(m["size_bytes"] for m in mappings)
    return totals


def by_path(mappings: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """File-backed mappings summed per path (a library maps four or five segments), largest first."""
    sizes: Dict[str, List[int]] = {}
    for mapping in mappings:
        if mapping["kind"] in ("file", "shared") and mapping["path"]:
            entry = sizes.setdefault(mapping["path"], [0, 0])
            entry[0] += mapping["size_bytes"]
            entry[1] += 1
    return [{"path": path, "size_bytes": size, "segments": count}
            for path, (size, count) in sorted(sizes.items(), key=lambda i: (-i[1][0], i[0]))]


def _rollup(text: Optional[str]) -> Optional[Dict[str, Any]]:
    """smaps_rollup in bytes, with the anonymous / file-backed split named plainly."""
    if text is None:
        return None
    values = parse_meminfo("\n".join(text.splitlines()[1:]))
    result: Dict[str, Any] = {"smaps_rollup": values}
    if "Rss" in values and "Anonymous" in values:
        result["anonymous_bytes"] = values["Anonymous"]
        result["file_backed_bytes"] = values.get("Pss_File", values["Rss"] - values["Anonymous"])
        result["shmem_bytes"] = values.get("Pss_Shmem")
        result["rss_bytes"] = values["Rss"]
        result["swap_bytes"] = values.get("Swap")
    return result


def allocator(mappings: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Which malloc the process uses, from the shared libraries it has mapped."""
    libraries = sorted({os.path.basename(m["path"]) for m in mappings
                        if m["kind"] == "file" and ".so" in (m["path"] or "")})
    for prefix, name in ALLOCATORS:
        library = next((lib for lib in libraries if lib.startswith(prefix)), None)
        if library:
            return {"name": name, "library": library, "libraries": libraries}
    glibc = next((lib for lib in libraries if lib.startswith("libc.so") or lib.startswith("libc-")),
                 None)
    return {"name": "glibc" if glibc else "unknown", "library": glibc, "libraries": libraries,
            "note": "no allocator library is mapped: the C library's malloc, unless one is "
                    "linked into the binary itself"}
