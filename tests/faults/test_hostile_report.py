"""`mydiag report` on hostile and broken bundles, through the real command line.

Every shape of tests/faults/test_hostile_bundles.py (bombs, 2 million members, malformed
manifests of every kind, bad member paths, a second manifest) and bundles whose members
are type-confused (a list where an object belongs, NaN and 1e999 in the status samples,
NUL bytes, 2 MB lines and escape sequences in the error log): the report exits 7 with one
line, or 0 with no rule error, in bounded time and memory; text output never carries a raw
control character from the bundle; --json is valid JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.faults.test_hostile_bundles import (
    BAD_PATHS,
    FILE,
    GIB,
    MALFORMED,
    good_members,
    many_headers,
    seal,
    write_plain,
)
from tests.serverkit import ROOT

#: Peak memory and wall time one `mydiag report` may take on any bundle.
MAX_RSS_MIB = 300
MAX_SECONDS = 20
#: Raw control characters a hostile bundle could send to the terminal.
RAW_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


# -- running the command --------------------------------------------------------------------


class Run:
    def __init__(self, code: int, out: str, err: str, seconds: float, peak_mib: float) -> None:
        self.returncode, self.stdout, self.stderr = code, out, err
        self.seconds, self.peak_mib = seconds, peak_mib


def report(*args: str, timeout: float = 60) -> Run:
    """`mydiag report ARGS` in a child of this process, measured with os.wait4 (peak RSS)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "report", *args], cwd=ROOT,
                                stdout=out, stderr=err)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, out.read().decode("utf-8", "replace"),
                   err.read().decode("utf-8", "replace"), seconds, usage.ru_maxrss / 1024)


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def assert_handled(done: Run, what: str, as_json: bool = False, refused: Tuple[int, ...] = (7,)) -> None:
    """Exit 7 (or another of `refused`) with one line, or 0 with no rule error; bounded;
    nothing raw on the terminal."""
    where = (what, done.returncode, done.stderr[-2000:])
    assert done.returncode in (0,) + refused, where
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, where
    assert done.seconds < MAX_SECONDS, (what, done.seconds)
    assert done.peak_mib < MAX_RSS_MIB, (what, done.peak_mib)
    assert not RAW_CONTROLS.search(done.stderr), (what, done.stderr)
    if done.returncode in refused:
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mydiag: "), where
        assert done.stdout == "", (what, done.stdout[:500])
        return
    if as_json:
        findings = _strict_json(done.stdout)
        assert isinstance(findings, (list, dict)), what
    else:
        assert not RAW_CONTROLS.search(done.stdout), (what, RAW_CONTROLS.search(done.stdout))
        assert "rule error" not in done.stdout, (what, [line for line in done.stdout.splitlines()
                                                        if "rule error" in line])
        assert re.search(r"^\d+ finding\(s\) from \d+ rules", done.stdout, re.M), (what, done.stdout[-500:])


def assert_report_survives(path: Path, what: str) -> Tuple[Run, Run]:
    text = report(str(path))
    assert_handled(text, what)
    as_json = report(str(path), "--json")
    assert_handled(as_json, what, as_json=True)
    assert as_json.returncode == text.returncode, what
    return text, as_json


# -- bundles --------------------------------------------------------------------------------

