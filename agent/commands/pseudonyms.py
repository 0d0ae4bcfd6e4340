"""`mydiag pseudonyms`: what a token in a bundle stands for, from this host's own map."""

from __future__ import annotations

import argparse
import json
import sys

from agent import exitcodes
from agent.collect.runner import pseudonym_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pseudonyms", help="say what a pseudonym token stands for (collect --pseudonymize)",
        description="Tokens such as host-3f2a9c1b7d replace names in bundles collected with "
        "--pseudonymize. The key and the map stay on this host (in the agent's state "
        "directory), so only you can tell the support engineer what a token means. "
        "Exit codes: 0 every token found, 19 some token unknown here.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    lookup = actions.add_parser("lookup", help="print the name behind each TOKEN")
    lookup.add_argument("tokens", nargs="+", metavar="TOKEN")
    lookup.add_argument("--json", action="store_true", help="print JSON")
    listing = actions.add_parser("list", help="print every token this host has made")
    listing.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = pseudonym_store()
    try:
        known = store.load()
    except (OSError, ValueError) as exc:
        print(f"mydiag: cannot read the pseudonym map in {store.directory}: {exc}", file=sys.stderr)
        return exitcodes.INTERNAL
    if args.action == "list":
        chosen = known
    elif args.action == "lookup":
        chosen = {token: known.get(token) for token in args.tokens}
    else:
        print("mydiag: say `mydiag pseudonyms lookup TOKEN` or `mydiag pseudonyms list`",
              file=sys.stderr)
        return exitcodes.USAGE
    if args.json:
        print(json.dumps(chosen, indent=2, sort_keys=True))
    else:
        for token, entry in sorted(chosen.items()):
            print(f"{token}\t{entry['kind']}\t{entry['name']}" if entry
                  else f"{token}\tunknown on this host ({store.directory})")
    return exitcodes.OK if all(chosen.values()) else exitcodes.UNKNOWN_TOKEN
