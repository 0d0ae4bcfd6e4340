"""mysqld's thread stacks, pt-pmp style: one snapshot, identical stacks counted (`--stacks`).

Opt-in, because a snapshot attaches to mysqld with ptrace and every thread stands still
until the tool detaches: about 0.1 s with eu-stack (elfutils, preferred), about 0.5 s
with gdb on an idle server, longer with thousands of threads. The tool is killed after
`TIME_LIMIT` seconds (the kernel detaches a dead tracer's threads), and however it ends,
mysqld is checked afterwards and continued if any of its threads was left stopped.
gdb prints no argument values (`frame-arguments none`): they can hold query text.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from collectors.os.mysqld import find
from collectors.os.procfs import utc_stamp
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Skip, collector

#: In order of preference: eu-stack pauses the server for a fraction of gdb's time.
TOOLS = ("eu-stack", "gdb")
#: The longest the server may stand still for one snapshot before the tool is killed.
TIME_LIMIT = 5.0
#: The raw output kept (a thousand threads of 40 frames is about 4 MiB).
RAW_LIMIT = 8 << 20
_GDB_SETTINGS = ("set debuginfod enabled off", "set pagination off", "set print frame-arguments none",
                 "set print entry-values no", "set width 0")


def tool() -> Optional[str]:
    """The path of the first snapshot tool on PATH, or None."""
    for name in TOOLS:
        found = shutil.which(name)
        if found:
            return found
    return None


def tool_name() -> str:
    """The name of the tool a snapshot would use here (for the notice before it starts)."""
    return os.path.basename(tool() or TOOLS[0])


def refusal() -> Optional[str]:
    """Why no snapshot can be taken on this host (not root, no tool), or None when it can."""
    if os.geteuid() != 0:
        return ("--stacks needs root (it attaches to mysqld with ptrace): run mydiag as root, "
                "or collect without --stacks")
    if tool() is None:
        return ("--stacks needs eu-stack (package elfutils) or gdb, and neither is installed: "
                "install one (apt-get install elfutils, or dnf install elfutils), or collect "
                "without --stacks")
    return None


def command(path: str, pid: int) -> List[str]:
    if os.path.basename(path) == "gdb":
        # -iex: the settings hold from the attach on (its banner prints a frame too).
        words = [path, "-nx", "-batch"]
        for setting in _GDB_SETTINGS:
            words += ["-iex", setting]
        return words + ["-p", str(pid), "-ex", "thread apply all bt"]
    return [path, "-p", str(pid)]


@dataclass
class Snapshot:
    tool: str
    raw: str
    seconds: float
    returncode: Optional[int]
    timed_out: bool = False
    truncated: bool = False
    errors: str = ""
    #: Threads found stopped after the tool ended, and continued with SIGCONT.
    resumed: bool = False


def snapshot(pid: int, path: str, limit: float = TIME_LIMIT) -> Snapshot:
    """Run the tool once against `pid`, for at most `limit` seconds; mysqld is never left stopped."""
    # No debuginfod: a snapshot must not fetch symbols over the network while mysqld waits.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGINFOD")}
    env["LC_ALL"] = "C"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        begun = time.monotonic()
        # Its own session: a Ctrl-C at the terminal does not interrupt it mid-attach.
        proc = subprocess.Popen(command(path, pid), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, env=env, start_new_session=True)
        timed_out = False
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = round(time.monotonic() - begun, 3)
        # A tool killed mid-attach can leave its SIGSTOP pending, delivered after any check:
        # SIGCONT discards a pending stop signal as well as ending a stop.
        resumed = resume_if_stopped(pid, pending_stop=timed_out)
        out.seek(0)
        raw = out.read(RAW_LIMIT + 1)
        err.seek(0)
        errors = err.read(4096).decode("utf-8", "replace").strip()
    return Snapshot(tool=os.path.basename(path), raw=raw[:RAW_LIMIT].decode("utf-8", "replace"),
                    seconds=seconds, returncode=proc.returncode, timed_out=timed_out,
                    truncated=len(raw) > RAW_LIMIT, errors=errors, resumed=resumed)


def thread_states(pid: int) -> Dict[int, str]:
    """Each thread's state letter from /proc (`T` stopped, `t` stopped by a tracer)."""
    states: Dict[int, str] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return states
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                states[int(tid)] = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError, ValueError):
            continue
    return states


def resume_if_stopped(pid: int, wait: float = 1.0, pending_stop: bool = False) -> bool:
    """Continue mysqld if a thread is still stopped once the tool is gone (a SIGSTOP of an
    attach that was never consumed), or always when the tool was killed and may have left
    one pending (`pending_stop`); True when a thread was found stopped."""
    until = time.monotonic() + wait
    while True:
        states = set(thread_states(pid).values())
        if not states & {"T", "t"}:
            if pending_stop:
                _continue(pid)
            return False
        if "t" not in states or time.monotonic() >= until:
            break
        time.sleep(0.02)  # a tracer's exit detaches its threads: give the kernel a moment
    return _continue(pid)


def _continue(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGCONT)
    except OSError:
        return False
    return True


