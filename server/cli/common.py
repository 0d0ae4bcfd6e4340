"""What every `mydiag-server` command module shares: the parser, the failure, the state.

`Failure(code, message)` is how a command leaves with a documented exit code; `main`
prints it. `actions` and `command` declare a command group and one of its commands (every
command takes `--data DIR` and `--database URL`). The command modules (main.py,
sessions.py) import this module, never each other's.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path
from typing import Any, Callable, List

from server import exitcodes

#: What a command runs: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(exitcodes.USAGE, f"mydiag-server: {message} (see `{self.prog} --help`)\n")


def actions(sub: Any, name: str, help: str) -> Any:
    """A command group (`ticket`, `bundle`, …) under `sub`; one of its actions is required."""
    return sub.add_parser(name, help=help).add_subparsers(dest="action", metavar="ACTION",
                                                          parser_class=Parser, required=True)


def command(group: Any, name: str, help: str, run: Handler) -> argparse.ArgumentParser:
    """A command of `group` that runs `run`, with the data directory options every command takes."""
    p = group.add_parser(name, help=help)
    p.add_argument("--data", required=True, metavar="DIR", help="the server's data directory")
    p.add_argument("--database", metavar="URL",
                   help="postgresql://… (default: the one chosen at init, else SQLite in DIR)")
    p.set_defaults(run=run)
    return p


def json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


class Failure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _open(args: argparse.Namespace):
    from server.storage.state import State

    return State.open(Path(args.data), getattr(args, "database", None))


def _emit(args: argparse.Namespace, data: Any, lines: List[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(lines))
