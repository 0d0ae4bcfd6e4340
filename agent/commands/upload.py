"""`mydiag upload`: send a bundle to a support ticket, sealed, resumable, exactly once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import exitcodes
from agent.commands.ticket_options import (
    RemoteError,
    add_server_options,
    add_transfer_options,
    report,
    send,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload", help="upload a bundle to a support ticket",
        description="Seal a bundle to the ticket's recipients (pinned on first use, like SSH's "
        "known_hosts) and upload it with tus, resumably: run the same command again after a "
        "network cut or a restart and only the rest is sent. The sealed file is removed once "
        "the server confirmed its sha256 (the plain bundle is kept). Exit codes: 0 accepted, "
        "2 bad arguments, 9 cannot seal, 13 upload failed (run again to resume), 14 refused "
        "by the server (token, ticket, size limit), 15 the ticket's recipients changed, "
        "16 uploaded but quarantined by the server.",
    )
    parser.add_argument("file", metavar="FILE", help="a bundle (.tar.zst) or a sealed one (.tar.zst.age)")
    add_server_options(parser)
    add_transfer_options(parser)
    parser.add_argument("--keep", action="store_true", help="keep the sealed file after the upload")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"mydiag: {path}: no such file", file=sys.stderr)
        return exitcodes.USAGE
    try:
        result = send(path, args, show_progress=not args.json and sys.stderr.isatty())
    except RemoteError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exc.code
    return report(result, args.json)
