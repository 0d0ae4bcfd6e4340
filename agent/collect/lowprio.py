"""Run gently: a nice level for the CPU and an I/O class for the disk, set before any thread.

Both are inherited by threads created afterwards, so the agent calls `apply` first.
The I/O class is set with the `ioprio_set` system call where its number is known, else
with util-linux's `ionice`; where neither works the agent says so and carries on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import shutil
import subprocess
from typing import List

_IOPRIO_SET = {"x86_64": 251, "i686": 289, "i386": 289, "aarch64": 30, "riscv64": 30,
               "armv7l": 314, "ppc64le": 273, "ppc64": 273, "s390x": 282}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
_CLASSES = {"best-effort": (2, 7), "idle": (3, 0)}


def apply(nice: int, ionice: str) -> List[str]:
    """Lower this process's priorities; return what could not be done, one line each."""
    problems: List[str] = []
    if nice:
        try:
            current = os.getpriority(os.PRIO_PROCESS, 0)
            if current < nice:
                os.nice(nice - current)
        except OSError as exc:
            problems.append(f"cannot set nice {nice}: {exc.strerror}")
    if ionice != "none":
        klass, level = _CLASSES[ionice]
        if not _ioprio_syscall(klass, level) and not _ionice_command(klass, level):
            problems.append(f"cannot set the I/O class {ionice} (no ioprio_set, no ionice)")
    return problems


def io_class() -> int:
    """This thread's I/O scheduling class (0 none, 1 realtime, 2 best-effort, 3 idle); -1 unknown."""
    number = _IOPRIO_SET.get(platform.machine())
    if number is None:
        return -1
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    value = libc.syscall(number + 1, _IOPRIO_WHO_PROCESS, 0)  # ioprio_get follows ioprio_set
    return value >> _IOPRIO_CLASS_SHIFT if value >= 0 else -1


def _ioprio_syscall(klass: int, level: int) -> bool:
    number = _IOPRIO_SET.get(platform.machine())
    if number is None or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.syscall(number, _IOPRIO_WHO_PROCESS, 0,
                            (klass << _IOPRIO_CLASS_SHIFT) | level) == 0
    except OSError:
        return False


def _ionice_command(klass: int, level: int) -> bool:
    tool = shutil.which("ionice")
    if not tool:
        return False
    args = [tool, "-c", str(klass)] + (["-n", str(level)] if klass == 2 else []) + ["-p", str(os.getpid())]
    return subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
