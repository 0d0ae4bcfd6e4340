"""`mydiag report`: findings with evidence from a bundle, offline, on any host."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from agent import exitcodes
from agent.commands.say import fail
from agent.commands.sealing_options import add_identity_option, age_exit_code, identities_from, os_error_text
from bundle.age import AgeError
from bundle.manifest_schema import printable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="findings with evidence from a bundle (offline)",
        description="Read a bundle (plain, or sealed with --identity) and print what its rules "
        "found, with the evidence, the advice, its risk and how to verify it. Rates come from the "
        "bundle's sampled window, not averages since start-up. Exit codes: 0 done, 2 bad "
        "arguments (unknown rule, unknown upgrade target), 6 the --html file cannot be written, "
        "7 not a readable bundle, 8 no identity opens it, 9 damaged seal, 12 bad identity file, "
        "21 the --public output would still name the customer.",
    )
    parser.add_argument("bundle", nargs="?", help="a .tar.zst or .tar.zst.age bundle")
    add_identity_option(parser, required=False)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--html", metavar="FILE", help="write the report as one HTML file (offline)")
    parser.add_argument("--upgrade-to", metavar="VERSION",
                        help="also check an upgrade to VERSION (e.g. 'mysql 8.4', 'mariadb 11.4')")
    parser.add_argument("--diff", metavar="OTHER", help="compare with an older bundle of the same host")
    parser.add_argument("--explain", metavar="RULE", help="print a rule's documentation (e.g. MEM-01)")
    parser.add_argument("--rules", action="store_true", help="list every rule")
    parser.add_argument("--public", action="store_true",
                        help="for a write-up: schema, table, user and host names and IP addresses "
                        "pseudonymized, then leak-scanned (exit 21 on a leak; see docs/share.md)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from report import catalog, registry

    if args.explain:
        found = registry.get(args.explain)
        if found is None:
            return fail(f"no rule {printable(args.explain)} (see `mydiag report --rules`)", exitcodes.USAGE)
        print(explain_text(found))
        return exitcodes.OK
    if args.rules:
        for item in catalog.rules():
            print(f"{item.id}\t{item.severity}\t{'window' if item.window else 'reading'}\t{item.title}")
        return exitcodes.OK
    if not args.bundle:
        return fail("name a bundle (or use --explain RULE / --rules)", exitcodes.USAGE)
    try:
        identities = identities_from(args)
    except AgeError as exc:
        return fail(str(exc), age_exit_code(exc))
    except OSError as exc:
        return fail(f"cannot read the identity file: {os_error_text(exc)}", exitcodes.KEY_ERROR)
    opened = _open(args.bundle, identities)
    if isinstance(opened, int):
        return opened
    bundle = opened
    target = None
    if args.upgrade_to:
        from report.upgrade import parse_target
        try:  # a bare version ("11.4") means the bundle's own flavor
            target = parse_target(args.upgrade_to, bundle.version.flavor)
        except ValueError as exc:
            return fail(str(exc), exitcodes.USAGE)
    from report.engine import evaluate
    result = evaluate(bundle)
    if args.public:
        return _public(args, bundle, result, upgrade_target=target)
    if args.diff:
        other = _open(args.diff, identities)
        if isinstance(other, int):
            return other
        return _diff(args, other, bundle, evaluate(other), result)
    upgrade: Optional[List[Any]] = None
    unchecked: List[Any] = []
    if target is not None:
        from report.upgrade import check_upgrade
        try:
            upgrade, unchecked = check_upgrade(bundle, target)
        except ValueError as exc:
            return fail(str(exc), exitcodes.USAGE)
    if args.html:
        from report.html import render_report
        code = _write(args.html, render_report(bundle, result, standalone=True, upgrade=upgrade))
        if code:
            return code
    if args.json:
        body: Dict[str, Any] = {"report": result.to_dict(),
                                "findings": [f.to_dict() for f in result.findings]}
        if upgrade is not None:
            body["upgrade"] = {"target": str(args.upgrade_to), "findings": [f.to_dict() for f in upgrade],
                               "not_checked": [o.__dict__ for o in unchecked]}
        print(_dumps(body["findings"] if upgrade is None else body))
        return exitcodes.OK
    print_text(result, upgrade, unchecked)
    if args.html:
        print(f"report: {args.html}")
    return exitcodes.OK


def _public(args: argparse.Namespace, bundle: Any, result: Any, upgrade_target: Any) -> int:
    """The report with nothing that names the customer (report/share/public.py), or exit 21."""
    import io

    from agent.commands.share import share_key
    from report.share.public import publish_text, publish_value
    if args.html or args.diff or upgrade_target is not None:
        return fail("--public goes with the text or --json report only", exitcodes.USAGE)
    key = share_key()
    if isinstance(key, int):
        return key
    if args.json:
        body = {"report": result.to_dict(), "findings": [f.to_dict() for f in result.findings]}
        text, scan = publish_value(bundle, _jsonable(body["findings"]), key, _dumps)
    else:
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            print_text(result, None, [])
        text, scan = publish_text(bundle, captured.getvalue(), key)
    if not scan.clean:
        return fail(f"refused: the public report would still name the customer: {scan.summary()}",
                    exitcodes.LEAK_FOUND)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return exitcodes.OK


def _open(path: str, identities: List[str]) -> Any:
    from report.model import Bundle, ReportError
    try:
        return Bundle.open(path, identities)
    except ReportError as exc:
        return fail(str(exc), exitcodes.BAD_BUNDLE)
    except AgeError as exc:
        return fail(f"{printable(path)}: {exc}", age_exit_code(exc))


def _diff(args: argparse.Namespace, older: Any, newer: Any, report_old: Any, report_new: Any) -> int:
    from report.diff import diff
    result = diff(older, newer, report_old, report_new)
    if args.html:
        from report.html import render_diff
        code = _write(args.html, render_diff(result, standalone=True))
        if code:
            return code
    if args.json or not args.html:
        print(_dumps(result))
    return exitcodes.OK


def _write(path: str, text: str) -> int:
    """Write `text` to `path` whole or not at all: a partial file beside it, renamed at the
    end, and removed when anything fails."""
    target = Path(path)
    if target.is_dir() or not target.name:
        return fail(f"cannot write {printable(path)}: it is a folder (name the HTML file to write)",
                    exitcodes.OUTPUT_ERROR)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(text)
        partial.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        return fail(f"cannot write {printable(path)}: {os_error_text(exc)}", exitcodes.OUTPUT_ERROR)
    return exitcodes.OK


def _dumps(value: Any) -> str:
    """Valid JSON whatever the bundle held: NaN and infinities become null, lone surrogates
    and control characters are escaped (ensure_ascii), odd objects become text."""
    return json.dumps(_jsonable(value), indent=2, sort_keys=True, allow_nan=False)


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        return printable(str(value)[:200])
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, dict):
        return {printable(str(k)) if not isinstance(k, str) else k: _jsonable(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), depth + 1)
    return printable(str(value))


def explain_text(rule: Any) -> str:
    lines = [f"{rule.id}: {rule.title}", "",
             f"group: {rule.group}   severity: {rule.severity}   confidence: {rule.confidence}   "
             f"{'reads the sampled window' if rule.window else 'reads one reading'}",
             f"applies to: {applies_text(rule)}", "", rule.doc, "",
             f"Advice: {rule.advice}", f"Risk: {rule.risk}", f"Verify: {rule.verify}"]
    return "\n".join(lines)


def applies_text(rule: Any) -> str:
    parts = []
    for flavor in rule.flavors:
        low, high = rule.versions.get(flavor, (None, None))
        span = ""
        if low:
            span += f" from {'.'.join(map(str, low))}"
        if high:
            span += f" before {'.'.join(map(str, high))}"
        parts.append(("MariaDB" if flavor == "mariadb" else "MySQL") + span)
    return ", ".join(parts)


def print_text(result: Any, upgrade: Optional[List[Any]], unchecked: List[Any]) -> None:
    """Plain text: everything from the bundle is passed through `printable` (no escapes)."""
    out = sys.stdout
    window = result.window
    out.write(f"{printable(result.host)}: {printable(result.server)}; window of "
              f"{window.get('seconds', 0):g} s, {window.get('samples', 0)} samples"
              f"{' (the server restarted inside it)' if window.get('restarted') else ''}\n")
    if not result.findings:
        out.write("no findings\n")
    for finding in result.findings:
        _finding(out, finding)
    if upgrade is not None:
        out.write(f"\nupgrade checks: {len(upgrade)} finding(s)\n")
        for finding in upgrade:
            _finding(out, finding)
        for outcome in unchecked:
            out.write(f"  not checked {outcome.rule}: {printable(outcome.reason)}\n")
    skipped = [o for o in result.outcomes if o.status in ("insufficient", "error")]
    if skipped:
        out.write(f"\nnot judged ({len(skipped)} rules):\n")
        for outcome in skipped:
            label = "insufficient data" if outcome.status == "insufficient" else "rule error"
            out.write(f"  {outcome.rule}: {label}: {printable(outcome.reason)}\n")
    counts = result.counts()
    out.write(f"\n{len(result.findings)} finding(s) from {result.rules_run} rules"
              + (": " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if counts else "") + "\n")


def _finding(out: Any, finding: Any) -> None:
    out.write(f"\n[{finding.severity}] {finding.rule} {printable(finding.title)}\n")
    out.write(f"  {printable(finding.summary)}\n")
    for item in finding.evidence:
        pairs = list(item.values.items())[:8]
        shown = ", ".join(f"{printable(str(k))}={printable(str(v))}" for k, v in pairs)
        out.write(f"  evidence: {printable(item.member)}" + (f": {shown}" if shown else "") + "\n")
        for digest in item.digests[:3]:
            out.write(f"    digest {printable(str(digest.get('digest', ''))[:16])}: "
                      f"{printable(str(digest.get('digest_text', ''))[:120])}\n")
    out.write(f"  advice: {printable(finding.advice)}\n  risk: {printable(finding.risk)}\n"
              f"  verify: {printable(finding.verify)}\n")
