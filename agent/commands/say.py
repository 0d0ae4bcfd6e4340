"""One-line messages to the user, and the exit code that goes with them (no heavy imports)."""

from __future__ import annotations

import argparse
import sys


def fail(message: str, code: int) -> int:
    """Print the one-line error a user sees and return the exit code to leave with."""
    print(f"mydiag: {message}", file=sys.stderr)
    return code


def usage(parser: argparse.ArgumentParser, code: int) -> int:
    """A command group run without its subcommand: show what it offers."""
    parser.print_help(sys.stderr)
    return code