def parse(raw: str) -> List[Tuple[int, List[str]]]:
    """(thread id, function names innermost first) per thread, from eu-stack or gdb output."""
    threads: List[Tuple[int, List[str]]] = []
    for line in raw.splitlines():
        line = line.strip()
        tid = _thread_id(line)
        if tid is not None:
            threads.append((tid, []))
        elif line.startswith("#") and threads:
            threads[-1][1].append(function_name(line))
    return threads


def _thread_id(line: str) -> Optional[int]:
    if line.startswith("TID ") and line.endswith(":"):  # eu-stack
        word = line[4:-1]
    elif line.startswith("Thread ") and "(LWP " in line:  # gdb
        word = line.split("(LWP ", 1)[1].split(")", 1)[0]
    else:
        return None
    return int(word) if word.isdigit() else None


def function_name(frame: str) -> str:
    """`#5  0x55.. in do_handle_one_connection(CONNECT*, bool) () at f.cc:1` -> the bare name."""
    words = frame.split(None, 1)
    rest = words[1] if len(words) > 1 else ""
    if rest.startswith("0x"):
        rest = rest.split(None, 1)[1] if " " in rest else ""
        if rest.startswith("in "):
            rest = rest[3:]
    name = _before_arguments(rest).split("@", 1)[0].strip()
    return name or "??"


def _before_arguments(text: str) -> str:
    """The text before the first `(` outside template brackets (`operator()` kept whole)."""
    depth = 0
    for i, char in enumerate(text):
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif depth == 0 and (
            (char == "(" and not text[:i].endswith("operator"))
            or (char == " " and text[i + 1:i + 2] != "(")
        ):
            return text[:i]
    return text


@dataclass
class Stack:
    count: int
    frames: List[str]
    threads: List[int] = field(default_factory=list)


def aggregate(threads: List[Tuple[int, List[str]]]) -> List[Stack]:
    """Identical stacks counted, most common first (pt-pmp)."""
    counts: Counter = Counter()
    members: Dict[Tuple[str, ...], List[int]] = {}
    for tid, frames in threads:
        key = tuple(frames)
        counts[key] += 1
        members.setdefault(key, []).append(tid)
    ordered = sorted(counts, key=lambda key: (-counts[key], key))
    return [Stack(counts[key], list(key), sorted(members[key])) for key in ordered]


def pmp_text(stacks: List[Stack]) -> str:
    """pt-pmp's output: a count, then the frames innermost first, comma-separated."""
    return "".join(f"{s.count:>7} {','.join(s.frames) or '(no frames)'}\n" for s in stacks)


@collector("os.stacks", profiles=PROFILES, timeout=TIME_LIMIT + 10, opt_in="stacks")
def stacks(ctx: Context) -> Iterator[Artifact]:
    """One snapshot of every mysqld thread's stack (eu-stack or gdb), aggregated like pt-pmp."""
    why = refusal()
    if why is not None:
        raise Skip(why)
    search = find(ctx)
    if search.found is None:
        raise Skip(search.reason)
    pid = search.found.pid
    path = tool()
    assert path is not None  # refusal() said there is one
    before = thread_states(pid)
    if "T" in before.values():
        raise Skip(f"mysqld (pid {pid}) is stopped already (state T): no snapshot was taken, "
                   "and it was left as it was")
    limit = max(0.5, min(TIME_LIMIT, ctx.deadline - time.monotonic() - 2))
    captured = utc_stamp()
    shot = snapshot(pid, path, limit)
    if shot.resumed:
        ctx.notes.add(f"mysqld (pid {pid}) was left stopped after {shot.tool} and was continued "
                      "with SIGCONT")
    threads = parse(shot.raw)
    grouped = aggregate(threads)
    if shot.timed_out:
        ctx.notes.add(f"{shot.tool} did not finish within {limit:g}s and was killed (mysqld "
                      "resumed); with many threads, eu-stack (elfutils) is much faster than gdb",
                      partial=True)
    if shot.truncated:
        ctx.notes.add(f"the raw output was cut at {RAW_LIMIT >> 20} MiB", partial=True)
    if shot.raw.strip():
        yield Artifact.text("os/mysqld_stacks_raw.txt", shot.raw)
    if not threads:
        detail = shot.errors.splitlines()[-1] if shot.errors else f"exit status {shot.returncode}"
        raise CollectorError(f"{shot.tool} gave no stacks for mysqld (pid {pid}): {detail}",
                             "check that root may ptrace here (a container needs CAP_SYS_PTRACE; "
                             "kernel.yama.ptrace_scope must be below 3)")
    yield Artifact.json("os/mysqld_stacks.json", {
        "captured": captured, "pid": pid, "tool": shot.tool, "seconds": shot.seconds,
        "threads": len(threads), "threads_before": len(before), "distinct": len(grouped),
        "timed_out": shot.timed_out, "resumed": shot.resumed,
        "stacks": [{"count": s.count, "frames": s.frames, "threads": s.threads} for s in grouped],
    })
    yield Artifact.text("os/mysqld_stacks_pmp.txt", pmp_text(grouped))
