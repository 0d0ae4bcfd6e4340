"""Which local process is the server mydiag talks to, and what the server says about itself.

Found once per run and shared: by the server's pid file (when readable), then by the
port, socket or datadir on a candidate's command line, then by the process holding the
listening socket (needs root for other users' processes), then as the only candidate.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import psutil

from collectors.mysql.common import variables
from collectors.mysql.optionfile import normalize_key
from collectors.registry import CollectorError, Context

SERVER_NAMES = ("mysqld", "mariadbd")
_SHARED_KEY = "os.mysqld"
_TCP_LISTEN = "0A"


@dataclass
class Mysqld:
    pid: int
    found_by: str
    cmdline: List[str]
    uid: Optional[int] = None
    user: Optional[str] = None
    home: Optional[str] = None
    #: MYSQL_HOME / MARIADB_HOME from the server's environment, when readable (root or its user).
    env_home: Optional[str] = None
    env_readable: bool = False

    @property
    def args(self) -> Dict[str, Optional[str]]:
        return server_args(self.cmdline)


@dataclass
class Search:
    found: Optional[Mysqld] = None
    reason: str = ""
    candidates: List[int] = field(default_factory=list)


def connected(ctx: Context) -> bool:
    return bool(ctx.session is not None and getattr(ctx.session, "identity", None))


def running_variables(ctx: Context) -> Optional[Dict[str, Any]]:
    """SHOW GLOBAL VARIABLES (read once per run), or None when not connected or denied."""
    if not connected(ctx):
        return None
    try:
        return variables(ctx)
    except CollectorError as exc:
        ctx.notes.add(f"server variables not readable: {exc.reason}")
        return None


def server_port(ctx: Context) -> Optional[int]:
    """The port of the server: its own word when connected, else the connection option."""
    if connected(ctx) and ctx.session.identity.get("port"):
        return int(ctx.session.identity["port"])
    spec = getattr(ctx.session, "spec", None)
    return int(spec.port) if spec is not None and spec.port else None


def server_args(cmdline: List[str]) -> Dict[str, Optional[str]]:
    """`--key=value` options of a server command line, keys normalized (dashes, no loose-)."""
    args: Dict[str, Optional[str]] = {}
    for arg in cmdline[1:]:
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            args[normalize_key(key)] = value if sep else None
    return args


def find(ctx: Context) -> Search:
    """The server's process, searched once per run."""
    if _SHARED_KEY not in ctx.shared:
        ctx.shared[_SHARED_KEY] = _search(ctx)
    return ctx.shared[_SHARED_KEY]


def _search(ctx: Context) -> Search:
    candidates: Dict[int, List[str]] = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        first = os.path.basename(cmdline[0]) if cmdline else ""
        if proc.info.get("name") in SERVER_NAMES or first in SERVER_NAMES:
            candidates[proc.info["pid"]] = cmdline
    search = Search(candidates=sorted(candidates))
    if not candidates:
        search.reason = "no mysqld or mariadbd process runs on this host"
        return search
    pid, how = _by_pid_file(ctx, candidates)
    if pid is None:
        pid, how = _by_arguments(ctx, candidates)
    if pid is None:
        pid, how = _by_listening_socket(ctx, candidates)
    if pid is None and len(candidates) == 1 and not _contradicts(ctx, next(iter(candidates.values()))):
        pid, how = next(iter(candidates)), "the only server process"
    if pid is None:
        port = server_port(ctx)
        search.reason = (f"{len(candidates)} server processes (pids "
                         f"{', '.join(map(str, sorted(candidates)))}) and none is known to serve "
                         f"port {port}")
        if port and not listening_inodes(port):
            search.reason += f": nothing listens on TCP port {port} here"
        elif os.geteuid() != 0:
            search.reason += "; run as root to match the listening socket to its process"
        return search
    search.found = _describe(pid, how, candidates.get(pid) or [])
    return search


def _by_pid_file(ctx: Context, candidates: Dict[int, List[str]]) -> tuple:
    found = running_variables(ctx) or {}
    path = found.get("pid_file")
    if not path:
        return None, ""
    if not os.path.isabs(path):
        path = os.path.join(str(found.get("datadir") or ""), path)
    try:
        with open(path) as handle:
            pid = int(handle.read(32).strip())
    except (OSError, ValueError):
        return None, ""
    return (pid, f"pid file {path}") if pid in candidates else (None, "")


def _by_arguments(ctx: Context, candidates: Dict[int, List[str]]) -> tuple:
    port = server_port(ctx)
    running = running_variables(ctx) or {}
    spec = getattr(ctx.session, "spec", None)
    wanted = {
        "port": {str(port)} if port else set(),
        "socket": {_real(p) for p in (running.get("socket"), getattr(spec, "socket", None)) if p},
        "datadir": {_real(running["datadir"])} if running.get("datadir") else set(),
    }
    for pid, cmdline in sorted(candidates.items()):
        args = server_args(cmdline)
        for key, values in wanted.items():
            value = args.get(key)
            if value and (value if key == "port" else _real(value)) in values:
                return pid, f"--{key} on its command line"
    return None, ""


def _by_listening_socket(ctx: Context, candidates: Dict[int, List[str]]) -> tuple:
    port = server_port(ctx)
    inodes = listening_inodes(port) if port else set()
    for pid in sorted(candidates):
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid, f"listens on port {port}"
    return None, ""


def listening_inodes(port: int) -> Set[str]:
    """Socket inodes of TCP listeners on `port` (this network namespace)."""
    inodes: Set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    parts = line.split()
                    if len(parts) > 9 and parts[3] == _TCP_LISTEN and \
                            int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            continue
    return inodes


def _contradicts(ctx: Context, cmdline: List[str]) -> bool:
    """The only candidate cannot be the server mydiag was asked about: it names another
    port than the one mydiag talks to, or nothing listens on that port here (a server
    that is down, on a host that runs another one)."""
    given = server_args(cmdline).get("port")
    port = server_port(ctx)
    if not port:
        return False
    if given and given != str(port) and connected(ctx):
        return True
    return not connected(ctx) and not listening_inodes(port)


def _describe(pid: int, how: str, cmdline: List[str]) -> Mysqld:
    found = Mysqld(pid=pid, found_by=how, cmdline=cmdline)
    try:
        proc = psutil.Process(pid)
        found.uid = proc.uids().real
        found.user = proc.username()
        found.home = pwd.getpwuid(found.uid).pw_dir
    except (psutil.Error, KeyError):
        pass
    try:
        environ = psutil.Process(pid).environ()
        found.env_readable = True
        # Only these keep: the rest of a server's environment can hold secrets.
        found.env_home = environ.get("MARIADB_HOME") or environ.get("MYSQL_HOME")
    except (psutil.Error, OSError):
        pass
    return found


def _real(path: str) -> str:
    return os.path.realpath(str(path))
