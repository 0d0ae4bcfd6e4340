"""`mydiag inspect`: what a bundle holds, and any one member."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import List

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent import exitcodes
from agent.commands.sealing_options import os_error_text
from bundle.manifest_schema import printable
from bundle.reader import BundleError, copy_member, read_manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="list what a bundle holds, or print one member",
        description="List a bundle's collectors and files, or print one member with --show. "
        "Exit codes: 0 done, 2 bad arguments, 7 not a readable bundle (damaged, not a "
        "bundle, or breaking the format or its limits).",
    )
    parser.add_argument("bundle", help="a .tar.zst bundle")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument("--show", metavar="PATH", help="print this member (e.g. manifest.json)")
    parser.set_defaults(run=run)


def wrap_path(path: str, width: int) -> str:
    """`path` in lines of at most `width` characters, broken after a `/` where one fits, so a
    narrow terminal shows every path whole (a cut path looks like its neighbours)."""
    if width < 8 or len(path) <= width:
        return path
    lines: List[str] = []
    line = ""
    for part in re.split(r"(?<=/)", path):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
        while len(line) > width:  # one name longer than the column: fold it
            lines.append(line[:width])
            line = line[width:]
    if line:
        lines.append(line)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = Path(args.bundle)
    try:
        if args.show:
            copy_member(path, args.show, sys.stdout.buffer)
            sys.stdout.flush()
            return exitcodes.OK
        manifest = read_manifest(path)
    except BundleError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return exitcodes.BAD_BUNDLE
    except OSError as exc:
        print(f"mydiag: cannot read {printable(str(path))}: {os_error_text(exc)}", file=sys.stderr)
        return exitcodes.BAD_BUNDLE
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2, sort_keys=True))
        return exitcodes.OK
    # Everything below comes from the bundle: shown as text (no markup), escapes visible.
    console = Console(highlight=False)
    console.print(Text(
        f"{path.name}: {manifest.host}, {manifest.profile} profile, "
        f"{printable(str(manifest.mysql.get('label') or 'no MySQL'))}, {manifest.started} to "
        f"{manifest.finished}"))
    # On a narrow terminal long names wrap (fold) instead of being cut to an ellipsis: two
    # paths that differ only at the end must stay two distinguishable rows.
    collectors = Table()
    collectors.add_column("collector", overflow="fold")
    collectors.add_column("status", no_wrap=True)
    collectors.add_column("time", no_wrap=True)
    collectors.add_column("error or notes")
    for entry in manifest.collectors:
        collectors.add_row(
            Text(entry.name), entry.status, f"{entry.duration:.2f}s",
            Text(printable(entry.error or "; ".join(entry.notes))),
        )
    console.print(collectors)
    files = Table()
    files.add_column("file", overflow="fold")
    files.add_column("bytes", justify="right", no_wrap=True)
    files.add_column("sha256", no_wrap=True)
    digits = max([len("bytes")] + [len(str(item.bytes)) for item in manifest.files])
    # What is left of the width once the other columns, their padding and the borders are in.
    room = console.width - (digits + 2) - (16 + 2) - 2 - 4
    for item in manifest.files:
        files.add_row(Text(wrap_path(item.path, room)), str(item.bytes), item.sha256[:16])
    console.print(files)
    if manifest.redaction:
        console.print(Text(
            "redacted: " + ", ".join(f"{printable(rule)} x{count}"
                                     for rule, count in manifest.redaction.items())))
    _headline(console, path)
    return exitcodes.OK


def _headline(console: Console, path: Path) -> None:
    """The report's headline findings (warning or worse); `mydiag report` gives them all."""
    from report.engine import evaluate
    from report.model import Bundle, ReportError

    try:
        result = evaluate(Bundle.open(path))
    except ReportError:
        return
    headline = result.headline()
    if not headline:
        console.print(Text(f"findings: none of warning or worse ({len(result.findings)} in all; "
                           f"`mydiag report {printable(str(path))}`)"))
        return
    console.print(Text(f"headline findings ({len(result.findings)} in all: "
                       f"`mydiag report {printable(str(path))}`):"))
    for finding in headline:
        console.print(Text(f"  [{finding.severity}] {finding.rule} {printable(finding.summary)[:160]}"))
