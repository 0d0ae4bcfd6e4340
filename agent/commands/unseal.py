"""`mydiag unseal`: decrypt a sealed bundle (or any age v1 file) with an identity file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import exitcodes
from agent.commands.sealing_options import (
    add_identity_option,
    age_exit_code,
    identities_from,
    os_error_text,
)
from bundle.age import AgeError, unseal_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "unseal", help="decrypt a sealed bundle with an age identity",
        description="Decrypt FILE (age v1, X25519) with the identities in KEYFILE. The output "
        "appears only when the whole file decrypted and authenticated; a failure leaves no "
        "output. Exit codes: 0 done, 2 bad arguments, 6 cannot write, 8 wrong key, 9 the "
        "file is truncated, corrupted or not an age file, 12 KEYFILE unusable.",
    )
    parser.add_argument("file", metavar="FILE", help="the sealed file (….tar.zst.age)")
    add_identity_option(parser, required=True)
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="where to write (default: FILE without .age)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if args.output:
        target = Path(args.output)
    elif source.name.endswith(".age") and len(source.name) > 4:
        target = source.with_name(source.name[:-4])
    else:
        print(f"mydiag: {source} does not end in .age: name the output with --output",
              file=sys.stderr)
        return exitcodes.USAGE
    if not source.is_file():
        print(f"mydiag: {source}: no such file", file=sys.stderr)
        return exitcodes.USAGE
    if target.exists() and target.samefile(source):
        print("mydiag: --output must not be the input file", file=sys.stderr)
        return exitcodes.USAGE
    try:
        identities = identities_from(args)
    except AgeError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return age_exit_code(exc)
    try:
        unseal_file(source, target, identities)
    except AgeError as exc:
        print(f"mydiag: cannot unseal {source}: {exc}", file=sys.stderr)
        return age_exit_code(exc)
    except OSError as exc:
        print(f"mydiag: cannot unseal {source} to {target}: {os_error_text(exc)}", file=sys.stderr)
        return exitcodes.OUTPUT_ERROR
    print(f"unsealed {source} -> {target}")
    return exitcodes.OK
