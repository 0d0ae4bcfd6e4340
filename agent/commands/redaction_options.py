"""What `mydiag collect` says and asks about redaction: --pseudonymize, --review,
--allow-findings, and the one-line messages for lint findings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List

from bundle.manifest import FileEntry
from privacy.lint import Finding
from privacy.pseudonym import parse_kinds

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
    """The --review step: every file with its size and redactions, then a yes/no question.

    Plain lines on stderr (stdout stays free for --json), never shortened: a path cut to
    fit the terminal would hide what the customer is asked to approve.
    """

    def review(entries: List[FileEntry], stage: Path) -> bool:
        width = max((len(str(e.bytes)) for e in entries), default=1)
        lines = ["the bundle will hold (after redaction): bytes, file, what was redacted"]
        for entry in entries:
            counts = ", ".join(f"{rule} x{n}" for rule, n in entry.redactions.items())
            lines.append(f"  {entry.bytes:>{width}}  {entry.path}  {counts or '-'}")
        lines.append(f"plus manifest.json: {len(entries)} files, {sum(e.bytes for e in entries)} "
                     f"bytes. They wait in {stage} until you answer; look at any of them now.")
        print("\n".join(lines), file=sys.stderr)
        if assume_yes:
            print("write the bundle? yes (--yes)", file=sys.stderr)
            return True
        print("write the bundle? [y/N] ", end="", file=sys.stderr, flush=True)
        try:
            answer = sys.stdin.readline()
        except (OSError, ValueError):
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    return review
