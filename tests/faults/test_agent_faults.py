"""The agent's faults, done for real: SIGKILL at random moments while it writes bundles and
uploads them, a disk that is nearly full, a disk that fills up during a capture."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from agent.daemon.spool import is_bundle_name
from tests.agentkit import SupportServer, agent, journal, read_bundle, status, wait_for, write_config

pytestmark = pytest.mark.mysql

CAPTURED = re.compile(r"captured (\d{8}/\S+) ")


def _check_spool(spool: Path, identities: Optional[List[str]], seen: Dict[Tuple[str, int], bool]) -> int:
    """Everything with a finished name is a whole bundle; the journal always parses."""
    entries = journal(spool)
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    checked = 0
    for folder in ("bundles", "work"):
        for path in sorted((spool / folder).glob("*/*")):
            if not (path.is_file() and is_bundle_name(path.name)):
                continue
            key = (str(path), path.stat().st_size)
            if key not in seen:
                read_bundle(path, identities)  # raises on anything truncated or damaged
                seen[key] = True
                checked += 1
    return checked


def _captured(log: str) -> Set[str]:
    return set(CAPTURED.findall(log))


def _started(proc) -> bool:
    return f"started (pid {proc.process.pid})" in proc.log() or proc.process.poll() is not None


def _kill_repeatedly(config: Path, folder: Path, spool: Path, times: int, identities: Optional[List[str]],
                     seed: int) -> Set[str]:
    rng = random.Random(seed)
    seen: Dict[Tuple[str, int], bool] = {}
    for _ in range(times):
        proc = agent(config, folder).start()
        # Kill it at a random moment of its work, not of Python's start-up.
        wait_for(partial(_started, proc), 30, step=0.02, message="the agent started")
        time.sleep(rng.uniform(0.0, 1.8))
        proc.kill()
        _check_spool(spool, identities, seen)
    return _captured(agent(config, folder).log())


@pytest.mark.server
def test_sigkill_50_times_during_spool_writes_and_uploads_loses_and_corrupts_nothing(
        server, tmp_path):
    from tests.serverkit import Proxy

    support = SupportServer.create(tmp_path)
    support.start()
    # A slow link (30 kB/s): uploads are in flight when the kills come.
    proxy = Proxy(support.port, rate=30_000)
    ticket = support.ticket()
    folder = tmp_path / "agent"
    config = write_config(folder, server, schedule="1s", server={
        "url": proxy.url, "ticket": ticket["id"], "token": ticket["upload_token"], "backoff_max": "1s"})
    spool = folder / "spool"
    try:
        captured = _kill_repeatedly(config, folder, spool, 50, support.identity, seed=6)
        # Now let it finish: no more snapshots, and the backlog drains.
        config.write_text(config.read_text().replace('every = "1s"', 'every = "1h"'))
        final = agent(config, folder).start()
        try:
            wait_for(lambda: status(config, final.home)["running"]
                     and not status(config, final.home)["backlog"]["bundles"], 120, step=0.5,
                     message="the backlog uploaded after 50 kills")
        finally:
            final.stop()
        received = support.bundles(ticket["id"])
    finally:
        proxy.close()
        support.stop()
    entries = journal(spool)
    log = agent(config, folder).log()
    uploads = log.count("mydiag agent: uploaded ")
    # Enough finished between the kills (and was uploaded) for the kills to have hit both.
    assert len(captured) >= 10 and uploads >= 5, (len(captured), uploads)
    names = {e["file"] for e in entries}
    assert captured <= names, f"lost: {captured - names}"
    assert all(e["uploaded"] for e in entries)
    _check_spool(spool, support.identity, {})
    ids = _bundle_ids(log)
    assert set(ids) == {e["seq"] for e in entries}
    assert all(len(found) == 1 for found in ids.values()), "one bundle was stored twice"
    assert sorted(b["id"] for b in received) == sorted(i for found in ids.values() for i in found)
    assert {b["status"] for b in received} <= {"accepted", "received"}
    seq_of = {i: seq for seq, found in ids.items() for i in found}
    order = [seq_of[b["id"]] for b in received]
    assert order == sorted(order), "uploaded out of order"


UPLOADED = re.compile(r"uploaded (\d{8})/\S+ to bundle (\S+)")


def _bundle_ids(log: str) -> Dict[int, Set[str]]:
    """Spool seq -> the server bundle ids the agent was told (a re-sent bundle keeps its id)."""
    found: Dict[int, Set[str]] = {}
    for seq, bundle in UPLOADED.findall(log):
        found.setdefault(int(seq), set()).add(bundle)
    return found


def test_sigkill_during_spool_writes_without_a_server_loses_nothing(server, tmp_path):
    config = write_config(tmp_path, server, schedule="1s")
    spool = tmp_path / "spool"
    captured = _kill_repeatedly(config, tmp_path, spool, 10, None, seed=9)
    assert captured and captured <= {e["file"] for e in journal(spool)}


def _fill(path: Path, leave: int) -> None:
    """Fill the filesystem holding `path` until `leave` bytes remain free."""
    stats = os.statvfs(path.parent)
    size = max(stats.f_bavail * stats.f_frsize - leave, 0)
    with open(path, "wb") as handle:
        handle.truncate(0)
        block = b"\0" * (1 << 16)
        while size > 0:
            written = handle.write(block[:min(len(block), size)])
            size -= written
        handle.flush()
        os.fsync(handle.fileno())


def test_a_nearly_full_disk_stops_collecting_says_why_and_keeps_what_it_has(
        server, tmp_path, tiny_disk):
    spool = tiny_disk / "spool"
    config = write_config(tmp_path, server, schedule="1s", spool=spool, min_free_pct=20)
    filler = tiny_disk / "filler"
    proc = agent(config, tmp_path).start()
    try:
        first = wait_for(lambda: journal(spool), 30, message="a first bundle")[0]
        # 20% of 4 MiB must stay free; leave room above that for two or three more captures.
        _fill(filler, int(0.2 * 4 * 1024 * 1024 + 2.5 * first["bytes"]))
        wait_for(lambda: "not collecting" in proc.log(), 60, step=0.2, message="collection stopped")
        kept = journal(spool)
        shown = status(config, proc.home)
        time.sleep(2.5)
        assert len(journal(spool)) == len(kept), "it went on collecting"
        assert proc.process.poll() is None, proc.log()
        filler.unlink()  # someone frees space: the agent resumes by itself
        wait_for(lambda: len(journal(spool)) > len(kept), 20, step=0.2, message="collection resumed")
        assert "collecting again" in proc.log()
    finally:
        proc.stop()
    assert kept, proc.log()
    why = shown["spool"]["paused"]
    assert why and "min_free_pct 20%" in why and "are kept" in why
    assert not shown["spool"]["collecting"]
    _check_spool(spool, None, {})
    line = next(x for x in proc.log().splitlines() if "not collecting" in x)
    assert "would drop below min_free_pct 20%" in line


def test_a_disk_that_fills_up_during_a_capture_stops_it_cleanly(server, tmp_path, tiny_disk):
    spool = tiny_disk / "spool"
    config = write_config(tmp_path, server, schedule="1s", spool=spool, min_free_pct=0)
    proc = agent(config, tmp_path).start()
    filler = tiny_disk / "filler"
    try:
        wait_for(lambda: journal(spool), 30, message="a first bundle")
        known = {p.name for p in (spool / "work").iterdir()}

        def fill_when_the_next_capture_starts() -> None:
            wait_for(lambda: {p.name for p in (spool / "work").iterdir()} - known, 10, step=0.005,
                     message="the next capture")
            try:
                with open(filler, "wb", buffering=0) as handle:
                    while True:
                        handle.write(b"\0" * (1 << 16))
            except OSError:
                pass  # full

        filling = threading.Thread(target=fill_when_the_next_capture_starts, daemon=True)
        filling.start()
        wait_for(lambda: "no space left" in proc.log(), 30, step=0.1, message="the capture stopped")
        filling.join(10)
        kept = journal(spool)
        assert proc.process.poll() is None, proc.log()
        filler.unlink()
        wait_for(lambda: len(journal(spool)) > len(kept), 20, step=0.2, message="collection resumed")
    finally:
        proc.stop()
    line = next(x for x in proc.log().splitlines() if "no space left" in x)
    assert "stopped collecting: no space left on the device holding the spool" in line
    assert "bundle(s) already there are kept" in line
    assert "Traceback" not in proc.log()
    _check_spool(spool, None, {})
    assert not [p for p in spool.rglob("*") if p.name.endswith(".partial")]
