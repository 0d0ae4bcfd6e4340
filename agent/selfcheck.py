"""What this host offers a collection, checked without collecting (`mydiag self-check`).

Each row names one thing a collector needs (the interpreter, root, a tool, a file under
/proc or /sys, a log, an option file, the server's process, a socket), its status, what
was found, and what a collection loses without it: the collector names come from the
collectors themselves (their modules own the paths and tools asked about here).

Nothing here connects to MySQL or reads more than it must to learn "readable": a file is
opened and closed (or a folder listed), never printed; option files and logs are named by
path only, so the table holds no secret. The server process is found the way the
collectors find it (collectors.os.mysqld); with --port or --socket, the one serving them.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Dict, List, Optional

import psutil

from agent.collect.connection import DEFAULT_SOCKETS
from agent.home import home
from collectors.config.search import read_server_files
from collectors.config.settings import UnknownSettings, resolve, setting
from collectors.config.values import TRUE
from collectors.logs.error_log import DEFAULT_PATHS
from collectors.logs.journal import JOURNALCTL
from collectors.os.kmsg import KMSG
from collectors.os.mysqld import Mysqld, find, server_args
from collectors.os.stacks import TOOLS as STACK_TOOLS
from collectors.registry import Context

OK = "ok"
MISSING = "missing"
NOT_READABLE = "not readable"
NOT_APPLICABLE = "n/a"
#: Not root: works, with the losses the row names.
LIMITED = "limited"

#: Optional programs on PATH, and what each is for (or that mydiag does without it).
TOOLS = (
    *((name, "os.stacks (collect --stacks) takes thread stacks with eu-stack, else gdb")
      for name in STACK_TOOLS),
    (JOURNALCTL, "logs.journal reads the server unit's journal (restarts, kills; a log on stderr)"),
    ("systemctl", "not needed: config.systemd reads the unit files themselves"),
    ("age", "not needed to seal (mydiag has its own age v1); checks a sealed bundle by hand"),
    ("zstd", "not needed to collect; `tar --zstd -xf` needs it to open a plain bundle by hand"),
    ("ssh", "not needed: remote sessions dial out with mydiag's own SSH client"),
    ("ionice", "not needed: the agent lowers its own CPU and I/O priority ([agent] nice, ionice)"),
    ("nice", "not needed: the agent lowers its own CPU and I/O priority ([agent] nice, ionice)"),
)


@dataclass
class Row:
    what: str
    status: str
    found: str
    means: str


def check(port: Optional[int] = None, socket: Optional[str] = None) -> List[Row]:
    """Every row, in the order a reader wants them: who runs, what is installed, what is readable."""
    ctx = Context(profile="standard", session=_Target(port, socket))
    search = find(ctx)
    rows = [_python(), _user(), _state_dir()]
    rows += [_tool(name, means) for name, means in TOOLS]
    rows += _servers(search)
    rows += _sockets(search.found, socket)
    server = search.found
    if server is not None:
        rows += _process_files(server)
    rows += _option_files(server)
    rows += [_error_log(ctx), _slow_log(ctx)]
    rows += [_cgroup(server), _block_devices(), _kernel_log()]
    return rows


def as_dicts(rows: List[Row]) -> List[Dict[str, str]]:
    return [asdict(row) for row in rows]


class _Target(SimpleNamespace):
    """What the collectors' process search asks of a session: the asked port and socket.
    It has no identity, so nothing takes it for a connection, and nothing connects."""

    def __init__(self, port: Optional[int], socket: Optional[str]) -> None:
        super().__init__(spec=SimpleNamespace(port=port, socket=socket), identity=None)


def _python() -> Row:
    version = platform.python_version()
    supported = sys.version_info[:2] >= (3, 9)
    return Row("python", OK if supported else MISSING, f"{version} ({sys.executable})",
               "runs every collector" if supported else "mydiag needs Python 3.9 or later")


def _root() -> bool:
    return os.geteuid() == 0


def _user() -> Row:
    if _root():
        return Row("root", OK, "uid 0", "every source below that exists is readable")
    import pwd

    try:
        name = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        name = f"uid {os.geteuid()}"
    return Row("root", LIMITED, f"running as {name}",
               "no /proc/<pid>/ fd, io, maps of a server run by another user (os.mysqld_process, "
               "os.mysqld_memory lose them), no --stacks, files only root or mysql may read are left out")


def _state_dir() -> Row:
    path = home()
    where = "MYDIAG_HOME" if os.environ.get("MYDIAG_HOME") else "default"
    probe = path
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    except OSError as exc:
        return Row("state directory", NOT_READABLE, f"{path} ({where}), {exc.strerror or exc}",
                   "keys init, upload pins, pseudonymize and the agent's spool fail; set MYDIAG_HOME")
    if os.access(probe, os.W_OK | os.X_OK) and probe.is_dir():
        found = f"{path} ({where})" + ("" if probe == path else ", created on first use")
        return Row("state directory", OK, found, "host key, pinned recipients, spool and pseudonym map "
                                                 "can be kept")
    return Row("state directory", NOT_READABLE if path.exists() else MISSING,
               f"{path} ({where}), not writable",
               "keys init, upload pins, pseudonymize and the agent's spool fail; set MYDIAG_HOME")


def _tool(name: str, means: str) -> Row:
    path = shutil.which(name)
    return Row(f"tool {name}", OK if path else MISSING, path or "not on PATH", means)


def _servers(search) -> List[Row]:
    if not search.candidates:
        return [Row("mysqld process", MISSING, search.reason or "none",
                    "os.mysqld_process, os.mysqld_memory and os.stacks skip; option files and logs "
                    "are found from the standard places only")]
    rows = []
    for pid in search.candidates:
        found = _describe(pid)
        if search.found is not None and search.found.pid == pid:
            rows.append(Row("mysqld process", OK, f"{found}; chosen: {search.found.found_by}",
                            "the os.mysqld_* collectors read this process"))
        else:
            rows.append(Row("mysqld process", OK if search.found is None and len(search.candidates) == 1
                            else NOT_APPLICABLE, found,
                            "another server on this host (collect --port/--socket picks one)"
                            if search.found is not None else search.reason))
    return rows


def _describe(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        name, user, cmdline = proc.name(), proc.username(), proc.cmdline()
    except psutil.Error:
        return f"pid {pid} (gone)"
    args = server_args(cmdline)
    where = ", ".join(f"{key} {args[key]}" for key in ("port", "socket", "datadir") if args.get(key))
    return f"pid {pid} {name} as {user}" + (f", {where}" if where else "")


def _sockets(server: Optional[Mysqld], asked: Optional[str]) -> List[Row]:
    paths = list(DEFAULT_SOCKETS)
    for extra in (asked, server.args.get("socket") if server else None):
        if extra and extra not in paths:
            paths.append(extra)
    rows = []
    for path in paths:
        if os.path.exists(path):
            usable = os.access(path, os.R_OK | os.W_OK)
            rows.append(Row(f"socket {path}", OK if usable else NOT_READABLE, "a Unix socket" if usable
                            else "exists, no permission to connect",
                            "collect without --host connects here (the first that exists)"
                            if path in DEFAULT_SOCKETS else "this server's socket (--socket)"))
    if not rows:
        rows.append(Row("socket", MISSING, ", ".join(DEFAULT_SOCKETS),
                        "no default socket: collect needs --host/--port or --socket"))
    return rows


def _readable(path: str) -> tuple:
    """(status, found) for a file or folder: opened or listed, never read out."""
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb"):
                pass
    except FileNotFoundError:
        return MISSING, "does not exist"
    except PermissionError:
        return NOT_READABLE, "permission denied"
    except OSError as exc:
        return NOT_READABLE, exc.strerror or str(exc)
    return OK, "readable"


#: /proc/<pid>/ entries of the server: the collector that reads each, and what from it.
_PROC = (
    ("status", "os.mysqld_process", "memory, threads, context switches"),
    ("limits", "os.mysqld_process", "open files and other limits"),
    ("io", "os.mysqld_process", "the server's I/O counters"),
    ("fd", "os.mysqld_process", "the open file count"),
    ("maps", "os.mysqld_memory", "mappings and the memory allocator"),
    ("task", "os.stacks (--stacks)", "the server's threads"),
)


def _process_files(server: Mysqld) -> List[Row]:
    rows = []
    for name, collector, what in _PROC:
        path = f"/proc/{server.pid}/{name}"
        status, found = _readable(path)
        if status == OK:
            means = f"{collector} reads {what}"
        else:
            who = "" if _root() else f" (run as root or as {server.user or 'its user'})"
            means = f"{collector} loses {what}{who}"
        rows.append(Row(path, status, found, means))
    return rows


def _option_files(server: Optional[Mysqld]) -> List[Row]:
    order, parsed, _ = read_server_files(server)
    rows = []
    for candidate in order:
        status, found = _readable(candidate.path)
        means = "config.option_files copies it (redacted)" if status == OK else (
            "the server does not have it: nothing lost" if status == MISSING
            else "config.option_files and config.effective are partial; run as root")
        rows.append(Row(f"option file {candidate.path}", status, f"{found} ({candidate.role})", means))
    included = [path for path in parsed.files if path not in {c.path for c in order}]
    denied = [note for note in parsed.notes if "Permission denied" in note]
    if included or denied:
        rows.append(Row("option file includes", NOT_READABLE if denied else OK,
                        f"{len(included)} readable, {len(denied)} not readable",
                        "config.option_files is partial; run as root" if denied
                        else "config.option_files follows !include and !includedir"))
    return rows


def _error_log(ctx: Context) -> Row:
    what = "error log"
    try:
        value, source = setting(ctx, "log_error")
    except UnknownSettings as exc:
        return Row(what, NOT_APPLICABLE, exc.reason, "logs.error_log looks only where packages put it")
    if value is not None and value.strip() in ("", "stderr"):
        return Row(what, NOT_APPLICABLE, f"to stderr (from {source})",
                   "logs.error_log reads the journal instead")
    if value and value != "ON":
        path = resolve(ctx, value.strip())
        candidates = [path] if os.path.splitext(path)[1] else [path, path + ".err"]
        how = f"from {source}"
    else:
        candidates = list(DEFAULT_PATHS)
        how = "a package's default place"
    for path in candidates:
        status, found = _readable(path)
        if status != MISSING:
            return Row(f"{what} {path}", status, f"{found} ({how})",
                       "logs.error_log takes its tail" if status == OK
                       else "logs.error_log fails; run as root or as the server's user")
    return Row(what, MISSING, f"none of {', '.join(candidates)}", "logs.error_log has nothing to take")


def _slow_log(ctx: Context) -> Row:
    try:
        enabled, source = setting(ctx, "slow_query_log", "log_slow_query", "log_slow_queries")
        name, _ = setting(ctx, "slow_query_log_file", "log_slow_query_file")
    except UnknownSettings as exc:
        return Row("slow log", NOT_APPLICABLE, exc.reason, "logs.slow_log skips")
    if (enabled or "").strip().lower() not in TRUE:
        where = "not set anywhere" if source.startswith("nowhere") else f"from {source}"
        return Row("slow log", NOT_APPLICABLE, f"off ({where})", "logs.slow_log skips: nothing to take")
    if not name:
        return Row("slow log", MISSING, f"on (from {source}), file unknown", "logs.slow_log fails")
    path = resolve(ctx, name)
    status, found = _readable(path)
    return Row(f"slow log {path}", status, found,
               "logs.slow_log takes its tail, fingerprinted" if status == OK else
               "logs.slow_log has nothing yet" if status == MISSING else
               "logs.slow_log fails; run as root or as the server's user")


def _cgroup(server: Optional[Mysqld]) -> Row:
    pid = str(server.pid) if server else "self"
    status, found = _readable(f"/proc/{pid}/cgroup")
    mounted = os.path.exists("/sys/fs/cgroup/cgroup.controllers") or os.path.isdir("/sys/fs/cgroup/memory")
    if status == OK and not mounted:
        status, found = MISSING, "no cgroup filesystem under /sys/fs/cgroup"
    return Row(f"cgroup of {'mysqld' if server else 'this process'}", status, found,
               "os.host and os.mysqld_process report CPU and memory limits" if status == OK
               else "cgroup limits are left out (os.host, os.mysqld_process)")


def _block_devices() -> Row:
    status, found = _readable("/sys/block")
    if status == OK:
        found = f"{len(os.listdir('/sys/block'))} block devices"
    return Row("/sys/block", status, found, "os.disks and os.disk_io see each disk" if status == OK
               else "os.disks and os.disk_io lose per-disk facts and I/O rates")


def _kernel_log() -> Row:
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
    except FileNotFoundError:
        return Row(KMSG, MISSING, "does not exist", "os.kernel_log and os.oom read the syslog files instead")
    except OSError as exc:
        return Row(KMSG, NOT_READABLE, exc.strerror or str(exc),
                   "os.kernel_log and os.oom read the syslog files instead "
                   "(root, or kernel.dmesg_restrict=0)")
    return Row(KMSG, OK, "readable", "os.kernel_log and os.oom see segfaults, OOM kills, I/O errors")

