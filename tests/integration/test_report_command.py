"""`mydiag report` at the command line on a bundle collected from a real MariaDB: text and
JSON findings, `inspect`'s headline, the sealed bundle with the right, no, a wrong or a bad
identity, a damaged seal, and every argument error with its documented exit code."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from tests.helpers import mydiag

FIELDS = ("rule", "severity", "confidence", "title", "evidence", "advice", "risk")


@pytest.fixture(scope="module")
def collected(server, tmp_path_factory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("report")
    done = mydiag("collect", "--defaults-file", str(server.defaults_file(out)), "--samples", "3",
                  "--interval", "1", "--output", str(out), timeout=180,
                  env={**os.environ, "MYDIAG_HOME": str(out / "home")})
    assert done.returncode in (0, 3), done.stderr
    yield next(out.glob("*.tar.zst"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Tuple[Path, Path, str]:
    """(the identity file, another identity's file, the recipient of the first)."""
    from bundle.age import generate_identity

    folder = tmp_path_factory.mktemp("keys")
    mine, recipient = generate_identity()
    other, _ = generate_identity()
    right, wrong = folder / "mine.txt", folder / "other.txt"
    right.write_text(f"# test identity\n{mine}\n")
    wrong.write_text(f"{other}\n")
    return right, wrong, recipient


@pytest.fixture(scope="module")
def sealed(collected, keys, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("sealed") / (collected.name + ".age")
    done = mydiag("seal", str(collected), "--recipient", keys[2], "--output", str(target))
    assert done.returncode == 0, done.stderr
    return target


def _one_line_error(done: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mydiag: ") and "Traceback" not in done.stderr, lines
    for word in words:
        assert word in done.stderr, (word, done.stderr)


# -- a real bundle --------------------------------------------------------------------------


def test_report_text_names_the_server_the_window_and_every_rule_judged(collected):
    done = mydiag("report", str(collected))
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert "MariaDB" in first and "window of" in first and "3 samples" in first, first
    assert "rule error" not in done.stdout
    assert "finding(s) from" in done.stdout.strip().splitlines()[-1]


def test_report_json_findings_carry_every_field(collected):
    done = mydiag("report", str(collected), "--json")
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)
    assert isinstance(findings, list) and findings, "a default test server has findings (no root password)"
    for finding in findings:
        for field in FIELDS:
            assert finding.get(field) not in (None, ""), (finding.get("rule"), field)
        assert finding["severity"] in ("info", "notice", "warning", "error", "critical")
        assert finding["confidence"] in ("low", "medium", "high")
        assert all(isinstance(e, dict) and e.get("member") for e in finding["evidence"])


def test_inspect_ends_with_the_headline_line(collected):
    done = mydiag("inspect", str(collected), env={**os.environ, "COLUMNS": "1000"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith(("headline findings (", "findings: none"))]
    assert f"`mydiag report {collected}`" in lines[at], lines[at]
    report = json.loads(mydiag("report", str(collected), "--json").stdout)
    worst = [f for f in report if f["severity"] in ("warning", "error", "critical")][:5]
    assert [line.split()[1] for line in lines[at + 1:]] == [f["rule"] for f in worst], lines[at:]


def test_html_report_is_written_whole(collected, tmp_path):
    target = tmp_path / "r.html"
    done = mydiag("report", str(collected), "--html", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_text().lstrip().lower().startswith("<!doctype html")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


# -- sealed bundles -------------------------------------------------------------------------


def test_sealed_bundle_with_the_right_identity(sealed, keys, collected):
    done = mydiag("report", str(sealed), "--identity", str(keys[0]), "--json")
    assert done.returncode == 0, done.stderr
    plain = mydiag("report", str(collected), "--json")
    assert [f["rule"] for f in json.loads(done.stdout)] == [f["rule"] for f in json.loads(plain.stdout)]


def test_sealed_bundle_without_an_identity_says_to_give_one(sealed):
    _one_line_error(mydiag("report", str(sealed)), 7, "sealed", "--identity")


def test_sealed_bundle_with_a_wrong_identity(sealed, keys):
    _one_line_error(mydiag("report", str(sealed), "--identity", str(keys[1])), 8)


def test_a_damaged_seal_exits_9(sealed, keys, tmp_path):
    data = sealed.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    cases = {"truncated": data[: len(data) - 100], "cut in the payload": data[: len(data) // 2],
             "a byte flipped": bytes(flipped)}
    for what, body in cases.items():
        path = tmp_path / f"{what}.tar.zst.age"
        path.write_bytes(body)
        done = mydiag("report", str(path), "--identity", str(keys[0]))
        _one_line_error(done, 9)
        assert done.stdout == "", what


def test_a_bad_identity_file_exits_12(sealed, tmp_path):
    cases = {"not a key": "hello\n", "a PEM key": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
             "a broken key": "AGE-SECRET-KEY-1QQQQ\n", "binary": "\x00\xff"}
    for what, text in cases.items():
        path = tmp_path / f"{len(what)}-{what.replace(' ', '_')}.txt"
        path.write_text(text, errors="surrogateescape")
        _one_line_error(mydiag("report", str(sealed), "--identity", str(path)), 12)
    _one_line_error(mydiag("report", str(sealed), "--identity", str(tmp_path / "missing.txt")), 12)


# -- arguments ------------------------------------------------------------------------------


def test_explain_a_known_rule_prints_its_page():
    done = mydiag("report", "--explain", "CONN-01")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CONN-01: ")
    for section in ("**Why it matters**", "**Example**", "**Fix**", "Advice: ", "Risk: ", "Verify: "):
        assert section in done.stdout, section


def test_explain_an_unknown_rule_exits_2():
    _one_line_error(mydiag("report", "--explain", "NOPE-99\x1b[2J"), 2, "no rule", "\\x1b")


def test_rules_lists_every_rule():
    done = mydiag("report", "--rules")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) >= 60
    assert all(len(line.split("\t")) == 4 for line in lines)


def test_no_bundle_exits_2():
    _one_line_error(mydiag("report"), 2, "name a bundle")


def test_html_to_a_place_it_cannot_write_exits_6_and_leaves_nothing(collected, tmp_path):
    missing = tmp_path / "no-such-folder" / "r.html"
    _one_line_error(mydiag("report", str(collected), "--html", str(missing)), 6, "cannot write")
    assert not missing.parent.exists()
    _one_line_error(mydiag("report", str(collected), "--html", str(tmp_path)), 6, "folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through a mode of 0500: a read-only file system then
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)], check=True)
    else:
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        _one_line_error(mydiag("report", str(collected), "--html", str(locked / "r.html")), 6, "cannot write")
        assert list(locked.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(locked)], check=False)
        else:
            locked.chmod(stat.S_IRWXU)


def test_upgrade_to_garbage_exits_2(collected):
    for target in ("garbage", "mysql 99", "", "mariadb 11.4\x1b[2J"):
        done = mydiag("report", str(collected), "--upgrade-to", target)
        if target == "":
            assert done.returncode == 0, done.stderr  # an empty option is no upgrade check
            continue
        _one_line_error(done, 2)


def test_upgrade_to_another_flavor_exits_2(collected):
    _one_line_error(mydiag("report", str(collected), "--upgrade-to", "mysql 8.4"), 2)


def test_upgrade_to_a_known_target_adds_the_checks(collected):
    done = mydiag("report", str(collected), "--upgrade-to", "mariadb 11.4", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert set(body) == {"report", "findings", "upgrade"} and body["upgrade"]["target"] == "mariadb 11.4"


def test_diff_with_an_unreadable_other_exits_7(collected, tmp_path):
    other = tmp_path / "other.tar.zst"
    other.write_bytes(os.urandom(2048))
    _one_line_error(mydiag("report", str(collected), "--diff", str(other)), 7, str(other))
    _one_line_error(mydiag("report", str(collected), "--diff", str(tmp_path / "gone.tar.zst")), 7)


def test_diff_of_a_bundle_with_itself(collected):
    done = mydiag("report", str(collected), "--diff", str(collected))
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), dict)
