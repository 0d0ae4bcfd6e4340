"""The sealing options and errors shared by `seal`, `unseal`, `verify` and `collect`."""

from __future__ import annotations

import argparse
import errno
from typing import List

from agent import exitcodes
from bundle.age import AgeError, parse_recipient, read_identities, read_recipients


def add_recipient_options(parser: argparse.ArgumentParser, required: bool = False) -> None:
    group = parser.add_argument_group(
        "sealing (age v1: the support side's public key from the ticket)"
    )
    group.add_argument(
        "--recipient", "-r", action="append", default=[], metavar="age1…",
        help="seal to this age recipient (repeatable)" + ("" if required else
             "; the bundle is then written only in sealed form"),
    )
    group.add_argument(
        "--recipients-file", "-R", action="append", default=[], metavar="FILE",
        help="seal to every recipient in FILE (one age1… a line, # comments; repeatable)",
    )


def recipients_from(args: argparse.Namespace) -> List[str]:
    """Every recipient named on the command line, checked; AgeError when one is not valid."""
    found = [parse_recipient(text) for text in args.recipient]
    for path in args.recipients_file:
        found += read_recipients(path)
    return list(dict.fromkeys(found))


def add_identity_option(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--identity", "-i", action="append", default=[], required=required, metavar="KEYFILE",
        help="an age identity file (`age-keygen` output; repeatable)",
    )


def identities_from(args: argparse.Namespace) -> List[str]:
    found: List[str] = []
    for path in args.identity:
        found += read_identities(path)
    return found


def age_exit_code(exc: AgeError) -> int:
    """The documented exit code for an age failure."""
    if exc.kind == AgeError.NO_MATCH:
        return exitcodes.WRONG_KEY
    if exc.kind == AgeError.KEY:
        return exitcodes.KEY_ERROR
    return exitcodes.BAD_SEAL


def os_error_text(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)
