"""Reading the end of a log: exact bounds, whole lines, and a 1 GiB file in bounded memory and time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors.logs.tail import NotRegularFile, read_tail
from tests.helpers import ROOT

GIB = 1 << 30
LIMIT = 2 << 20


def test_a_small_log_is_read_whole(tmp_path):
    log = tmp_path / "error.log"
    log.write_bytes(b"one\ntwo\n")
    tail = read_tail(str(log), LIMIT)
    assert tail.data == b"one\ntwo\n" and not tail.truncated and tail.size == 8
    assert tail.describe() == f"{log}: whole file (8 bytes)"


def test_a_cut_log_starts_at_the_next_whole_line(tmp_path):
    log = tmp_path / "error.log"
    lines = [f"line {n:04d} {'x' * n}\n".encode() for n in range(200)]
    log.write_bytes(b"".join(lines))
    tail = read_tail(str(log), 1000)
    assert len(tail.data) <= 1000 and tail.truncated
    assert b"".join(lines).endswith(tail.data)
    assert tail.data.startswith(b"line ") and tail.offset + len(tail.data) == tail.size
    assert "only the last" in tail.describe()


def test_a_fifo_is_refused_not_read(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(NotRegularFile):
            read_tail(str(fifo), LIMIT)
    finally:
        os.close(reader)


def _tail_in_child(path: Path) -> tuple:
    """(peak RSS in KiB, seconds, stdout) of a fresh interpreter tailing `path`."""
    code = ("import sys; from collectors.logs.tail import read_tail; "
            f"t = read_tail(sys.argv[1], {LIMIT}); "
            "sys.stdout.write(t.data[-80:].decode() + '|' + str(len(t.data)))")
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT,
                             stdout=subprocess.PIPE)
    out = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
        else status >> 8
    assert child.returncode == 0
    return usage.ru_maxrss, time.monotonic() - started, out


@pytest.mark.slow
def test_a_1gib_log_is_tailed_in_bounded_memory_and_time(tmp_path):
    line = b"2024-01-05 10:00:01 0 [Note] InnoDB: Buffer pool(s) load completed, padding padding\n"
    chunk = line * ((1 << 20) // len(line))
    big = tmp_path / "big.log"
    try:
        with open(big, "wb") as handle:
            while handle.tell() < GIB:
                handle.write(chunk)
            handle.write(b"2024-01-05 10:00:02 0 [ERROR] the very last line\n")
        small = tmp_path / "small.log"
        small.write_bytes(line * 10)
        base_rss, _, _ = _tail_in_child(small)
        rss, seconds, out = _tail_in_child(big)
        print(f"1 GiB tail: peak RSS {rss} KiB (baseline {base_rss} KiB), {seconds:.2f}s")
        assert big.stat().st_size > GIB and big.stat().st_blocks * 512 > GIB  # real data, not sparse
        last, size = out.rsplit("|", 1)
        assert last.endswith("the very last line\n") and 0 < int(size) <= LIMIT
        # Bounded: the 2 MiB read plus its slice, nowhere near the 1 GiB file.
        assert rss - base_rss < 3 * LIMIT // 1024 + 8 * 1024, (rss, base_rss)
        assert seconds < 5, seconds
    finally:
        big.unlink()  # a gigabyte is not left behind in the temp folder


@pytest.mark.parametrize("stamp", ["2026-12-02 {h:2d}:02:44 0 [Note] x",
                                   "2026-12-02T{h:02d}:02:44.1Z 0 [Note] x",
                                   "261202 {h:2d}:02:44 [Note] x"])
def test_a_cut_error_log_starts_at_its_first_entry_at_any_hour(stamp):
    from collectors.logs.error_log import _from_first_entry
    for hour in range(24):
        line = stamp.format(h=hour).encode()
        data, dropped = _from_first_entry(b"half a line\n" + line + b"\n" + line + b"\n")
        assert (data, dropped) == (line + b"\n" + line + b"\n", 1), line
