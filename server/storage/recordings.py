"""Session recordings in the blob store, so that any process (on any machine) can replay them.

The gateway writes a part live to `DATA/sessions/<session>/<N>.cast` and `<N>.chain` on the
disk of the process that holds it (recording/asciicast.py). Once the part is finished (closed
by either end, cut, or the holder's shutdown), `archive` puts both files into the blob store
by SHA-256 and records them in the `recordings` table, then removes the local files: the
store is where every process and every machine finds them, and a disk that only ever holds
the parts in progress cannot fill up with old sessions or lose them with the machine.

Nothing is removed before it is stored and recorded. A store that is down leaves the files
where they are (readers find them there) and the `Archiver` thread of every gateway process
retries; it also archives, at start-up, what a process that died left on this disk (its part
is what reached the disk: its chain has no END line and replays as cut off).

A part being written is held under an exclusive `flock` on its cast file by the writer
(`writing`); the archiver takes the same lock without waiting, so it never archives a part
that a live process (this one or another on the same machine) is still writing. The lock
dies with its process.

With the local store (one machine) nothing moves: it is the same disk as `DATA/sessions/`, so
a copy would buy nothing; parts stay where the gateway wrote them, as before. `mydiag-server
migrate` to S3 stores them (and names them in the table) like the archiver does.

Readers (`local_parts`) take a part's local file first, else stream it from the store into
a private folder under `DATA/tmp/` for as long as the context lasts, with its own file names,
so `asciicast.verify` checks the hash chain exactly as for a local file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from server.storage.blobs import BlobStore, LocalStore
from server.storage.db import Database, Tx

log = logging.getLogger("mydiag.recordings")

CAST = ".cast"
CHAIN = ".chain"
#: Seconds between the archiver's rounds (a store that was down is retried this often).
SWEEP_SECONDS = 5.0
#: A cast file touched this recently is left for the next round: a writer that has just
#: created it may not hold its lock yet.
SETTLE_SECONDS = 3.0


@dataclass
class Stored:
    session_id: str
    file: str
    cast_sha256: str
    chain_sha256: str
    bytes: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def writing(cast: Path) -> Iterator[None]:
    """Hold the part's lock while it is written (the archiver leaves it alone meanwhile)."""
    fd = os.open(cast, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rows(tx: Tx, session_id: str) -> List[Stored]:
    found = tx.all("SELECT session_id, file, cast_sha256, chain_sha256, bytes FROM recordings"
                   " WHERE session_id = ?", (session_id,))
    return [Stored(r["session_id"], r["file"], r["cast_sha256"], r["chain_sha256"], int(r["bytes"]))
            for r in found]


def record(tx: Tx, part: Stored, by: str) -> Optional[Stored]:
    """Name a stored part in the database; the row already there (which wins) if there was one."""
    tx.run("INSERT INTO recordings (session_id, file, cast_sha256, chain_sha256, bytes, archived,"
           " archived_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, file) DO NOTHING",
           (part.session_id, part.file, part.cast_sha256, part.chain_sha256, part.bytes, time.time(), by))
    row = tx.one("SELECT cast_sha256, chain_sha256, bytes FROM recordings WHERE session_id = ? AND file = ?",
                 (part.session_id, part.file))
    return None if row is None else Stored(part.session_id, part.file, row["cast_sha256"],
                                           row["chain_sha256"], int(row["bytes"]))


def store_part(store: BlobStore, cast: Path) -> Stored:
    """Put one part's two files into the store (raises StoreUnavailable); what was stored."""
    chain = cast.with_suffix(CHAIN)
    cast_sha, chain_sha = file_sha256(cast), file_sha256(chain)
    for path, sha in ((cast, cast_sha), (chain, chain_sha)):
        store.put_file(path, sha)
        if not store.exists(sha):
            raise OSError(f"{path.name} is not in the store after it was put there")
    return Stored(cast.parent.name, cast.name, cast_sha, chain_sha, cast.stat().st_size)


def archive(db: Database, store: BlobStore, cast: Path, by: str, settle: float = 0.0) -> bool:
    """Store a finished part and drop its local files; False when it stays local for now
    (being written, too fresh, or the store/database failed: the next round retries)."""
    try:
        fd = os.open(cast, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if settle and time.time() - os.fstat(fd).st_mtime < settle:
            return False
        if not cast.with_suffix(CHAIN).exists():
            log.warning("recording %s has no chain file: left where it is", cast)
            return False
        try:
            part = store_part(store, cast)
            with db.tx() as tx:
                kept = record(tx, part, by)
        except Exception as exc:  # noqa: BLE001 - the store or database is down: retried later
            log.warning("recording %s stays on this disk for now: %s: %s", cast, type(exc).__name__, exc)
            return False
        if kept != part:
            log.error("recording %s differs from the copy the database names (%s): left where it is",
                      cast, kept.cast_sha256[:16] if kept else "none")
            return False
        for path in (cast.with_suffix(CHAIN), cast):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(OSError):
            cast.parent.rmdir()
        log.info("recording %s/%s stored (%s)", part.session_id, part.file, part.cast_sha256[:16])
        return True
    finally:
        os.close(fd)


def pending(folder: Path) -> List[Path]:
    """Every part still on this disk, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*/*{CAST}"), key=lambda p: p.stat().st_mtime if p.exists() else 0)


def sweep(db: Database, store: BlobStore, folder: Path, by: str, settle: float = SETTLE_SECONDS) -> int:
    """Archive every finished part left on this disk; how many were stored."""
    return sum(archive(db, store, cast, by, settle) for cast in pending(folder))


class Archiver:
    """The gateway's background archiver: a round at start-up (what a dead process left), one
    as each part closes (`soon`), and one every SWEEP_SECONDS (a store that was down)."""

    def __init__(self, db: Database, store: BlobStore, folder: Path, by: str) -> None:
        self.db, self.store, self.folder, self.by = db, store, folder, by
        self._wake = threading.Event()
        self._queue: List[Path] = []
        self._queue_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recording-archiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def soon(self, cast: Path) -> None:
        """A part has just been closed: store it now, in the archiver's thread."""
        with self._queue_lock:
            self._queue.append(cast)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._queue_lock:
                closed, self._queue = self._queue, []
            try:
                for cast in closed:
                    archive(self.db, self.store, cast, self.by)
                # Other parts only once they have settled: one just created may not be locked yet.
                sweep(self.db, self.store, self.folder, self.by)
            except Exception as exc:  # noqa: BLE001 - keep the thread; the next round retries
                log.warning("archiving recordings failed: %s: %s", type(exc).__name__, exc)
            self._wake.wait(SWEEP_SECONDS)
            self._wake.clear()


_archivers: Dict[str, Archiver] = {}
_lock = threading.Lock()


def archiver_for(db: Database, store: BlobStore, folder: Path, by: str) -> Optional[Archiver]:
    """The one archiver of this process for `folder` (started on first use); None on the local
    store, which is this machine's disk like `DATA/sessions/`: the parts stay where they are."""
    if isinstance(store, LocalStore):
        return None
    with _lock:
        key = str(folder)
        if key not in _archivers:
            _archivers[key] = Archiver(db, store, folder, by)
            _archivers[key].start()
        return _archivers[key]


@contextlib.contextmanager
def local_parts(db: Database, store: BlobStore, folder: Path, scratch: Path, session_id: str) -> Iterator[
        List[Path]]:
    """Every part of a session as cast files on this machine (beside their chains), in order:
    the local file if there is one, else a copy from the store for the context's length.
    Raises StoreUnavailable when a part is only in a store that cannot be reached."""
    local = {p.name: p for p in (folder / session_id).glob(f"*{CAST}") if p.stem.isdigit()}
    with db.tx(write=False) as tx:
        stored = [r for r in rows(tx, session_id) if r.file not in local and Path(r.file).stem.isdigit()]
    copies: Optional[Path] = None
    try:
        if stored:
            scratch.mkdir(parents=True, exist_ok=True)
            copies = Path(tempfile.mkdtemp(prefix=f".replay-{session_id}-", dir=scratch))
            for part in stored:
                cast = copies / part.file
                for sha, path in ((part.cast_sha256, cast), (part.chain_sha256, cast.with_suffix(CHAIN))):
                    with store.open(sha) as source, open(path, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                local[part.file] = cast
        yield sorted(local.values(), key=lambda p: int(p.stem))
    finally:
        if copies is not None:
            shutil.rmtree(copies, ignore_errors=True)


def stored_part(db: Database, session_id: str, file: str) -> Optional[Stored]:
    with db.tx(write=False) as tx:
        return next((r for r in rows(tx, session_id) if r.file == file), None)


def open_stored(store: BlobStore, part: Stored) -> Any:
    """A stream of a stored part's cast (for the download)."""
    return store.open(part.cast_sha256)
