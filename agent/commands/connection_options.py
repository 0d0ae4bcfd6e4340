"""Command-line option definitions shared by several subcommands (one place for each)."""

from __future__ import annotations

import argparse

from agent.collect.connection import resolve
from collectors.mysql.session import ConnectSpec


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "connection (like the mysql client; a password only from an option file or --ask-pass)"
    )
    group.add_argument("--host", "-h", help="server host (TCP)")
    group.add_argument("--port", "-P", type=int, help="server port (default 3306)")
    group.add_argument("--socket", "-S", help="Unix socket path")
    group.add_argument("--user", "-u", help="user (default: option file, else your login name)")
    group.add_argument("--ask-pass", "-p", action="store_true", help="prompt for the password")
    group.add_argument(
        "--defaults-file", metavar="FILE",
        help="read only this option file ([client] and [mydiag] groups)",
    )


def connect_spec(args: argparse.Namespace) -> ConnectSpec:
    return resolve(
        defaults_file=args.defaults_file, host=args.host, port=args.port,
        socket=args.socket, user=args.user, ask_pass=args.ask_pass,
    )
