"""What every `mydiag-server` command module shares: the parser class, the failure, the state.

`Failure(code, message)` is how a command leaves with a documented exit code; `main`
prints it. The command modules (main.py, sessions.py) import this module, never each other's.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path
from typing import Any, List

from server import exitcodes


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(exitcodes.USAGE, f"mydiag-server: {message} (see `{self.prog} --help`)\n")


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
