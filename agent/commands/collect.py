"""`mydiag collect`: one-shot collection into a local bundle."""

from __future__ import annotations

import argparse
import errno
import json
import os
import pwd
import sys
from pathlib import Path
from typing import Optional

from agent import exitcodes
from agent.collect.connection import OptionError
from agent.collect.runner import Options, collect
from agent.collect.summary import LiveProgress, print_summary, summary_dict
from agent.commands.connection_options import add_connection_options, connect_spec
from agent.commands.redaction_options import add_redaction_options, findings_message, review_prompt
from agent.commands.sealing_options import (
    add_recipient_options,
    age_exit_code,
    os_error_text,
    recipients_from,
)
from agent.commands.ticket_options import (
    RemoteError,
    add_upload_options,
    pin_before_collect,
    upload_collected,
)
from agent.home import host_key_path
from bundle.age import AgeError, seal_file
from bundle.sign import SignError, load_host_key
from collectors.config.values import to_bytes
from collectors.mysql import share
from collectors.mysql.session import AccessDenied
from collectors.os import stacks
from collectors.registry import PROFILES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect", add_help=False, help="collect a diagnostics bundle from this host",
        description="Collect MySQL status, configuration and metrics into one bundle, "
        "without stalling the server. Exit codes: 0 all ok, 3 some collectors failed or "
        "partial (bundle written), 4 cannot connect, 5 access denied, 6 cannot write the "
        "bundle (or --output is not a writable directory), 2 bad arguments, 12 a recipient "
        "or the host key is not usable. The bundle "
        "is signed when this host has a key (`mydiag keys init`). With --upload: 13 upload "
        "failed (run `mydiag upload` on the bundle to resume), 14 refused by the server, "
        "15 the ticket's recipients changed, 16 quarantined by the server. 17 something "
        "still looked like a secret after redaction (nothing written; see --allow-findings), "
        "18 declined at --review (nothing written), 20 --stacks cannot run here (not root, or "
        "neither eu-stack nor gdb installed; nothing collected).",
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
                        help="above N tables, list no table by name (default 10000)")
    parser.add_argument("--log-bytes", type=_size, default=2 << 20, metavar="SIZE",
                        help="include the last SIZE of each server log (default 2M; K, M, G)")
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="also copy this file (repeatable; option files with their includes)")
    add_recipient_options(parser)
    parser.add_argument("--keep-plain", action="store_true",
                        help="with --recipient, also keep the unsealed bundle")
    add_upload_options(parser)
    add_redaction_options(parser)
    parser.add_argument("--stacks", action="store_true",
                        help="also take one snapshot of mysqld's thread stacks (pt-pmp style, "
                        "with eu-stack or gdb; root only): mysqld pauses while it is taken, "
                        "usually well under a second")
    parser.add_argument("--for-share", action="store_true",
                        help="also collect what `mydiag share` needs for a public repro of the "
                        "slowest SELECTs (in any profile; the full profile collects it without "
                        "EXPLAIN): samples with their literals, the DDL and optimizer statistics "
                        "of the tables and views they touch, and EXPLAIN FORMAT=JSON of each "
                        "sample (run under a 2s limit; review them with --review)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask questions")
    parser.set_defaults(run=run)


def _size(text: str) -> int:
    size = to_bytes(text)
    if size is None or size < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 65536, 512K, 2M)")
    return size