_A = [("os/a.txt", b"a")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile-report")


@pytest.fixture(scope="module")
def identity() -> Tuple[str, str]:
    from bundle.age import generate_identity

    return generate_identity()


def test_bombs_and_floods_are_refused_at_once_in_bounded_memory(folder, identity):
    """The three bombs of test_hostile_bundles, a compression bomb under the per-member limit,
    and the same sealed (a sealed file is read as a stream: its size must still bound it)."""
    made = {
        "manifest of 1 GiB": write_plain(folder / "manifest.tar.zst", [("manifest.json", GIB, FILE)]),
        "member of 32 GiB": write_plain(folder / "member.tar.zst",
                                        good_members([]) + [("os/zeros.bin", 32 * GIB, FILE)]),
        "2 million members": write_plain(folder / "members.tar.zst", good_members([]),
                                         raw_tail=many_headers(2_000_000)),
        "compression bomb": write_plain(folder / "zip.tar.zst", good_members(_A) + [
            (f"mysql/z{i}.json", 1 * GIB, FILE) for i in range(4)]),
        "bomb in JSON members": write_plain(folder / "jzip.tar.zst", good_members(_A) + [
            ("mysql/global_variables.json", 200 << 20, FILE)]),
    }
    made["sealed compression bomb"] = seal(made["compression bomb"], identity[1])
    key = folder / "key.txt"
    key.write_text(identity[0] + "\n")
    words = {"manifest of 1 GiB": "manifest.json is 1073741824 bytes",
             "member of 32 GiB": "34359738368", "2 million members": "more than 10000 members",
             "compression bomb": "compression bomb", "bomb in JSON members": "compression bomb",
             "sealed compression bomb": "compression bomb"}
    for what, path in made.items():
        extra = ["--identity", str(key)] if path.name.endswith(".age") else []
        done = report(str(path), *extra)
        assert_handled(done, what)
        assert done.returncode == 7 and words[what] in done.stderr, (what, done.stderr)
        assert str(path) in done.stderr, "the message names the file"


def test_big_members_under_every_limit_are_left_out_and_said_so(folder):
    """Incompressible members that pass the bundle limits but would hold 120 MiB in memory:
    the report keeps what fits its budget and says which member it left out."""
    members = good_members(_A + [(f"os/r{i}.bin", os.urandom(30 << 20)) for i in range(4)]
                           + [("mysql/global_status.jsonl", b"{}\n")])
    path = write_plain(folder / "big.tar.zst", members)
    text, _ = assert_report_survives(path, "120 MiB of members")
    assert text.returncode == 0


@pytest.mark.parametrize("what,body,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_manifest_is_not_a_readable_bundle(folder, what, body, words):
    path = write_plain(folder / f"m-{abs(hash(what))}.tar.zst", [("manifest.json", body, FILE),
                                                                ("os/a.txt", b"a", FILE)])
    done = report(str(path))
    assert_handled(done, what)
    assert done.returncode == 7 and "manifest.json is not valid" in done.stderr, (what, done.stderr)
    for word in words:
        assert word in done.stderr, (what, word, done.stderr)


@pytest.mark.parametrize("what,extra,words,fmt", BAD_PATHS, ids=[b[0] for b in BAD_PATHS])
def test_a_member_path_that_breaks_the_format_is_not_a_readable_bundle(folder, what, extra, words, fmt):
    path = write_plain(folder / f"p-{abs(hash(what))}.tar.zst", good_members(_A) + extra, fmt=fmt)
    done = report(str(path), "--json")
    assert_handled(done, what, as_json=True)
    # A link is readable (verify then fails its check): the report never follows it.
    assert done.returncode == (0 if "not a regular file" in words[0] else 7), (what, done.stdout[:300])


def test_files_that_are_no_bundle_at_all(folder):
    good = write_plain(folder / "good.tar.zst", good_members(_A))
    cases = {"random bytes": os.urandom(4096), "empty": b"", "cut short": good.read_bytes()[:-30],
             "cut in half": good.read_bytes()[: good.stat().st_size // 2],
             "a text file": b"hello\n", "age header only": b"age-encryption.org/v1\n"}
    for what, data in cases.items():
        path = folder / f"n-{abs(hash(what))}.tar.zst"
        path.write_bytes(data)
        done = report(str(path), "--identity", str(_key(folder)))
        assert_handled(done, what, refused=(7, 9))
        assert done.returncode in (7, 9), (what, done.returncode, done.stderr)
    assert report(str(folder / "nothing-here.tar.zst")).returncode == 7
    done = report(str(folder))
    assert done.returncode == 7 and "is a folder" in done.stderr


def _key(folder: Path) -> Path:
    from bundle.age import generate_identity

    path = folder / "other-key.txt"
    if not path.exists():
        path.write_text(generate_identity()[0] + "\n")
    return path


# -- type-confused members ------------------------------------------------------------------

ESCAPES = "\x1b[2J\x1b]0;owned\x07\rover\x9b"


def _status_rows() -> List[bytes]:
    """Status samples whose values are every wrong kind, and lines that are not rows."""
    good = {"Uptime": 100, "Questions": 1000, "Threads_created": 5, "Connections": 10}
    rows = [json.dumps({"ts": f"2026-01-02T03:04:{5 + i:02d}Z", "sample": i, "status": dict(good)})
            for i in range(3)]
    weird: List[str] = [
        '{"ts": "2026-01-02T03:04:10Z", "status": {"Uptime": NaN, "Questions": 1e999, '
        '"Connections": -1e999}}',
        '{"ts": "2026-01-02T03:04:11Z", "status": {"Uptime": [1], "Questions": "many", '
        '"Threads_created": {}}}',
        '{"ts": "2026-01-02T03:04:12Z", "status": {"Uptime": "' + "9" * 5000 + '", "Questions": '
        + "9" * 5000 + "}}",
        '{"ts": "2026-01-02T03:04:13Z", "status": ["Uptime", 1]}',
        '{"ts": "9999-12-31T23:59:59+14:00", "status": {"Uptime": 1}}',
        '{"ts": "0001-01-01T00:00:00-23:59", "status": {"Uptime": 2}}',
        '{"ts": 5, "status": {"Uptime": 3}}', '{"ts": ["x"], "status": "Uptime"}',
        '"a string row"', "[1, 2, 3]", "NaN", "1e999", "null", "{", "\x00\x01\x02",
        '{"ts": "2026-01-02T03:04:14Z", "status": {"Uptime": true, "Questions": null}}',
    ]
    return [r.encode() for r in rows + weird]


def _error_log() -> bytes:
    lines = [b"2026-01-02  3:04:05 0 [Note] Starting MariaDB 10.11.6 \x00 with NUL \x00",
             b"2026-01-02  3:04:06 0 [ERROR] " + ESCAPES.encode() + b" InnoDB: Assertion failure",
             b"2026-01-02  3:04:07 0 [ERROR] mysqld got signal 11 " + b"A" * (2 << 20),
             b"2026-01-02  3:04:08 0 [Warning] Aborted connection 5 to db: 'x' \xff\xfe not UTF-8",
             b"2026-01-02  3:04:09 0 [ERROR] InnoDB: Deadlock found " + b"\x1b[31m" * 1000,
             b"\r" * 5000, b"2026-01-02  3:04:10 0 [ERROR] Out of memory " + b"\x07" * 100]
    return b"\n".join(lines) + b"\n"


def confused_members(kind: Any) -> List[Tuple[str, bytes]]:
    """The members rules read, each holding `kind` (a JSON text) instead of its shape, and
    the named confusions of the report: variables a list, status rows of every wrong kind,
    replica status a string, accounts a number, an error log of NULs, long lines, escapes."""
    members = {path: kind for path in member_paths()}
    members.update({
        "mysql/global_variables.json": b'["version", "10.11.6", {"max_connections": NaN}]',
        "mysql/global_status.jsonl": b"\n".join(_status_rows()) + b"\n",
        "mysql/replication/replica_status.jsonl": b'"Slave_IO_Running: No"',
        "mysql/accounts.json": b"42",
        "logs/error.log": _error_log(),
    })
    return sorted(members.items())


def member_paths() -> List[str]:
    """Every member path the report's code names (rules, upgrade checks, model, diff, html)."""
    found = set()
    for source in (ROOT / "report").rglob("*.py"):
        found.update(re.findall(r"[\"']((?:mysql|os|logs|config)/[A-Za-z0-9_./-]+\.(?:json|jsonl|log|txt|cnf))"
                                r"[\"']", source.read_text(encoding="utf-8")))
    from report import catalog

    for rule in catalog.rules():
        found.update(rule.needs)
    return sorted(p for p in found if "{" not in p and ".." not in p)


#: JSON texts that are each member's wrong shape.
KINDS: Dict[str, bytes] = {
    "a list": b"[1, \"two\", [3], {\"four\": 4}]", "a string": b"\"ON\"", "a number": b"12345",
    "null": b"null", "NaN": b"NaN", "1e999": b"1e999", "an empty object": b"{}",
    "objects of lists": b'{"rows": [[1]], "channels": "x", "digests": {"a": 1}, "total": [], "disks": 5,'
                        b' "counters": "c", "rates": [1], "limits": null, "cgroup": "x", "status": [1]}',
    "lists of objects of strings": b'[{"name": "\\u001b[2J", "value": "\\ud800", "user": 5, "host": []}]',
    "deep nesting": b"[" * 990 + b"]" * 990, "deeper nesting": b"[" * 100_000 + b"]" * 100_000,
    "not UTF-8": b"\xff\xfe{\"a\": 1}", "lone surrogates": b'{"\\ud800": "\\udfff", "x\\udc80": ["\\ud83d"]}',
    "escapes": json.dumps({"Value": ESCAPES, "name": ESCAPES, ESCAPES: ESCAPES}).encode(),
    "huge digits": b'{"a": ' + b"9" * 100_000 + b"}",
}


def test_members_that_would_parse_into_millions_of_objects(folder):
    """A few MiB of `[{},{},…]` in the members the rules read first: within every bundle
    limit, but millions of objects once parsed; the report reads them as unreadable."""
    flood = b"[" + b"{}," * 2_000_000 + b"{}]"
    lines = b"{}\n" * 3_000_000
    members = [("mysql/global_variables.json", flood), ("mysql/accounts.json", flood),
               ("mysql/global_status.jsonl", lines), ("os/vmstat.jsonl", lines)]
    path = write_plain(folder / "flood.tar.zst", good_members(members))
    text, _ = assert_report_survives(path, "structure flood")
    assert text.returncode == 0, text.stderr


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
def test_type_confused_members_make_no_rule_fail(folder, kind):
    members = confused_members(KINDS[kind])
    path = write_plain(folder / f"c-{abs(hash(kind))}.tar.zst", good_members(members))
    text, _ = assert_report_survives(path, kind)
    assert text.returncode == 0, (kind, text.stderr)
    html = folder / f"c-{abs(hash(kind))}.html"
    for extra in (["--html", str(html)], ["--upgrade-to", "mariadb 11.4", "--json"], ["--diff", str(path)]):
        done = report(str(path), *extra)
        assert_handled(done, f"{kind} {extra[0]}", as_json=extra[0] != "--html")
        assert done.returncode == 0, (kind, extra, done.stderr)
    assert "<script" not in html.read_text().replace("<script>", "")


def test_lone_surrogates_and_escapes_in_every_text_stay_escaped(folder):
    """Surrogates and escape sequences in variables, status names and the error log."""
    variables = {"version": "10.11.6-MariaDB", "max_connections": "\ud800", ESCAPES: ESCAPES,
                 "innodb_buffer_pool_size": "\x1b[2J", "skip_name_resolve": "\udcff"}
    rows = [json.dumps({"ts": f"2026-01-02T03:04:{5 + i:02d}Z", "status": {
        "Uptime": 10 + i, "Aborted_clients\x1b[2J": i, "\ud800": i, "Connections": 1000 * i}}).encode()
        for i in range(4)]
    members = [("mysql/global_variables.json", json.dumps(variables).encode()),
               ("mysql/global_status.jsonl", b"\n".join(rows)), ("logs/error.log", _error_log())]
    path = write_plain(folder / "surrogates.tar.zst", good_members(members))
    assert_report_survives(path, "surrogates")


@pytest.fixture(scope="module")
def real_bundle(server, tmp_path_factory) -> Iterator[Path]:
    """A bundle collected from the test server, to mutate member by member."""
    out = tmp_path_factory.mktemp("real")
    done = subprocess.run([sys.executable, "-m", "agent.cli", "collect", "--defaults-file",
                           str(server.defaults_file(out)), "--samples", "3", "--interval", "1",
                           "--output", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "MYDIAG_HOME": str(out / "home")})
    assert done.returncode in (0, 3), done.stderr
    yield next(out.glob("*.tar.zst"))


def _members_of(path: Path) -> List[Tuple[str, bytes]]:
    from tests.helpers import bundle_files

    return [(name, data) for name, data in bundle_files(path).items()
            if name not in ("manifest.json", "manifest.sig")]


def _mutate(value: Any, how: str) -> Any:
    if isinstance(value, dict):
        if how == "objects become lists":
            return [_mutate(v, how) for v in value.values()]
        return {k: _mutate(v, how) for k, v in value.items()}
    if isinstance(value, list):
        return [_mutate(v, how) for v in value]
    return {"leaves become strings": "NaN", "leaves become lists": [value],
            "leaves become huge": 1e308, "leaves become negative": -1,
            "leaves become escapes": ESCAPES + "\ud800", "objects become lists": value,
            "leaves become null": None}[how]


MUTATIONS = ["leaves become strings", "leaves become lists", "leaves become huge",
             "leaves become negative", "leaves become escapes", "objects become lists",
             "leaves become null"]


@pytest.mark.parametrize("how", MUTATIONS)
def test_a_real_bundle_with_every_value_of_the_wrong_kind(real_bundle, folder, how):
    """Each JSON member of a real bundle keeps its structure but every value is of another
    kind: the rules see real keys with hostile values."""
    mutated = []
    for name, data in _members_of(real_bundle):
        if name.endswith(".json"):
            data = json.dumps(_mutate(json.loads(data), how)).encode()
        elif name.endswith(".jsonl"):
            data = b"\n".join(json.dumps(_mutate(json.loads(line), how)).encode()
                              for line in data.splitlines() if line.strip())
        mutated.append((name, data))
    path = write_plain(folder / f"mut-{MUTATIONS.index(how)}.tar.zst", good_members(mutated))
    text, _ = assert_report_survives(path, how)
    assert text.returncode == 0, text.stderr


def test_the_real_bundle_itself_reports_cleanly(real_bundle):
    text, as_json = assert_report_survives(real_bundle, "the real bundle")
    assert text.returncode == 0
