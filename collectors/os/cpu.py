"""The CPUs: model, counts, frequency and load (/proc/cpuinfo, /sys, psutil)."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional

import psutil

from collectors.os.procfs import Reader
from collectors.registry import PROFILES, Artifact, Context, collector

#: Flags that matter to a database: virtualization, hardware CRC32 and AES, vector units.
_FLAGS = ("hypervisor", "sse4_2", "aes", "avx", "avx2", "avx512f", "pclmulqdq", "crc32", "ht")


@collector("os.cpu", profiles=PROFILES, timeout=5)
def cpu(ctx: Context) -> Iterator[Artifact]:
    """CPU model, logical/physical/usable counts, frequency, governor and load averages."""
    reader = Reader()
    processors = _cpuinfo(reader.text("/proc/cpuinfo") or "")
    first = processors[0] if processors else {}
    flags = set(first.get("flags", first.get("Features", "")).split())
    logical = os.cpu_count()
    load = list(os.getloadavg())
    info: Dict[str, Any] = {
        "model": first.get("model name") or first.get("Model") or first.get("cpu model"),
        "vendor": first.get("vendor_id"),
        "logical": logical,
        "physical_cores": psutil.cpu_count(logical=False),
        "sockets": len({p.get("physical id") for p in processors if "physical id" in p}) or None,
        "usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical,
        "frequency_mhz": _frequency(processors),
        "governor": reader.line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "flags_of_interest": sorted(flags.intersection(_FLAGS)),
        "load_average": {"1m": load[0], "5m": load[1], "15m": load[2]},
        "load_per_cpu": round(load[0] / logical, 3) if logical else None,
    }
    yield Artifact.json("os/cpuinfo.json", info)


def _cpuinfo(text: str) -> List[Dict[str, str]]:
    processors: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                processors.append(current)
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    return processors


def _frequency(processors: List[Dict[str, str]]) -> Optional[Dict[str, Any]]:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, RuntimeError):
        freq = None
    current = [float(p["cpu MHz"]) for p in processors if "cpu MHz" in p]
    if freq is None and not current:
        return None
    return {
        "current": round(freq.current if freq else sum(current) / len(current), 1),
        "min": round(freq.min, 1) if freq and freq.min else None,
        "max": round(freq.max, 1) if freq and freq.max else None,
        "per_cpu": current or None,
    }
