"""The host: kernel, distribution, uptime, virtualization, container and cgroup limits."""

from __future__ import annotations

import os
import platform
import socket
import time
from typing import Dict, Iterator, List, Optional

import psutil

from collectors.os import cgroup
from collectors.os.procfs import Reader, epoch_stamp, key_values
from collectors.registry import PROFILES, Artifact, Context, collector

#: DMI vendor or product text -> hypervisor, in the words `systemd-detect-virt` uses.
_HYPERVISORS = (
    ("qemu", "qemu"), ("kvm", "kvm"), ("vmware", "vmware"), ("virtualbox", "oracle"),
    ("innotek", "oracle"), ("xen", "xen"), ("amazon ec2", "amazon"), ("google", "google"),
    ("microsoft corporation", "microsoft"), ("parallels", "parallels"), ("bochs", "bochs"),
    ("openstack", "openstack"),
)
#: Boot parameters that change how a database performs. Only these are kept: the rest of
#: the kernel command line can carry anything (boot tokens, storage passwords).
KERNEL_PARAMETERS = (
    "transparent_hugepage", "numa", "numa_balancing", "elevator", "isolcpus", "nohz_full",
    "mitigations", "nosmt", "intel_idle.max_cstate", "processor.max_cstate", "idle",
    "intel_pstate", "hugepagesz", "hugepages", "default_hugepagesz", "clocksource", "tsc",
    "swapaccount", "cgroup_no_v1", "systemd.unified_cgroup_hierarchy", "zswap.enabled",
    "psi", "audit", "selinux", "apparmor", "iommu", "intel_iommu", "crashkernel",
)
_CONTAINER_MARKERS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio")


@collector("os.host", profiles=PROFILES, timeout=5)
def host(ctx: Context) -> Iterator[Artifact]:
    """Kernel, distribution, uptime, virtualization or container, and cgroup limits."""
    reader = Reader()
    uname = platform.uname()
    uptime = (reader.line("/proc/uptime") or "0").split()[0]
    release = key_values(reader.text("/etc/os-release"), "=")
    info = {
        "hostname": socket.gethostname(),
        "kernel": {"name": uname.system, "release": uname.release, "version": uname.version,
                   "machine": uname.machine,
                   "boot_parameters": boot_parameters(reader.line("/proc/cmdline") or "")},
        "distribution": {k.lower(): v.strip('"') for k, v in release.items()
                         if k in ("ID", "ID_LIKE", "NAME", "VERSION_ID", "PRETTY_NAME")},
        "uptime_seconds": round(float(uptime), 1),
        "boot_time": epoch_stamp(psutil.boot_time()),
        "timezone": {"name": time.tzname[0], "localtime": _link("/etc/localtime")},
        "clocksource": reader.line(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "virtualization": _virtualization(reader),
        "container": _container(reader),
        "cgroup": cgroup.limits("self", reader),
    }
    reader.note_denied(ctx, "the missing host details")
    yield Artifact.json("os/host.json", info)


def boot_parameters(cmdline: str) -> Dict[str, Optional[str]]:
    """The kernel command line's performance-relevant parameters (KERNEL_PARAMETERS) only."""
    found: Dict[str, Optional[str]] = {}
    for word in cmdline.split():
        if word == "--":
            break  # what follows belongs to init, not the kernel
        key, sep, value = word.partition("=")
        if key in KERNEL_PARAMETERS:
            found[key] = value if sep else None
    return found


def _virtualization(reader: Reader) -> Dict[str, Optional[str]]:
    dmi = " ".join(
        reader.line(f"/sys/class/dmi/id/{name}") or ""
        for name in ("sys_vendor", "product_name", "board_vendor", "bios_vendor")
    ).lower()
    hypervisor = next((name for marker, name in _HYPERVISORS if marker in dmi), None)
    evidence = "dmi" if hypervisor else None
    if hypervisor is None and reader.line("/sys/hypervisor/type"):
        hypervisor, evidence = reader.line("/sys/hypervisor/type"), "/sys/hypervisor/type"
    if hypervisor is None:
        flags = next((line for line in (reader.text("/proc/cpuinfo") or "").splitlines()
                      if line.startswith("flags")), "")
        if " hypervisor" in flags:
            hypervisor, evidence = "unknown", "cpu hypervisor flag"
    return {"hypervisor": hypervisor, "evidence": evidence}


def _container(reader: Reader) -> Dict[str, object]:
    evidence: List[str] = []
    kind: Optional[str] = None
    if os.path.exists("/.dockerenv"):
        kind = "docker"
        evidence.append("/.dockerenv")
    if os.path.exists("/run/.containerenv"):
        kind = "podman"
        evidence.append("/run/.containerenv")
    for line in (reader.text("/proc/1/cgroup") or "").splitlines():
        marker = next((m for m in _CONTAINER_MARKERS if m in line), None)
        if marker:
            kind = kind or ("kubernetes" if marker == "kubepods" else marker)
            evidence.append(f"/proc/1/cgroup mentions {marker}")
            break
    # systemd's own container hint; PID 1's environment is never read (it can hold secrets).
    hint = reader.line("/run/systemd/container")
    if hint:
        kind = kind or hint
        evidence.append("/run/systemd/container")
    if os.path.exists("/proc/vz") and not os.path.exists("/proc/bc"):
        kind = kind or "openvz"
        evidence.append("/proc/vz")
    return {"kind": kind, "evidence": evidence}


def _link(path: str) -> Optional[str]:
    try:
        return os.readlink(path)
    except OSError:
        return None
