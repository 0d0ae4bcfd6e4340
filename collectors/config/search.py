"""The option files the server itself reads, in its order (not the client's).

MySQL and MariaDB on Linux: /etc/my.cnf, /etc/mysql/my.cnf, $MARIADB_HOME or
$MYSQL_HOME/my.cnf, the --defaults-extra-file, then ~/.my.cnf of the user the server
runs as. `--defaults-file` replaces the whole list and `--no-defaults` empties it;
both come from mysqld's own command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from collectors.mysql import optionfile
from collectors.os.mysqld import Mysqld

GLOBAL_FILES = ("/etc/my.cnf", "/etc/mysql/my.cnf")
#: Groups mysqld reads (MariaDB adds its own); `-X.Y` and --defaults-group-suffix variants too.
SERVER_GROUPS = ("mysqld", "server", "mariadb", "mariadbd", "client-server", "galera")


@dataclass
class Candidate:
    path: str
    role: str


def server_files(server: Optional[Mysqld]) -> Tuple[List[Candidate], List[str]]:
    """The candidate option files of `server` in read order, and notes on how they were chosen."""
    notes: List[str] = []
    args = server.args if server else {}
    if server is None:
        notes.append("no local server process found: the standard search order is shown; the "
                     "server user's ~/.my.cnf and command-line option files are unknown")
    if "no-defaults" in args:
        return [], ["mysqld runs with --no-defaults: it reads no option file"]
    if args.get("defaults-file"):
        return [Candidate(_absolute(server, args["defaults-file"]), "--defaults-file")], notes
    order = [Candidate(path, "global") for path in GLOBAL_FILES]
    if server is not None and server.env_home:
        order.append(Candidate(os.path.join(server.env_home, "my.cnf"), "$MYSQL_HOME"))
    elif server is not None and not server.env_readable:
        notes.append("mysqld's environment is not readable as this user: a $MYSQL_HOME/my.cnf "
                     "would be missed; run as root to check")
    if args.get("defaults-extra-file"):
        order.append(Candidate(_absolute(server, args["defaults-extra-file"]), "--defaults-extra-file"))
    if server is not None and server.home:
        order.append(Candidate(os.path.join(server.home, ".my.cnf"),
                               f"~/.my.cnf of {server.user or 'the server user'}"))
    return order, notes


def server_groups(server: Optional[Mysqld], version: Tuple[int, ...] = ()) -> List[str]:
    """The option groups mysqld reads, with version and --defaults-group-suffix variants."""
    groups = list(SERVER_GROUPS)
    if len(version) >= 2 and version[0]:
        groups += [f"{g}-{version[0]}.{version[1]}" for g in ("mysqld", "mariadb", "mariadbd")]
    suffix = (server.args.get("defaults-group-suffix") if server else None) or ""
    if suffix:
        groups += [g + suffix for g in list(groups)]
    return groups


def read_server_files(server: Optional[Mysqld]) -> Tuple[List[Candidate], optionfile.OptionFiles, List[str]]:
    """Parse every candidate (following includes) with the project's one option-file parser."""
    order, notes = server_files(server)
    parsed = optionfile.read([c.path for c in order])
    return order, parsed, notes


def _absolute(server: Optional[Mysqld], path: str) -> str:
    if os.path.isabs(path) or server is None:
        return path
    try:
        return os.path.join(os.readlink(f"/proc/{server.pid}/cwd"), path)
    except OSError:
        return path
