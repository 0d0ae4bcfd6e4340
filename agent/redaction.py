"""What `mydiag collect` says and asks about redaction: --pseudonymize, --review,
--allow-findings, and the one-line messages for lint findings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List

from rich.console import Console
from rich.table import Table

from bundle.lint import Finding
from bundle.manifest import FileEntry
from bundle.pseudonym import parse_kinds

#: How many findings the message lists before it says "and N more".
SHOWN = 10


def add_redaction_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("redaction (secrets are always removed)")
    group.add_argument(
        "--pseudonymize", type=_kinds, default=[], metavar="KINDS",
        help="replace these names by consistent tokens: any of hosts,ips,users,schemas "
        "(the key and the token map stay on this host: `mydiag pseudonyms lookup TOKEN`)",
    )
    group.add_argument(
        "--review", action="store_true",
        help="show every file, its size and what was redacted in it, and ask before "
        "writing the bundle (--yes answers yes)",
    )
    group.add_argument(
        "--allow-findings", action="store_true",
        help="write the bundle even when the final check finds something that looks like "
        "a secret (the findings are counted in the manifest)",
    )


def _kinds(text: str) -> List[str]:
    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def findings_message(findings: List[Finding]) -> str:
    """One line: where something secret-looking was left, never what it was."""
    shown = ", ".join(f"{f.path}:{f.line} ({f.what})" for f in findings[:SHOWN])
    more = f" and {len(findings) - SHOWN} more" if len(findings) > SHOWN else ""
    return (
        f"mydiag: the bundle was not written: {len(findings)} place(s) still look like a "
        f"secret after redaction: {shown}{more}. Nothing was left behind; if these are not "
        "secrets, run again with --allow-findings"
    )


def review_prompt(assume_yes: bool) -> Callable[[List[FileEntry], Path], bool]:
    """The --review step: a table of what will be written, then a yes/no question."""

    def review(entries: List[FileEntry], stage: Path) -> bool:
        console = Console(stderr=True)
        table = Table(title="the bundle will hold (after redaction)")
        table.add_column("file")
        table.add_column("bytes", justify="right")
        table.add_column("redacted")
        for entry in entries:
            counts = ", ".join(f"{rule} x{n}" for rule, n in entry.redactions.items())
            table.add_row(entry.path, str(entry.bytes), counts or "-")
        console.print(table)
        console.print(f"plus manifest.json; {len(entries)} files, "
                      f"{sum(e.bytes for e in entries)} bytes. The files wait in {stage} "
                      "until you answer: look at any of them now if you like.")
        if assume_yes:
            console.print("write the bundle? yes (--yes)")
            return True
        console.print("write the bundle? [y/N] ", end="", markup=False)
        try:
            answer = sys.stdin.readline()
        except (OSError, ValueError):
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    return review
