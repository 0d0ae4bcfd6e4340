"""`mydiag enroll`: register this host's signing key with a ticket, and pin its recipients."""

from __future__ import annotations

import argparse
import json
import socket
import sys

from agent import exitcodes
from agent.commands.ticket_options import RemoteError, add_server_options, client_from, recipients_for
from agent.home import host_key_path
from agent.remote.upload import Refused, UploadError, enroll
from bundle.sign import SignError, fingerprint, generate_host_key, load_host_key, public_key_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "enroll", help="register this host's signing key with a support ticket",
        description="Send this host's public signing key to the ticket (the host key is "
        "created first if there is none), so the server can prove which host made each "
        "bundle; also pins the ticket's recipients. Exit codes: 0 enrolled, 2 bad arguments, "
        "12 no usable host key, 13 server unreachable, 14 refused (token, ticket), "
        "15 the ticket's recipients changed.",
    )
    add_server_options(parser)
    parser.add_argument("--hostname", default=socket.gethostname(),
                        help="the name to enroll this host under (default: its host name)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = host_key_path()
    try:
        key = load_host_key(path) if path.exists() else generate_host_key(path)
    except SignError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.KEY_ERROR
    public = public_key_text(key)
    try:
        client = client_from(args)
        try:
            recipients = recipients_for(client, args.ticket)
            result = enroll(client, args.ticket, public, args.hostname)
        finally:
            client.close()
    except RemoteError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exc.code
    except Refused as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.UPLOAD_REFUSED
    except UploadError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.UPLOAD_FAILED
    result.update(ticket=args.ticket, recipients=recipients)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        state = "already enrolled" if result.get("already_enrolled") else "enrolled"
        print(f"{state}: {result.get('hostname')} {fingerprint(public)} on ticket {args.ticket}")
        print(f"recipients pinned: {', '.join(recipients)}")
    return exitcodes.OK
