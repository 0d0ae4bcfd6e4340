"""The agent's spool: finished bundles waiting for upload, bounded, and safe from crashes.

    <dir>/journal.json             what the spool holds, in order (written atomically)
    <dir>/bundles/<seq>/<bundle>   one folder per bundle (and, while it uploads, its sealed
                                   copy and the upload's resume journal)
    <dir>/work/<seq>/              a capture in progress (the runner's output folder)

A capture is written in its own work folder: the runner stages members and renames
`.<name>.partial` to `<name>` only after an fsync, so a file there with its final name
is complete. `commit` renames the whole folder into bundles/ (atomic on one
filesystem, then an fsync of the parent) and then records it in the journal. After a
SIGKILL or a power loss, `recover` deletes what was half-written and adopts every
complete bundle the journal does not know yet: nothing is lost, and nothing
half-written looks complete.

Bounded by bytes and by the free share of its filesystem; only bundles already
uploaded are evicted. When that is not enough, `room` says why and the agent stops
collecting until uploads free some space.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from bundle.paths import SUFFIX

JOURNAL = "journal.json"
BUNDLES = "bundles"
WORK = "work"
#: The resume journal of agent.remote.upload, beside the file it uploads.
UPLOAD_JOURNAL = ".upload.json"
JOURNAL_VERSION = 1
#: Assumed size of a capture before any has been taken.
FIRST_GUESS = 1 << 20


@dataclass
class Entry:
    seq: int
    file: str
    bytes: int
    sha256: str
    created: str
    kind: str = "schedule"
    trigger: Optional[str] = None
    profile: str = ""
    uploaded: Optional[str] = None
    rejected: Optional[str] = None
    attempts: int = 0
    last_error: str = ""


@dataclass
class Usage:
    bytes: int
    bundles: int
    pending: int
    pending_bytes: int
    free_pct: float
    max_bytes: int
    min_free_pct: float
    oldest_pending: Optional[str] = None


@dataclass
class _Journal:
    entries: List[Entry] = field(default_factory=list)
    #: Typical capture size by profile, to keep the next one inside the bound.
    sizes: Dict[str, int] = field(default_factory=dict)
    lost: List[str] = field(default_factory=list)


class SpoolError(Exception):
    pass


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Temp name, fsync, rename, fsync the folder: the old or the new content, never half.

    `durable=False` skips the fsyncs, for status that may be lost in a power cut.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_bundle_name(name: str) -> bool:
    return not name.startswith(".") and (name.endswith(SUFFIX) or name.endswith(SUFFIX + ".age"))


class Spool:
    def __init__(self, folder: Path, max_bytes: int, min_free_pct: float) -> None:
        self.dir = Path(folder)
        self.max_bytes = max_bytes
        self.min_free_pct = min_free_pct
        self._lock = threading.RLock()
        self._journal = _Journal()
        self._next_seq = 1
        #: Set by `recover`: what was cleaned up or adopted, for the log.
        self.recovered: List[str] = []

    @property
    def bundles_dir(self) -> Path:
        return self.dir / BUNDLES

    @property
    def work_dir(self) -> Path:
        return self.dir / WORK

    # -- opening and crash recovery ---------------------------------------

    def open(self) -> Spool:
        for folder in (self.dir, self.bundles_dir, self.work_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.recover()
        return self

    def recover(self) -> None:
        with self._lock:
            self.recovered = []
            self._journal = self._load()
            known = {e.seq: e for e in self._journal.entries}
            seqs = list(known)
            for work in sorted(self.work_dir.iterdir()):
                seq = _seq_of(work.name)
                main = _main_file(work) if seq is not None and work.is_dir() else None
                if main is not None:
                    _tidy(work, keep=main)
                    os.rename(work, self.bundles_dir / work.name)
                    fsync_dir(self.bundles_dir)
                else:
                    _remove(work)
                if seq is not None:
                    seqs.append(seq)
            for folder in sorted(self.bundles_dir.iterdir()):
                seq = _seq_of(folder.name)
                main = _main_file(folder) if seq is not None and folder.is_dir() else None
                if seq is None or main is None:
                    _remove(folder)
                    continue
                seqs.append(seq)
                entry = known.get(seq)
                if entry is None:
                    path = folder / main
                    stat = path.stat()
                    self._journal.entries.append(Entry(
                        seq=seq, file=f"{folder.name}/{main}", bytes=stat.st_size, sha256=_sha256(path),
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime)),
                        kind="recovered",
                    ))
                    self.recovered.append(f"adopted {folder.name}/{main}, finished before the last stop")
                    _tidy(folder, keep=main, sealed_copy=True)
                else:
                    _tidy(folder, keep=entry.file.split("/", 1)[-1], sealed_copy=entry.uploaded is None)
            kept: List[Entry] = []
            for entry in self._journal.entries:
                if (self.bundles_dir / entry.file).is_file():
                    kept.append(entry)
                elif entry.uploaded is None:
                    self._journal.lost.append(f"{_now()} {entry.file} vanished before it was uploaded")
                    self.recovered.append(f"{entry.file} is missing: removed by someone else?")
            self._journal.entries = sorted(kept, key=lambda e: e.seq)
            self._next_seq = max(seqs, default=0) + 1
            self._save()

    def _load(self) -> _Journal:
        path = self.dir / JOURNAL
        try:
            data = json.loads(path.read_text())
            return _Journal(
                entries=[Entry(**{k: v for k, v in e.items() if k in Entry.__dataclass_fields__})
                         for e in data.get("entries", [])],
                sizes={str(k): int(v) for k, v in data.get("sizes", {}).items()},
                lost=list(data.get("lost", []))[-20:],
            )
        except FileNotFoundError:
            return _Journal()
        except (ValueError, TypeError, AttributeError):
            # Written atomically, so only outside damage gets here: rebuild from the bundles.
            aside = path.with_name(f"{JOURNAL}.damaged-{int(time.time())}")
            os.replace(path, aside)
            self.recovered.append(f"{path} was damaged (kept as {aside.name}); rebuilt from the bundles")
            return _Journal()

    def _save(self) -> None:
        body = {"version": JOURNAL_VERSION, "entries": [asdict(e) for e in self._journal.entries],
                "sizes": self._journal.sizes, "lost": self._journal.lost}
        write_atomic(self.dir / JOURNAL, json.dumps(body, indent=1).encode() + b"\n")

    # -- captures ---------------------------------------------------------

    def begin(self) -> tuple:
        """A fresh work folder for one capture: (seq, folder)."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
        folder = self.work_dir / f"{seq:08d}"
        folder.mkdir(mode=0o700)
        return seq, folder

    def commit(self, seq: int, bundle: Path, kind: str, profile: str,
               trigger: Optional[str] = None) -> Entry:
        """Move a capture's folder into the spool, then record it (in that order)."""
        folder = bundle.parent
        _tidy(folder, keep=bundle.name)
        digest = _sha256(bundle)
        size = bundle.stat().st_size
        os.rename(folder, self.bundles_dir / folder.name)
        fsync_dir(self.bundles_dir)
        entry = Entry(seq=seq, file=f"{folder.name}/{bundle.name}", bytes=size, sha256=digest,
                      created=_now(), kind=kind, trigger=trigger, profile=profile)
        with self._lock:
            self._journal.entries.append(entry)
            self._journal.entries.sort(key=lambda e: e.seq)
            self._journal.sizes[profile] = size
            self._save()
        return entry

    def abandon(self, seq: int) -> None:
        shutil.rmtree(self.work_dir / f"{seq:08d}", ignore_errors=True)

    def path(self, entry: Entry) -> Path:
        return self.bundles_dir / entry.file

    # -- bounds -----------------------------------------------------------

    def expected(self, profile: str) -> int:
        return self._journal.sizes.get(profile, FIRST_GUESS)

    def usage(self) -> Usage:
        with self._lock:
            entries = list(self._journal.entries)
        used = _tree_bytes(self.bundles_dir) + _tree_bytes(self.work_dir)
        pending = [e for e in entries if e.uploaded is None and e.rejected is None]
        return Usage(
            bytes=used, bundles=len(entries), pending=len(pending),
            pending_bytes=sum(e.bytes for e in pending), free_pct=self.free_pct(),
            max_bytes=self.max_bytes, min_free_pct=self.min_free_pct,
            oldest_pending=pending[0].created if pending else None,
        )

    def free_pct(self) -> float:
        stats = os.statvfs(self.dir)
        return 100.0 * stats.f_bavail / stats.f_blocks if stats.f_blocks else 0.0

    def room(self, profile: str) -> Optional[str]:
        """Make room for one more capture of `profile`; None when there is, else why not."""
        need = self.expected(profile)
        with self._lock:
            while True:
                usage = self.usage()
                stats = os.statvfs(self.dir)
                after = 100.0 * (stats.f_bavail * stats.f_frsize - need) / (
                    stats.f_blocks * stats.f_frsize) if stats.f_blocks else 0.0
                over_bytes = usage.bytes + need > self.max_bytes
                over_disk = after < self.min_free_pct
                if not over_bytes and not over_disk:
                    return None
                if not self._evict_one():
                    break
        if over_bytes:
            return (f"the spool is full: {_size(usage.bytes)} used of max_bytes {_size(self.max_bytes)} "
                    f"and the next {profile} capture needs about {_size(need)}; "
                    f"{usage.pending} bundle(s) ({_size(usage.pending_bytes)}) wait for upload and "
                    "are kept")
        return (f"the disk holding the spool ({self.dir}) would drop below min_free_pct "
                f"{self.min_free_pct:g}% (free now {usage.free_pct:.1f}%, the next {profile} "
                f"capture needs about {_size(need)}); {usage.pending} bundle(s) wait for upload "
                "and are kept")

    def _evict_one(self) -> bool:
        """Delete the oldest uploaded bundle; False when there is none."""
        for entry in self._journal.entries:
            if entry.uploaded is not None:
                self._journal.entries.remove(entry)
                self._save()
                _remove((self.bundles_dir / entry.file).parent)
                return True
        return False

    # -- uploads ----------------------------------------------------------

    def pending(self) -> List[Entry]:
        with self._lock:
            return [e for e in self._journal.entries if e.uploaded is None and e.rejected is None]

    def entries(self) -> List[Entry]:
        with self._lock:
            return list(self._journal.entries)

    def lost(self) -> List[str]:
        return list(self._journal.lost)

    def mark(self, seq: int, *, uploaded: bool = False, rejected: Optional[str] = None,
             error: Optional[str] = None) -> None:
        with self._lock:
            for entry in self._journal.entries:
                if entry.seq == seq:
                    if uploaded:
                        entry.uploaded, entry.last_error = _now(), ""
                    if rejected is not None:
                        entry.rejected = rejected
                    if error is not None:
                        entry.attempts += 1
                        entry.last_error = error
                    self._save()
                    return


def _main_file(folder: Path) -> Optional[str]:
    """The bundle a spool folder holds: the plain one if there is one, else the sealed one."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and is_bundle_name(p.name))
    plain = [n for n in names if n.endswith(SUFFIX)]
    return (plain or names or [None])[0]


def _tidy(folder: Path, keep: str, sealed_copy: bool = False) -> None:
    """Remove leftovers (stage folders, partial files) beside `keep`. With `sealed_copy`, its
    sealed copy and the upload journals stay: an upload to resume."""
    wanted = {keep, keep + UPLOAD_JOURNAL}
    if sealed_copy:
        wanted |= {keep + ".age", keep + ".age" + UPLOAD_JOURNAL}
    for path in folder.iterdir():
        if path.name not in wanted:
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _seq_of(text: str) -> Optional[int]:
    return int(text) if text.isdigit() else None


def _tree_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
