"""A program on the host whose command line looks like it holds a secret costs its arguments,
not the bundle: `mydiag collect` finishes, the process is in the table, the value is not."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import bundle_files, collect_json

pytestmark = pytest.mark.mysql


@pytest.fixture()
def odd_program():
    """A real process, large enough to rank by RSS, given a generated value on its command line
    beside a word the final lint reads as a secret's (no option the redaction rules know)."""
    token = secrets.token_urlsafe(18) + "Z9"
    code = "import time; kept = b'x' * (900 << 20); time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code, "--keyring", "/etc/app", "--session", token])
    time.sleep(1.5)  # the 900 MiB are written before the collection looks
    yield proc, token
    proc.kill()
    proc.wait()


def test_the_bundle_is_written_and_the_odd_argument_masked(server, odd_program, tmp_path: Path):
    proc, token = odd_program
    defaults = server.defaults_file(tmp_path)
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path),
                                 "--profile", "quick", "--samples", "1", "--yes")
    assert done.returncode in (0, 3), done.stderr
    files = bundle_files(Path(summary["bundle"]))
    assert not any(token.encode() in data for data in files.values())
    rows = [json.loads(line) for line in files["os/processes.jsonl"].splitlines()]
    mine = [r for r in rows if r["pid"] == proc.pid]
    assert mine, "the program ranks by RSS and must be in the table"
    assert all(r["cmdline_masked"] for r in mine)
    assert mine[0]["cmdline"][:2] == [sys.executable, "-c"] and "--keyring" in mine[0]["cmdline"]
    assert "<redacted>" in mine[0]["cmdline"]
