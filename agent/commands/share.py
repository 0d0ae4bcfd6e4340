"""`mydiag share`: a public repro package of one statement's plan, without customer data."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from agent import exitcodes
from agent.commands.say import fail
from agent.commands.sealing_options import add_identity_option, age_exit_code, identities_from, os_error_text
from bundle.age import AgeError
from bundle.manifest_schema import printable

KEY_NAME = "share.key"
MAPS = "share"
MAX_QUERY_FILE = 256 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "share", help="a public repro package of a statement's plan, without customer data",
        description="Build a public repro package (repro.sql, repro.test, query.sql, "
        "expected_explain.json, settings.json, README.md) of one statement from a bundle collected "
        "with `mydiag collect --for-share`: every name and value mapped by keyed maps, statistics "
        "transplanted, synthetic rows. The package is scanned for every original name, value, host, "
        "address and user in every encoding, and refused on a leak; --verify-on replays it. The "
        "private map goes to --map, never into the package. Exit codes: 0 done, 2 bad arguments (a "
        "digest that matches no or several statements, a --query file that is not one SELECT, a bad "
        "DSN), 4/5 the --verify-on server unreachable or refusing, 6 the output cannot be written or "
        "exists, 7 not a readable bundle or malformed share data, 8/9/12 sealed bundle errors, 21 a "
        "leak (nothing written), 22 the replayed plan differs (the package is written), 23 no share "
        "data in the bundle. See docs/share.md.",
    )
    parser.add_argument("bundle", help="a .tar.zst or .tar.zst.age bundle")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--digest", metavar="DIGEST", help="the statement's digest (or a unique prefix)")
    which.add_argument("--query", metavar="FILE", help="a file holding one SELECT over the bundle's tables")
    parser.add_argument("--output", metavar="DIR", help="the package folder (new or empty; default "
                        "./mydiag-share-DIGEST)")
    parser.add_argument("--map", metavar="FILE", help="where the private map goes (default: the agent's "
                        "state directory)")
    parser.add_argument("--verify-on", metavar="DSN", help="replay on this fresh server and compare plans "
                        "(mysql://USER[:PASS]@HOST:PORT)")
    parser.add_argument("--security", action="store_true", help="a bug with security impact: the public "
                        "folder holds only the versions, --component and --description")
    parser.add_argument("--component", metavar="TEXT", help="with --security: the affected component")
    parser.add_argument("--description", metavar="TEXT", help="with --security: what happens")
    add_identity_option(parser, required=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from report.share import leaks, package, source, verify
    from report.share.errors import ShareError

    if args.security and not (args.component and args.description):
        return fail("--security needs --component TEXT and --description TEXT", exitcodes.USAGE)
    if (args.component or args.description) and not args.security:
        return fail("--component and --description go with --security", exitcodes.USAGE)
    target = None
    if args.verify_on:
        try:
            target = verify.parse_dsn(args.verify_on)
        except verify.VerifyError as exc:
            return fail(str(exc), exitcodes.USAGE)
    query_text = None
    if args.query:
        query_text = _read_query(args.query)
        if isinstance(query_text, int):
            return query_text
    try:
        identities = identities_from(args)
    except AgeError as exc:
        return fail(str(exc), age_exit_code(exc))
    except OSError as exc:
        return fail(f"cannot read the identity file: {os_error_text(exc)}", exitcodes.KEY_ERROR)
    bundle = _open(args.bundle, identities)
    if isinstance(bundle, int):
        return bundle
    try:
        data = source.load(bundle)
    except source.NoShareData as exc:
        return fail(str(exc), exitcodes.NO_SHARE_DATA)
    except ShareError as exc:
        return fail(f"{bundle.label}: {exc}", exitcodes.BAD_BUNDLE)
    key = share_key()
    if isinstance(key, int):
        return key
    try:
        built = package.build(data, key, digest=args.digest, query=query_text)
    except package.Refused as exc:
        return fail(str(exc), exitcodes.USAGE)
    except source.NoShareData as exc:
        return fail(str(exc), exitcodes.NO_SHARE_DATA)
    except ShareError as exc:
        return fail(f"the share data cannot be made into a package: {exc}", exitcodes.BAD_BUNDLE)
    label = built.private_map.get("statement") or "query"
    output = Path(args.output or f"mydiag-share-{str(label)[:16]}")
    map_path = Path(args.map) if args.map else _default_map(str(label))
    problem = _check_places(output, map_path)
    if problem:
        return problem
    people = leaks.bundle_needles(bundle)
    scan = built.scan(people)
    if not scan.clean:
        return fail(f"refused: the package would hold customer data: {scan.summary()}; nothing was written",
                    exitcodes.LEAK_FOUND)
    comparison = None
    if target is not None:
        try:
            comparison = verify.replay(built.repro_sql, built.expected, target)
        except verify.VerifyError as exc:
            code = {"access": exitcodes.ACCESS_DENIED, "usage": exitcodes.USAGE}.get(exc.kind,
                                                                                    exitcodes.CANNOT_CONNECT)
            return fail(str(exc), code)
        built.verified(comparison)
    public: Dict[str, bytes] = built.files
    private_repro: Optional[Path] = None
    if args.security:
        public = {"README.md": package.security_readme(built.flavor, built.version, args.component,
                                                       args.description)}
        private_repro = map_path.with_name(map_path.name.replace(".json", "") + "-repro")
    scan = built.scan(people, files=public)
    if not scan.clean:
        return fail(f"refused: the package would hold customer data: {scan.summary()}; nothing was written",
                    exitcodes.LEAK_FOUND)
    written = _write_map(map_path, built.private_map)
    if written:
        return written
    if private_repro is not None:
        written = _write_folder(private_repro, built.files)
        if written:
            return written
    written = _write_folder(output, public)
    if written:
        return written
    print(f"package: {printable(str(output))} ({', '.join(sorted(public))})")
    if private_repro is not None:
        print(f"private repro: {printable(str(private_repro))}")
    print(f"private map: {printable(str(map_path))} (never publish it)")
    print(f"leak scan: clean ({scan.needles} originals looked for in every encoding"
          + (f"; {scan.unscanned} too short or generic to look for" if scan.unscanned else "") + ")")
    for note in built.notes:
        print(f"note: {printable(note)}")
    if comparison is not None:
        verdict = "reproduced" if comparison.same else "NOT reproduced"
        print(f"plan on {printable(comparison.target)}: {verdict}")
        for line in comparison.lines:
            print(f"  {printable(line)}")
        if not comparison.same:
            return exitcodes.PLAN_DIFFERS
    elif built.expected is None:
        print("plan: the bundle holds no EXPLAIN of this statement")
    return exitcodes.OK


def _read_query(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_QUERY_FILE + 1)
    except OSError as exc:
        return fail(f"cannot read the --query file {printable(path)}: {os_error_text(exc)}", exitcodes.USAGE)
    if len(data) > MAX_QUERY_FILE:
        return fail(f"the --query file is over {MAX_QUERY_FILE} bytes; give one SELECT", exitcodes.USAGE)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return fail("the --query file is not UTF-8 text", exitcodes.USAGE)


def _open(path: str, identities: List[str]) -> Any:
    from report.model import Bundle, ReportError
    try:
        return Bundle.open(path, identities)
    except ReportError as exc:
        return fail(str(exc), exitcodes.BAD_BUNDLE)
    except AgeError as exc:
        return fail(f"{printable(path)}: {exc}", age_exit_code(exc))


def share_key() -> Any:
    """The share key of this host (made once, mode 0600): the same names map to the same
    pseudonyms in every package made here."""
    from agent.home import home
    path = home() / KEY_NAME
    try:
        if path.exists():
            data = path.read_bytes()
            if len(data) != 32:
                return fail(f"{printable(str(path))} is not a share key (32 bytes); move it away "
                            "to make a new one", exitcodes.KEY_ERROR)
            return data
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key
    except OSError as exc:
        return fail(f"cannot keep the share key in {printable(str(path))}: {os_error_text(exc)}",
                    exitcodes.KEY_ERROR)


def _default_map(label: str) -> Path:
    from agent.home import home
    return home() / MAPS / f"{label[:32]}-{secrets.token_hex(4)}.map.json"


def _check_places(output: Path, map_path: Path) -> int:
    if output.exists() or output.is_symlink():
        if not output.is_dir() or output.is_symlink():
            return fail(f"--output {printable(str(output))} exists and is not a folder",
                        exitcodes.OUTPUT_ERROR)
        with contextlib.suppress(OSError):
            if any(output.iterdir()):
                return fail(f"--output {printable(str(output))} exists and is not empty: name a new folder",
                            exitcodes.OUTPUT_ERROR)
    resolved_map = map_path.expanduser().resolve()
    resolved_out = output.expanduser().resolve()
    if resolved_map == resolved_out or resolved_out in resolved_map.parents:
        return fail("--map must not be inside the package folder: the map stays private", exitcodes.USAGE)
    if map_path.exists() and map_path.is_dir():
        return fail(f"--map {printable(str(map_path))} is a folder; name the file to write", exitcodes.USAGE)
    return exitcodes.OK


def _write_map(path: Path, private_map: Dict[str, Any]) -> int:
    text = json.dumps(private_map, indent=2, sort_keys=True, default=str) + "\n"
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        fd = os.open(str(partial), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        partial.replace(path)
        os.chmod(path, 0o600)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        return fail(f"cannot write the map {printable(str(path))}: {os_error_text(exc)}",
                    exitcodes.OUTPUT_ERROR)
    return exitcodes.OK


def _write_folder(folder: Path, files: Dict[str, bytes]) -> int:
    """The folder whole or not at all: written beside it, then renamed into place."""
    staging = None
    try:
        parent = folder.expanduser().absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=str(parent)))
        for name, data in files.items():
            (staging / name).write_bytes(data)
        os.chmod(staging, 0o755)
        if folder.is_dir():
            folder.rmdir()  # checked empty before anything was built
        staging.rename(folder)
    except OSError as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        return fail(f"cannot write {printable(str(folder))}: {os_error_text(exc)}", exitcodes.OUTPUT_ERROR)
    return exitcodes.OK
