"""`mydiag seal`: encrypt a file (a bundle) to the support side's age recipients."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import exitcodes
from agent.commands.sealing_options import (
    add_recipient_options,
    age_exit_code,
    os_error_text,
    recipients_from,
)
from bundle.age import AgeError, seal_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "seal", help="encrypt a bundle to the support side (age v1)",
        description="Encrypt FILE to one or more age recipients, writing FILE.age. The result "
        "opens with `mydiag unseal` or the standard `age -d`. FILE is kept. Exit codes: 0 "
        "sealed, 2 bad arguments or FILE unreadable, 6 cannot write, 12 a recipient is not "
        "valid.",
    )
    parser.add_argument("file", metavar="FILE", help="the file to seal (usually a .tar.zst bundle)")
    add_recipient_options(parser, required=True)
    parser.add_argument("--output", "-o", metavar="FILE", help="where to write (default: FILE.age)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        recipients = recipients_from(args)
    except AgeError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return age_exit_code(exc)
    if not recipients:
        print("mydiag: seal needs at least one --recipient age1… or --recipients-file",
              file=sys.stderr)
        return exitcodes.USAGE
    source = Path(args.file)
    target = Path(args.output) if args.output else source.with_name(source.name + ".age")
    if not source.is_file():
        print(f"mydiag: {source}: no such file", file=sys.stderr)
        return exitcodes.USAGE
    if target.exists() and target.samefile(source):
        print("mydiag: --output must not be the input file", file=sys.stderr)
        return exitcodes.USAGE
    try:
        with open(source, "rb"):
            pass
    except OSError as exc:
        print(f"mydiag: cannot read {source}: {os_error_text(exc)}", file=sys.stderr)
        return exitcodes.USAGE
    try:
        seal_file(source, target, recipients)
    except AgeError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return age_exit_code(exc)
    except OSError as exc:
        print(f"mydiag: cannot write {target}: {os_error_text(exc)}", file=sys.stderr)
        return exitcodes.OUTPUT_ERROR
    count = len(recipients)
    print(f"sealed {source} -> {target} ({count} recipient{'s' if count > 1 else ''})")
    return exitcodes.OK
