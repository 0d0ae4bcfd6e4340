"""The diag console: what an engineer gets in a `diag` session, instead of a shell.

Read-only actions only: SQL statements that pass `agent.session.sqlcheck` and run in a
read-only, time-limited, row-capped session (`agent.session.diagsql`) as an account that can only
look (`agent.session.diagaccount`: the console refuses to start with more, unless the customer
granted the session with --allow-privileged-account); one collector or a whole
collection; the tail of the server's logs; the OS state. It starts no program and has no
escape to a shell: a line is one of its commands or it is refused. Output passes through
the redaction rules before it is shown, like everything that goes into a bundle.

Run by the session channel as `python -m agent.session.console`, in its own process (so
a cut kills it whole), with the MySQL connection settings on an inherited pipe
(`--spec-fd`), never on the command line or in the environment. This module is that
program: its command line, the refusal at start-up, and the prompt loop (`mydiag>`, and
`sql>` with statements over several lines). The commands are in agent.session.diagactions
(`Console`), what they print in agent.session.diagoutput.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Callable, List, Optional

from agent.session import sqlcheck
from agent.session.diagaccount import ALLOW_PRIVILEGED
from agent.session.diagactions import Console

#: The console's exit status when it refuses to start (the account has too much).
EXIT_REFUSED = 3


def _spec_from_fd(fd: Optional[int]) -> tuple:
    """(the MySQL connection settings, whether a privileged account was allowed)."""
    if fd is None:
        return None, False
    with os.fdopen(fd, "rb") as handle:
        data = json.loads(handle.read() or b"null")
    if not isinstance(data, dict):
        return None, False
    from collectors.mysql.session import ConnectSpec

    known = {k: v for k, v in data.items() if k in ConnectSpec.__dataclass_fields__}
    return ConnectSpec(**known), data.get(ALLOW_PRIVILEGED) is True


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mydiag-console")
    parser.add_argument("--session", default="")
    parser.add_argument("--engineer", default="")
    parser.add_argument("--purpose", default="")
    parser.add_argument("--spec-fd", type=int)
    parser.add_argument("--command")
    parser.add_argument("--budget", type=float, help="statement seconds for the whole remote session")
    args = parser.parse_args(argv)
    # The console is the only process of its session: job control would stop it for good.
    for name in ("SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGQUIT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    spec, allow_privileged = _spec_from_fd(args.spec_fd)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    console = Console(spec, out, Path.cwd(), allow_privileged=allow_privileged, budget=args.budget)
    try:
        refusal = console.admit()
        if refusal is not None:
            out(f"mydiag: {refusal}\n")
            return EXIT_REFUSED
        if args.command is not None:
            return console.run_line(args.command)
        return _interactive(console, args, out)
    finally:
        console.close()


def _interactive(console: Console, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    out(f"mydiag diag session {args.session} for {args.engineer}: {args.purpose}\n"
        "read-only diagnostics; type `help` for the commands, `exit` to leave\n")
    sql_mode = False
    pending = ""
    while True:
        prompt = ("    -> " if pending else "sql> ") if sql_mode else "mydiag> "
        try:
            line = _read_line(prompt, out)
        except KeyboardInterrupt:
            out("^C\n")
            pending = ""
            continue
        if line is None:
            out("\n")
            return 0
        stripped = line.strip()
        if sql_mode:
            if not pending and stripped.lower() in ("exit", "quit", "\\q", "exit;", "quit;"):
                sql_mode = False
                continue
            if not pending and sqlcheck.is_client_command(stripped):
                # Like the mysql client, a backslash or client command acts at once (here: refused).
                console.run_line(f"sql {stripped}")
                continue
            pending = f"{pending}\n{line}" if pending else line
            if not (pending.rstrip().endswith(";") or pending.rstrip().endswith("\\G")
                    or pending.rstrip().endswith("\\g")):
                continue
            statement, pending = pending, ""
            try:
                console.run_line(f"sql {statement}")
            except KeyboardInterrupt:
                out("^C (statement interrupted)\n")
                console.abandon_session()
            continue
        if stripped.lower() in ("exit", "quit", "logout"):
            return 0
        if stripped.lower() == "sql":
            sql_mode = True
            out("SQL prompt: read-only statements ending with ; or \\G; `exit` goes back\n")
            continue
        try:
            console.run_line(stripped)
        except KeyboardInterrupt:
            out("^C (interrupted)\n")
            console.abandon_session()


def _read_line(prompt: str, out: Callable[[str], None]) -> Optional[str]:
    out(prompt)
    line = sys.stdin.readline()
    if not line:
        return None
    return line.rstrip("\r\n")


if __name__ == "__main__":
    sys.exit(main())
