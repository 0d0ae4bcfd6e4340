"""Sealing and unsealing under real faults: a full filesystem (a 4 MiB tmpfs) and
`mydiag seal` SIGKILLed while it writes. Nothing that looks complete may be left, and the
user gets one line, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from agent import exitcodes
from bundle import age
from tests.helpers import ROOT, mydiag

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def keys():
    return age.generate_identity()


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_sealing_onto_a_full_disk_says_so_and_leaves_nothing(tmp_path, tiny_disk, keys):
    _, recipient = keys
    plain = tmp_path / "bundle.tar.zst"
    plain.write_bytes(os.urandom(12 * MIB))
    done = mydiag("seal", str(plain), "--recipient", recipient, "--output", str(tiny_disk / "b.age"))
    assert done.returncode == exitcodes.OUTPUT_ERROR, done.stderr
    assert "no space left on the device" in _one_line(done.stderr)
    assert list(tiny_disk.iterdir()) == []
    # The disk is usable again, and a small file still seals there.
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(MIB + 7))
    done = mydiag("seal", str(small), "--recipient", recipient, "--output", str(tiny_disk / "s.age"))
    assert done.returncode == 0, done.stderr


def test_unsealing_onto_a_full_disk_says_so_and_leaves_nothing(tmp_path, tiny_disk, keys):
    identity, recipient = keys
    (tmp_path / "key.txt").write_text(identity + "\n")
    plain = tmp_path / "bundle.tar.zst"
    plain.write_bytes(os.urandom(12 * MIB))
    sealed = age.seal_file(plain, tmp_path / "bundle.tar.zst.age", [recipient])
    done = mydiag("unseal", str(sealed), "--identity", str(tmp_path / "key.txt"),
                  "--output", str(tiny_disk / "bundle.tar.zst"))
    assert done.returncode == exitcodes.OUTPUT_ERROR, done.stderr
    assert "no space left on the device" in _one_line(done.stderr)
    assert list(tiny_disk.iterdir()) == []


def test_seal_killed_while_writing_leaves_nothing_that_looks_complete(tmp_path, keys):
    identity, recipient = keys
    plain = tmp_path / "big.bin"
    with open(plain, "wb") as out:
        for _ in range(384):
            out.write(os.urandom(MIB))
    target = tmp_path / "big.bin.age"
    partial = tmp_path / ".big.bin.age.partial"
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "seal", str(plain), "--recipient", recipient],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.stat().st_size > 4 * MIB:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "seal finished before it could be killed; make the input larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists()
    # The next run replaces the leftover and gives a file the stock format opens.
    done = mydiag("seal", str(plain), "--recipient", recipient)
    assert done.returncode == 0, done.stderr
    assert not partial.exists()
    with open(target, "rb") as src, open(tmp_path / "opened", "wb") as out:
        age.decrypt(src, out, [identity])
    assert (tmp_path / "opened").stat().st_size == plain.stat().st_size
