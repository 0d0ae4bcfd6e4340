"""`mydiag collect`: one-shot collection into a local bundle."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from agent import exitcodes
from agent.connect import OptionError
from agent.options import add_connection_options, connect_spec
from agent.runner import Options, collect
from agent.summary import LiveProgress, print_summary, summary_dict
from collectors.mysql.session import AccessDenied
from collectors.registry import PROFILES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect", add_help=False, help="collect a diagnostics bundle from this host",
        description="Collect MySQL status, configuration and metrics into one bundle, "
        "without stalling the server. Exit codes: 0 all ok, 3 some collectors failed or "
        "partial (bundle written), 4 cannot connect, 5 access denied, 6 cannot write the "
        "bundle, 2 bad arguments.",
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--profile", choices=PROFILES, default="standard",
                        help="how much to collect (default: standard)")
    add_connection_options(parser)
    parser.add_argument("--output", "-o", default=".", metavar="DIR",
                        help="where to write the bundle (default: current directory)")
    parser.add_argument("--samples", type=int, default=5,
                        help="status samples to take (default 5; full profile: 10)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                        help="seconds between samples (default 1)")
    parser.add_argument("--max-time", type=float, default=60.0, metavar="SECONDS",
                        help="overall time budget (default 60)")
    parser.add_argument("--statement-timeout", type=float, default=3.0, metavar="SECONDS",
                        help="server-side limit for every statement (default 3)")
    parser.add_argument("--table-guard", type=int, default=10_000, metavar="N",
                        help="above N tables, use cheap sources for sizes (default 10000)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask questions")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.samples < 1 or args.interval < 0 or args.max_time <= 0:
        print("mydiag: --samples must be >= 1, --interval >= 0, --max-time > 0", file=sys.stderr)
        return exitcodes.USAGE
    samples = args.samples
    if args.profile == "full" and "--samples" not in sys.argv:
        samples = 10
    try:
        spec = connect_spec(args)
    except OptionError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    options = Options(
        profile=args.profile, output_dir=Path(args.output), samples=samples,
        interval=args.interval, max_time=args.max_time,
        statement_timeout=args.statement_timeout, table_guard=args.table_guard,
    )
    try:
        with LiveProgress(enabled=not args.json and sys.stderr.isatty()) as live:
            result = collect(spec, options, live.update)
    except OSError as exc:
        what = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror
        print(f"mydiag: cannot write the bundle in {args.output}: {what}", file=sys.stderr)
        return exitcodes.OUTPUT_ERROR
    if args.json:
        print(json.dumps(summary_dict(result), indent=2))
    else:
        print_summary(result)
    if result.connect_error is not None:
        if not args.json:
            print(f"mydiag: {result.connect_error.reason}", file=sys.stderr)
        if result.bundle is None:
            if isinstance(result.connect_error, AccessDenied):
                return exitcodes.ACCESS_DENIED
            return exitcodes.CANNOT_CONNECT
    return exitcodes.OK if result.all_ok else exitcodes.PARTIAL
