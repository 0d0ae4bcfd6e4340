"""`mydiag grants`: the least-privilege accounts, as SQL (collection, or the diag console)."""

from __future__ import annotations

import argparse

from agent.session import diagaccount
from collectors.mysql.flavor import Flavor
from collectors.mysql.privileges import PURPOSES, least_privilege_script

_FLAVORS = {
    "mariadb": Flavor("mariadb", (10, 11, 0)),
    "mariadb-10.4": Flavor("mariadb", (10, 4, 0)),
    "mysql": Flavor("mysql", (8, 0, 30)),
    "mysql-5.7": Flavor("mysql", (5, 7, 40)),
    "percona": Flavor("percona", (8, 0, 30)),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grants", help="print SQL for a least-privilege diagnostics user",
        description="Print CREATE USER and GRANT statements: for collecting (the standard profile, the "
        "default) or for the diag console of remote sessions (--purpose diag: no FILE, no admin "
        "privilege, nothing of the mysql schema, few connections).",
    )
    parser.add_argument("--user", help="account name (default mydiag, or mydiag_diag with --purpose diag)")
    parser.add_argument("--host", default="localhost", help="account host (default localhost)")
    parser.add_argument("--flavor", choices=sorted(_FLAVORS),
                        help="server flavor (default: every flavor)")
    parser.add_argument("--purpose", choices=("collect", "diag"), default="collect",
                        help="collect (default): the collection account; diag: the diag console's account")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = [args.flavor] if args.flavor else sorted(_FLAVORS)
    user = args.user or ("mydiag_diag" if args.purpose == "diag" else "mydiag")
    for name in names:
        flavor = _FLAVORS[name]
        print(f"-- {flavor.label.rsplit('.', 1)[0]}.x and later ({name})")
        lines = (diagaccount.script(flavor, user, args.host) if args.purpose == "diag"
                 else least_privilege_script(flavor, user, args.host))
        for line in lines:
            print(line)
        print()
    if args.purpose == "collect":
        print("-- What each grant is for:")
        for purpose in PURPOSES.values():
            print(f"--   {purpose}")
    return 0
