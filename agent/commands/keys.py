"""`mydiag keys`: this host's Ed25519 signing key (`init`, `show`)."""

from __future__ import annotations

import argparse
import sys

from agent import exitcodes
from agent.home import host_key_path
from bundle.sign import SignError, fingerprint, generate_host_key, load_host_key, public_key_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys", help="create or show this host's signing key",
        description="Every bundle collected on this host is signed with its Ed25519 host key, "
        "so the support side can prove which host made it. The key lives in the agent's "
        "state directory ($MYDIAG_HOME, else /var/lib/mydiag for root, "
        "~/.local/share/mydiag otherwise), mode 0600. Exit codes: 0 done, 2 bad arguments, "
        "12 no usable host key.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    parser_class=type(parser))
    init = actions.add_parser(
        "init", help="create the host key (once; an existing key is kept and shown)",
        description="Create this host's signing key if it has none, and print its public key.",
    )
    init.set_defaults(run=run_init)
    show = actions.add_parser("show", help="print the host's public key",
                              description="Print this host's public key, one line.")
    show.add_argument("--fingerprint", action="store_true",
                      help="also print the key's SHA256 fingerprint")
    show.set_defaults(run=run_show)


def run_init(args: argparse.Namespace) -> int:
    path = host_key_path()
    try:
        if path.exists():
            key = load_host_key(path)
            print(f"host key already exists: {path}", file=sys.stderr)
        else:
            key = generate_host_key(path)
            print(f"created host key {path}", file=sys.stderr)
    except SignError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.KEY_ERROR
    except OSError as exc:
        print(f"mydiag: cannot create the host key {path}: {exc.strerror}", file=sys.stderr)
        return exitcodes.KEY_ERROR
    public = public_key_text(key)
    print(public)
    print(f"fingerprint: {fingerprint(public)}", file=sys.stderr)
    return exitcodes.OK


def run_show(args: argparse.Namespace) -> int:
    try:
        key = load_host_key(host_key_path())
    except SignError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.KEY_ERROR
    public = public_key_text(key)
    print(public)
    if args.fingerprint:
        print(fingerprint(public))
    return exitcodes.OK
