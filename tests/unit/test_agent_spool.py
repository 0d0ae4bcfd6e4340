"""The spool on a real filesystem: what a crash can leave behind, and what recovery does with it."""

from __future__ import annotations

import json
import os

from agent.daemon.spool import Spool


def _capture(spool: Spool, size: int = 1000, name: str = "mydiag-db1-20261126T120000Z.tar.zst"):
    seq, folder = spool.begin()
    bundle = folder / name
    bundle.write_bytes(os.urandom(size))
    return seq, bundle


def test_commit_moves_the_bundle_and_records_it_in_order(tmp_path):
    spool = Spool(tmp_path, 1 << 20, 0).open()
    for _ in range(3):
        seq, bundle = _capture(spool)
        spool.commit(seq, bundle, "schedule", "quick")
    files = [e.file for e in spool.pending()]
    assert files == [f"0000000{n}/mydiag-db1-20261126T120000Z.tar.zst" for n in (1, 2, 3)]
    assert not list(spool.work_dir.iterdir())
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert [e["seq"] for e in journal["entries"]] == [1, 2, 3]
    assert oct(os.stat(tmp_path / "journal.json").st_mode & 0o777) == "0o600"


def test_recovery_keeps_what_finished_and_drops_what_did_not(tmp_path):
    spool = Spool(tmp_path, 1 << 20, 0).open()
    seq, bundle = _capture(spool)
    spool.commit(seq, bundle, "schedule", "quick")
    # Killed after the runner's rename, before the commit: the bundle is complete.
    finished_seq, finished = _capture(spool, name="mydiag-db1-20261126T120001Z.tar.zst")
    # Killed mid-write: a partial file and a staging folder, nothing with a final name.
    _half_seq, half = _capture(spool, name=".mydiag-db1-20261126T120002Z.tar.zst.partial")
    (half.parent / ".mydiag-stage-x").mkdir()
    # Killed between the folder's rename into bundles/ and the journal's update.
    late_seq, late = _capture(spool, name="mydiag-db1-20261126T120003Z.tar.zst")
    os.rename(late.parent, spool.bundles_dir / late.parent.name)
    (spool.bundles_dir / "00000099").mkdir()  # an empty folder: nothing to keep

    again = Spool(tmp_path, 1 << 20, 0).open()
    seqs = [e.seq for e in again.pending()]
    assert seqs == [seq, finished_seq, late_seq]
    assert not list(again.work_dir.iterdir())
    assert not (again.bundles_dir / "00000099").exists()
    assert len(again.recovered) == 2
    for entry in again.pending():
        assert again.path(entry).stat().st_size == entry.bytes
    assert again.begin()[0] == late_seq + 1


def test_a_bundle_that_vanished_is_reported_not_silently_forgotten(tmp_path):
    spool = Spool(tmp_path, 1 << 20, 0).open()
    seq, bundle = _capture(spool)
    entry = spool.commit(seq, bundle, "schedule", "quick")
    spool.path(entry).unlink()
    again = Spool(tmp_path, 1 << 20, 0).open()
    assert again.pending() == []
    assert "vanished before it was uploaded" in again.lost()[0]


def test_only_uploaded_bundles_are_evicted_and_a_full_spool_says_why(tmp_path):
    spool = Spool(tmp_path, 5000, 0).open()
    entries = []
    for _ in range(4):
        seq, bundle = _capture(spool)
        entries.append(spool.commit(seq, bundle, "schedule", "quick"))
    assert spool.room("quick") is None  # 4000 bytes + the next 1000 fit
    seq, bundle = _capture(spool)
    spool.commit(seq, bundle, "schedule", "quick")
    why = spool.room("quick")
    assert why and why.startswith("the spool is full") and "5 bundle(s)" in why and "are kept" in why
    assert len(spool.entries()) == 5
    spool.mark(entries[1].seq, uploaded=True)
    assert spool.room("quick") is None
    assert [e.seq for e in spool.entries()] == [1, 3, 4, 5]
    assert not spool.path(entries[1]).parent.exists()


def test_a_half_written_journal_never_replaces_the_good_one(tmp_path):
    spool = Spool(tmp_path, 1 << 20, 0).open()
    seq, bundle = _capture(spool)
    spool.commit(seq, bundle, "schedule", "quick")
    (tmp_path / ".journal.json.tmp").write_text('{"entries": [')  # a crash mid-write
    again = Spool(tmp_path, 1 << 20, 0).open()
    assert [e.seq for e in again.pending()] == [seq]