def output_problem(folder: Path) -> Optional[str]:
    """Why the bundle cannot be written in `folder`, or None. A missing folder is made (with its
    parents) when the nearest existing one above it is a writable directory."""
    existing = folder
    # os.path, not Path.exists(): a folder we may not look into must not raise.
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if os.path.exists(existing) and not os.path.isdir(existing):
        what = "is a file" if os.path.isfile(existing) else "is not a directory"
        if existing == folder:
            return f"{what}, not a directory: name the directory to write the bundle in"
        return f"cannot be made: {existing} {what}, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = f"uid {os.geteuid()}"
        reason = "is on a read-only file system" if _read_only(existing) else \
            f"is not writable by {user}"
        if existing == folder:
            return f"the directory {reason}: name one you can write in"
        return f"cannot be made: {existing} {reason}"
    return None


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    if args.samples < 1 or args.interval < 0 or args.max_time <= 0:
        print("mydiag: --samples must be >= 1, --interval >= 0, --max-time > 0", file=sys.stderr)
        return exitcodes.USAGE
    samples = args.samples
    if args.profile == "full" and "--samples" not in sys.argv:
        samples = 10
    problem = output_problem(Path(args.output))
    if problem:
        print(f"mydiag: --output {args.output}: {problem}", file=sys.stderr)
        return exitcodes.OUTPUT_ERROR
    if args.stacks:
        refused = stacks.refusal()
        if refused:
            print(f"mydiag: {refused}", file=sys.stderr)
            return exitcodes.CANNOT_TRACE
    try:
        spec = connect_spec(args)
    except OptionError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    try:
        recipients = recipients_from(args)
        key_path = host_key_path()
        signing_key = load_host_key(key_path) if key_path.exists() else None
    except AgeError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return age_exit_code(exc)
    except SignError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.KEY_ERROR
    if args.upload:
        try:
            recipients = list(dict.fromkeys(recipients + pin_before_collect(args)))
        except RemoteError as exc:
            print(f"mydiag: {exc}", file=sys.stderr)
            return exc.code
    if args.keep_plain and not recipients:
        print("mydiag: --keep-plain only makes sense with --recipient", file=sys.stderr)
        return exitcodes.USAGE
    options = Options(
        profile=args.profile, output_dir=Path(args.output), samples=samples,
        interval=args.interval, max_time=args.max_time,
        statement_timeout=args.statement_timeout, table_guard=args.table_guard,
        log_bytes=args.log_bytes, config_files=[os.path.abspath(p) for p in args.config_file],
        recipients=None if args.keep_plain else recipients or None, signing_key=signing_key,
    )
    options.pseudonymize, options.allow_findings = args.pseudonymize, args.allow_findings
    if args.stacks:
        options.opt_in = ("stacks",)
        print(f"mydiag: --stacks: mysqld will stand still while {stacks.tool_name()} takes one "
              f"snapshot of its threads' stacks (usually well under a second; stopped after "
              f"{stacks.TIME_LIMIT:g}s at most)", file=sys.stderr)
    if args.for_share:
        options.opt_in += (share.ASKED,)
    options.review = review_prompt(args.yes) if args.review else None
    try:
        progress = not args.json and not args.review and sys.stderr.isatty()
        with LiveProgress(enabled=progress) as live:
            result = collect(spec, options, live.update)
    except OSError as exc:
        what = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror
        print(f"mydiag: cannot write the bundle in {args.output}: {what}", file=sys.stderr)
        return exitcodes.OUTPUT_ERROR
    if result.bundle is None and result.findings:
        print(findings_message(result.findings), file=sys.stderr)
        return exitcodes.SECRET_FINDINGS
    if result.declined:
        print("mydiag: the bundle was not written (declined at --review); nothing was left "
              "behind", file=sys.stderr)
        return exitcodes.DECLINED
    plain = None
    if result.bundle is not None and args.keep_plain:
        plain = result.bundle
        sealed = plain.with_name(plain.name + ".age")
        try:
            result.bundle = seal_file(plain, sealed, recipients)
        except OSError as exc:
            print(f"mydiag: cannot write {sealed}: {os_error_text(exc)} (the plain bundle "
                  f"{plain} was kept)", file=sys.stderr)
            return exitcodes.OUTPUT_ERROR
    upload_code, uploaded = exitcodes.OK, None
    if args.upload and result.bundle is not None and args.json:
        upload_code, uploaded = upload_collected(result.bundle, args)
    if args.json:
        summary = summary_dict(result)
        summary.update(sealed=bool(recipients), signed=signing_key is not None,
                       plain_bundle=str(plain) if plain else None)
        summary["upload"] = uploaded
        print(json.dumps(summary, indent=2))
    else:
        print_summary(result)
        if plain is not None:
            print(f"plain bundle kept (unencrypted): {plain}")
        if result.bundle is not None and signing_key is None:
            print(f"note: the bundle is not signed: this host has no key at {key_path} "
                  "(run `mydiag keys init` once)")
    if args.upload and result.bundle is not None and not args.json:
        upload_code, uploaded = upload_collected(result.bundle, args)
    if upload_code != exitcodes.OK:
        return upload_code
    if result.connect_error is not None:
        # The host's side (OS, config, logs) may still be in a bundle: it is often what
        # explains a server that is down. The exit code says the server was not reached.
        if not args.json:
            print(f"mydiag: {result.connect_error.reason}", file=sys.stderr)
        if isinstance(result.connect_error, AccessDenied):
            return exitcodes.ACCESS_DENIED
        return exitcodes.CANNOT_CONNECT
    return exitcodes.OK if result.all_ok else exitcodes.PARTIAL
