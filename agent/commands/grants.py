"""`mydiag grants`: the least-privilege diagnostics user, as SQL."""

from __future__ import annotations

import argparse

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
        description="Print CREATE USER and GRANT statements for the standard profile.",
    )
    parser.add_argument("--user", default="mydiag", help="account name (default mydiag)")
    parser.add_argument("--host", default="localhost", help="account host (default localhost)")
    parser.add_argument("--flavor", choices=sorted(_FLAVORS),
                        help="server flavor (default: every flavor)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = [args.flavor] if args.flavor else sorted(_FLAVORS)
    for name in names:
        flavor = _FLAVORS[name]
        print(f"-- {flavor.label.rsplit('.', 1)[0]}.x and later ({name})")
        for line in least_privilege_script(flavor, args.user, args.host):
            print(line)
        print()
    print("-- What each grant is for:")
    for purpose in PURPOSES.values():
        print(f"--   {purpose}")
    return 0
