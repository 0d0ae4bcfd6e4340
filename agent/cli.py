"""`mydiag`: the customer-side command. Each subcommand lives in its own module in agent/commands/."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import List, Optional

from agent import exitcodes
from bundle.version import FORMAT_VERSION, __version__

#: Subcommand modules, each with `register(subparsers)` and `run(args) -> int`.
COMMANDS = ("collect", "inspect", "grants", "seal", "unseal", "verify", "keys", "upload", "enroll", "agent",
            "session", "pseudonyms", "report", "share", "self-check")
#: Command words that are not their module's name (a module name cannot hold a dash).
MODULES = {"self-check": "selfcheck"}
VERSION = f"mydiag {__version__} (bundle format {FORMAT_VERSION})"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(exitcodes.USAGE, f"mydiag: {message} (see `{self.prog} --help`)\n")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser for every command, or for `only` that one (its imports alone are paid)."""
    parser = Parser(prog="mydiag", description="Safe MySQL diagnostics for asynchronous support.")
    parser.add_argument("--version", action="version", version=VERSION)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"agent.commands.{MODULES.get(name, name)}").register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["--version"]:
        # What argparse would print, without importing every command first (start-up time).
        print(VERSION)
        return exitcodes.OK
    # `mydiag seal` need not import the MySQL client and the terminal UI: start-up time
    # counts when sealing a bundle. Without a known command, every command is loaded.
    named = words[0] if words and words[0] in COMMANDS else None
    parser = build_parser(named)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return exitcodes.USAGE
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("mydiag: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        # `mydiag report … | head`: the reader is gone, which is not an error of ours.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exitcodes.OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        if os.environ.get("MYDIAG_DEBUG"):
            raise
        print(
            f"mydiag: internal error: {type(exc).__name__}: {exc} "
            "(run again with MYDIAG_DEBUG=1 for details, and please report it)",
            file=sys.stderr,
        )
        return exitcodes.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
