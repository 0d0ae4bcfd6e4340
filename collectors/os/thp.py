"""Transparent huge pages: the mode, defrag policy and how much memory uses them."""

from __future__ import annotations

from typing import Iterator

from collectors.os.memory import parse_meminfo
from collectors.os.procfs import Reader, selected
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

_SYS = "/sys/kernel/mm/transparent_hugepage"


@collector("os.transparent_hugepage", profiles=PROFILES, timeout=5)
def transparent_hugepage(ctx: Context) -> Iterator[Artifact]:
    """THP enabled/defrag modes (the bracketed choice), khugepaged, AnonHugePages in use."""
    reader = Reader()
    enabled = reader.line(f"{_SYS}/enabled")
    if enabled is None:
        raise Skip("this kernel has no transparent huge pages (no /sys/kernel/mm/transparent_hugepage)")
    meminfo = parse_meminfo(reader.text("/proc/meminfo") or "")
    yield Artifact.json("os/transparent_hugepage.json", {
        "enabled": selected(enabled),
        "enabled_choices": enabled,
        "defrag": selected(reader.line(f"{_SYS}/defrag")),
        "khugepaged_defrag": reader.line(f"{_SYS}/khugepaged/defrag"),
        "shmem_enabled": selected(reader.line(f"{_SYS}/shmem_enabled")),
        "anon_huge_pages_bytes": meminfo.get("AnonHugePages"),
    })
