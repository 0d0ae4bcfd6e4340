"""The server's own settings (log paths, datadir): its variables when connected, else its
command line, else its option files. Relative paths are relative to the datadir, as in
the server.

Without a connection and without its process (a server that is down), the option files
only speak for the server mydiag was asked about when they name its port: on a host
with several instances they may describe another one.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from collectors.config.search import read_server_files, server_groups
from collectors.os.mysqld import connected, find, running_variables, server_port
from collectors.registry import CollectorError, Context

DEFAULT_PORT = "3306"


class UnknownSettings(CollectorError):
    """Nothing on this host speaks for the server mydiag was asked about."""


def setting(ctx: Context, *names: str) -> Tuple[Optional[str], str]:
    """(value, where it came from) of the first server variable of `names` that is set.

    Several names cover renamed settings (MariaDB's `log_slow_query` is `slow_query_log`).
    A bare option in a file or on the command line (`slow-query-log`) means ON.
    Raises UnknownSettings when the option files describe a server on another port.
    """
    running = running_variables(ctx)
    if running is not None:
        for name in names:
            if name in running:
                value = running[name]
                return (None if value is None else str(value)), "server variables"
        return None, "server variables"
    server = find(ctx).found
    _, parsed, _ = read_server_files(server)
    values = parsed.group(*server_groups(server))
    port = server_port(ctx)
    if server is None and port and str(values.get("port") or DEFAULT_PORT) != str(port):
        raise UnknownSettings(
            f"no server runs on port {port} here and the option files describe port "
            f"{values.get('port') or DEFAULT_PORT}: its settings are unknown",
            "collect with the --port of this host's server, or start the server")
    for name in names:
        option = name.replace("_", "-")
        if server is not None and option in server.args:
            return _flag(server.args[option]), "mysqld command line"
        if option in values:
            return _flag(values[option]), "option files"
    return None, "nowhere (no connection, option or command-line setting)"


def _flag(value: Optional[str]) -> str:
    return "ON" if value is None else value


def datadir(ctx: Context) -> Optional[str]:
    if connected(ctx) and ctx.session.identity.get("datadir"):
        return str(ctx.session.identity["datadir"])
    return setting(ctx, "datadir")[0]


def resolve(ctx: Context, path: str) -> str:
    """`path` as the server sees it: relative ones are inside the datadir."""
    if os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(datadir(ctx) or os.getcwd(), path))
