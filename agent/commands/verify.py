"""`mydiag verify`: prove who made a bundle and that nothing in it changed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from agent import exitcodes
from agent.commands.sealing_options import (
    add_identity_option,
    age_exit_code,
    identities_from,
    os_error_text,
)
from bundle.age import AgeError, is_age_file
from bundle.sign import SignError, fingerprint, normalize_public_key
from bundle.verify import Verdict, verify_bundle


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify", help="check a bundle's signature and every file's sha256",
        description="Check a plain or sealed bundle and say exactly what holds: the sealed "
        "envelope authenticates, the manifest signature is valid (and by --signer), and "
        "every file matches its sha256 in the manifest. Exit codes: 0 all holds, 2 bad "
        "arguments, 7 not a readable bundle, 8 wrong key, 9 sealed file damaged, 10 a check "
        "failed, 11 intact but not signed, 12 a key is not usable.",
    )
    parser.add_argument("file", metavar="FILE", help="a bundle (.tar.zst) or sealed bundle (.age)")
    add_identity_option(parser, required=False)
    parser.add_argument(
        "--signer", metavar="PUBKEY",
        help="require this signer: 'mydiag-ed25519 …' (from `mydiag keys show`) or a file "
        "holding it",
    )
    parser.set_defaults(run=run)


def _signer_text(value: str) -> str:
    candidate = Path(value)
    if not value.startswith("mydiag-") and candidate.is_file():
        lines = [
            line.strip() for line in candidate.read_text(errors="replace").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        value = lines[0] if lines else ""
    return normalize_public_key(value)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        sealed = is_age_file(path)
    except OSError as exc:
        print(f"mydiag: cannot read {path}: {os_error_text(exc)}", file=sys.stderr)
        return exitcodes.USAGE
    signer: Optional[str] = None
    try:
        if args.signer:
            signer = _signer_text(args.signer)
        identities = identities_from(args)
    except SignError as exc:
        print(f"mydiag: --signer: {exc}", file=sys.stderr)
        return exitcodes.KEY_ERROR
    except AgeError as exc:
        print(f"mydiag: {exc}", file=sys.stderr)
        return age_exit_code(exc)
    if sealed and not identities:
        print(f"mydiag: {path} is sealed: give --identity KEYFILE to open it for checking",
              file=sys.stderr)
        return exitcodes.USAGE
    try:
        verdict = verify_bundle(path, identities, signer)
    except AgeError as exc:
        print(f"mydiag: cannot open {path}: {exc}", file=sys.stderr)
        return age_exit_code(exc)
    for line in report_lines(verdict):
        print(line)
    return exit_code(verdict)


def exit_code(verdict: Verdict) -> int:
    if verdict.ok:
        return exitcodes.OK
    if verdict.unreadable is not None:
        return exitcodes.BAD_SEAL if verdict.unreadable_kind is not None else exitcodes.BAD_BUNDLE
    if verdict.intact and not verdict.signed and verdict.expected_signer is None:
        return exitcodes.UNSIGNED
    return exitcodes.NOT_VERIFIED


def report_lines(v: Verdict) -> List[str]:
    lines: List[str] = []
    if v.sealed:
        if v.unreadable_kind is not None:
            lines.append(f"sealed:    FAILED: {v.unreadable}")
        else:
            lines.append(f"sealed:    age v1, opened with the identity of {v.opened_by}; "
                         "every chunk authenticated")
    elif v.unreadable is None:
        lines.append("sealed:    no (a plain bundle)")
    if v.unreadable is not None and v.unreadable_kind is None:
        lines.append(f"bundle:    FAILED: {v.unreadable}")
    if v.host is not None:
        lines.append(f"host:      {v.host} (as the manifest says)")
    if v.unreadable is None or v.host is not None:
        lines.append("signature: " + _signature_line(v))
        if v.expected_signer is not None:
            if v.signer_matches:
                lines.append("signer:    matches --signer")
            else:
                lines.append(f"signer:    FAILED: not by --signer ({fingerprint(v.expected_signer)})")
        elif v.signature_valid:
            lines.append("signer:    not checked against a known key (pass --signer PUBKEY)")
        lines.append("files:     " + _files_line(v))
    lines.append(_conclusion(v))
    return lines


def _signature_line(v: Verdict) -> str:
    if not v.signed:
        return "none: the bundle is not signed (its host had no key: `mydiag keys init`)"
    if v.signature_valid:
        return f"valid, by {v.signer} ({fingerprint(v.signer or '')})"
    return f"FAILED: {v.signature_problem}"


def _files_line(v: Verdict) -> str:
    if v.unreadable is not None:
        return f"not all checked: {v.files_matched} of {v.files_listed} matched before the failure"
    problems = []
    if v.changed:
        problems.append(f"changed (sha256 differs): {', '.join(v.changed)}")
    if v.missing:
        problems.append(f"missing: {', '.join(v.missing)}")
    if v.extra:
        problems.append(f"not in the manifest: {', '.join(v.extra)}")
    if not problems:
        return f"all {v.files_listed} match their sha256 in the manifest"
    return f"FAILED: {v.files_matched} of {v.files_listed} match; " + "; ".join(problems)


def _conclusion(v: Verdict) -> str:
    if v.ok:
        return "verified: signed by the key above and nothing changed"
    if v.intact and not v.signed and v.expected_signer is None:
        return ("NOT VERIFIED: every file matches the manifest, but without a signature "
                "that proves neither who made it nor that it was not rewritten")
    return "NOT VERIFIED"
