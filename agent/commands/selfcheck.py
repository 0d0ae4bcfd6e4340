"""`mydiag self-check`: what this host offers a collection, in one table (agent/selfcheck.py)."""

from __future__ import annotations

import argparse
import json
from typing import List

from agent import exitcodes
from agent.selfcheck import Row, as_dicts, check
from bundle.version import FORMAT_VERSION, __version__

COLUMNS = ("what", "status", "found", "means")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "self-check", help="say what this host offers a collection (tools, access, sources)",
        description="One table of what this host offers mydiag: the Python running it, root or "
        "not and what that costs, the state directory, the optional tools (gdb, eu-stack, "
        "journalctl, age, zstd, ssh, ...), the local mysqld processes and sockets, and which "
        "sources are readable (/proc/<pid>/ of the server, option files, error and slow log, "
        "cgroup, /sys/block, /dev/kmsg); each row says which collector loses what without it. "
        "Nothing connects to MySQL and no file's contents are printed. Statuses: ok, missing, "
        "not readable, n/a, limited (not root). Exit codes: 0 the table was printed (whatever "
        "it says), 2 bad arguments, 1 internal error.",
    )
    parser.add_argument("--port", "-P", type=int, help="look at the local server on this port")
    parser.add_argument("--socket", "-S", metavar="PATH", help="look at the local server with this socket")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = check(port=args.port, socket=args.socket)
    if args.json:
        print(json.dumps({"version": __version__, "bundle_format": FORMAT_VERSION, "rows": as_dicts(rows)},
                         indent=2))
    else:
        print("\n".join(table(rows)))
    return exitcodes.OK


def table(rows: List[Row]) -> List[str]:
    """One line per row, columns padded: a grep finds a row, a script can cut a column."""
    cells = [COLUMNS] + [tuple(_plain(getattr(row, column)) for column in COLUMNS) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(line, widths)), line[-1]]).rstrip()
            for line in cells]


def _plain(text: str) -> str:
    """A cell on one line: a path or a process name may hold a newline or a control character."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)
