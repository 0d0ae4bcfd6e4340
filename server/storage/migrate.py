"""Move an installation from SQLite and the local blob folder to PostgreSQL and/or S3.

`mydiag-server migrate` (server/cli/migrate.py) runs `Migration.run`. The order is what
makes it safe to interrupt at any point and run again (docs/deploy.md):

1. The data directory is locked (`DATA/.migrate.lock`) and refused while a process has
   its SQLite database open or runs `mydiag-server run` on it: the server must be stopped.
2. The target database gets a marker row (`meta`, key `migrate_source`) naming the source
   installation. A target that has rows but no marker, or another installation's marker, is
   refused: migrate never mixes two installations.
3. Every blob of `DATA/blobs/sha256/` is hashed at the source (a file whose content is not its
   name stops the run), copied when missing, and read back from the target and hashed again.
   Uploads in progress are copied as staging of the same upload id (their committed bytes).
4. Every table is copied in one transaction of its own: the target's rows of that table are
   replaced, then a `meta` row `migrate_table:<name>` records the count and a digest of the
   rows. A table with that row is not copied again, only checked. The append-only audit log
   is copied in `seq` order with its `seq` values, and its sequence set past the last one; it
   is the one table never deleted from (a transaction killed mid-way leaves it empty).
5. Every table's count and digest are compared with the source again, then config.json is
   replaced (atomically, the old one kept as `config.json.pre-migrate`). Until then the old
   configuration is the one in force. The source (server.db, blobs/) is opened read-only and
   left as it was: it is the backup.

6. Session recordings (`DATA/sessions/`, written by server/gateway) go into the new store, each
   read back and hashed, and are named in the `recordings` table of the database in force
   afterwards (server/storage/recordings.py); the files stay where they were (the backup).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from server.config import BlobSettings, Config, DataDir, write_private
from server.storage import recordings
from server.storage.blobs import BlobStore, LocalStore
from server.storage.db import Database, open_database
from server.storage.stores import open_store

MARKER = "migrate_source"
#: Rows per INSERT batch (psycopg pipelines a batch in one round trip).
BATCH = 1000
#: meta rows of the source that belong to its own schema, not to the installation.
_OWN_META = ("schema", "schema_digest")


class MigrateError(Exception):
    """One line for the user; `code` is the exit code (server/exitcodes.py)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Summary:
    tables: Dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    blob_bytes: int = 0
    blobs_copied: int = 0
    staging: int = 0
    recordings: int = 0
    recording_bytes: int = 0
    seconds: float = 0.0
    resumed: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def _exit(name: str) -> int:
    from server import exitcodes

    return getattr(exitcodes, name)


def holders(data: DataDir) -> List[int]:
    """Pids of other processes that have the data directory's SQLite files open, or whose
    command line is `mydiag-server run` on it: the server is running."""
    me = os.getpid()
    root = data.path.resolve()
    watched = {str(root / name) for name in ("server.db", "server.db-wal", "server.db-shm")}
    found: List[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if _runs_on(args, root):
            found.append(pid)
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in watched:
                    found.append(pid)
                    break
            except OSError:
                continue
    return sorted(found)


def _runs_on(args: List[bytes], root: Path) -> bool:
    words = [a.decode("utf-8", "replace") for a in args if a]
    if "run" not in words or "--data" not in words:
        return False
    at = words.index("--data")
    if at + 1 >= len(words):
        return False
    try:
        return Path(words[at + 1]).resolve() == root
    except OSError:
        return False


def _norm(value: Any) -> Any:
    """A value as both engines give it back: numbers as floats (REAL/DOUBLE, INTEGER/BIGINT)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return value


def rows_digest(rows: Iterator[Sequence[Any]], ordered: bool) -> Tuple[int, str]:
    """(count, digest) of rows: in their order (the audit log), else as a set (any order)."""
    count = 0
    whole = hashlib.sha256()
    hashes: List[bytes] = []
    for row in rows:
        count += 1
        line = json.dumps([_norm(v) for v in row], ensure_ascii=True).encode()
        if ordered:
            whole.update(line + b"\n")
        else:
            hashes.append(hashlib.sha256(line).digest())
    if not ordered:
        for item in sorted(hashes):
            whole.update(item)
    return count, whole.hexdigest()


class Source:
    """The SQLite database, opened read-only: nothing the migration does can change it."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise MigrateError(_exit("DATA_DIR"), f"no SQLite database at {path}")
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)

    def tables(self) -> List[str]:
        """The tables in the order they were created (the schema's order: nothing refers to
        a table created after it)."""
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE"
                                 " 'sqlite_%' ORDER BY rowid").fetchall()
        return [r[0] for r in rows if r[0] not in ("meta", "job_leases")]  # leases: a stopped server's

    def columns(self, table: str) -> List[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall()]

    def rows(self, table: str, columns: List[str]) -> Iterator[Tuple[Any, ...]]:
        order = " ORDER BY seq" if table == "audit" else ""
        cursor = self.conn.execute(f"SELECT {', '.join(columns)} FROM {table}{order}")
        while True:
            chunk = cursor.fetchmany(BATCH)
            if not chunk:
                return
            yield from chunk

    def meta(self) -> List[Tuple[str, str]]:
        return [(k, v) for k, v in self.conn.execute("SELECT key, value FROM meta").fetchall()
                if k not in _OWN_META]

    def close(self) -> None:
        self.conn.close()


def _target_rows(db: Database, table: str, columns: List[str]) -> Iterator[Tuple[Any, ...]]:
    order = " ORDER BY seq" if table == "audit" else ""
    # Rows the recordings step made (after this check, in an earlier run) are not the source's.
    where = " WHERE archived_by <> 'migrate'" if table == "recordings" else ""
    with db.tx(write=False) as tx:
        for row in tx.all(f"SELECT {', '.join(columns)} FROM {table}{where}{order}"):
            yield tuple(row[c] for c in columns)


class Migration:
    def __init__(self, data: DataDir, to_database: Optional[str], to_blobs: Optional[BlobSettings],
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.data = data
        self.to_database = to_database
        self.to_blobs = to_blobs
        self.say = say
        self.summary = Summary()

    # The whole run ---------------------------------------------------------------------------

    def run(self) -> Summary:
        started = time.monotonic()
        lock = self._lock()
        try:
            config = self.data.load()
            if self._already_done(config):
                self.say("nothing to do: config.json already names this database and store")
                self.summary.seconds = round(time.monotonic() - started, 3)
                return self.summary
            self._refuse_if_running()
            source = self._source(config)
            target_db = self._open_target(config) if self.to_database else None
            try:
                if self.to_blobs is not None:
                    self._copy_blobs(config)
                if target_db is not None and source is not None:
                    self._copy_tables(source, target_db)
                    self._verify_tables(source, target_db)
                self._copy_recordings(config, target_db)
                self._write_config(config)
            finally:
                if source is not None:
                    source.close()
                if target_db is not None:
                    target_db.close()
        finally:
            os.close(lock)
        self.summary.seconds = round(time.monotonic() - started, 3)
        return self.summary

    def _lock(self) -> int:
        if not self.data.exists():
            raise MigrateError(_exit("DATA_DIR"), f"{self.data.path} is not a mydiag-server data directory")
        fd = os.open(self.data.path / ".migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MigrateError(_exit("DATA_DIR"), f"another migrate is running on {self.data.path}") from None
        return fd

    def _refuse_if_running(self) -> None:
        pids = holders(self.data)
        if pids:
            raise MigrateError(_exit("DATA_DIR"), f"{self.data.path} is in use by process "
                               f"{', '.join(map(str, pids))}: stop the server before migrating")

    def _already_done(self, config: Config) -> bool:
        db_done = self.to_database is None or config.database == self.to_database
        blobs_done = self.to_blobs is None or (config.blobs.kind == "s3" and _same_store(config.blobs,
                                                                                          self.to_blobs))
        return db_done and blobs_done

    def _source(self, config: Config) -> Optional[Source]:
        if self.to_database is None:
            return None
        if config.database:
            raise MigrateError(_exit("USAGE"), f"{self.data.path} already uses a PostgreSQL database; "
                               "migrate moves an SQLite installation (move PostgreSQL with pg_dump)")
        return Source(self.data.path / "server.db")

    # The database ------------------------------------------------------------------------------

    def _marker(self, config: Config) -> str:
        return f"{config.recipients[0] if config.recipients else ''} {self.data.path.resolve()}"

    def _open_target(self, config: Config) -> Database:
        assert self.to_database is not None
        db = open_database(self.to_database)
        marker = self._marker(config)
        with db.tx() as tx:
            tx.run("SELECT pg_advisory_xact_lock(7201906)")
            row = tx.one("SELECT value FROM meta WHERE key = ?", (MARKER,))
            if row is not None and row["value"] != marker:
                db.close()
                raise MigrateError(_exit("DATABASE"), "the target database holds another installation's "
                                   f"migration ({row['value'].split(' ', 1)[-1]}): use an empty database")
            if row is None:
                busy = [t for t in _target_tables(tx) if tx.one(f"SELECT 1 AS x FROM {t} LIMIT 1")]
                if busy:
                    db.close()
                    raise MigrateError(_exit("DATABASE"), "the target database is not empty (it has rows in "
                                       f"{', '.join(busy[:3])}{' …' if len(busy) > 3 else ''}) and is not "
                                       "from an interrupted migrate: use an empty database")
                tx.run("INSERT INTO meta (key, value) VALUES (?, ?)", (MARKER, marker))
            else:
                self.summary.resumed = True
                self.say("resuming an interrupted migration into this database")
        return db

    def _copy_tables(self, source: Source, db: Database) -> None:
        with db.tx() as tx:
            for key, value in source.meta():
                tx.run("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                       " SET value = excluded.value", (key, value))
        for table in source.tables():
            columns = source.columns(table)
            with db.tx(write=False) as tx:
                done = tx.one("SELECT value FROM meta WHERE key = ?", (f"migrate_table:{table}",))
            if done is not None:
                self.say(f"table {table}: copied by the earlier run")
                continue
            count = self._copy_table(source, db, table, columns)
            self.say(f"table {table}: {count} rows")

    def _copy_table(self, source: Source, db: Database, table: str, columns: List[str]) -> int:
        marks = ", ".join("?" for _ in columns)
        insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        count, digest = rows_digest(source.rows(table, columns), ordered=table == "audit")
        with db.tx() as tx:
            if table == "audit":
                if tx.one("SELECT 1 AS x FROM audit LIMIT 1"):
                    raise MigrateError(_exit("DATABASE"), "the target's audit log has rows that no migrate "
                                       "step recorded: use an empty database")
            else:
                tx.run(f"DELETE FROM {table}")
            batch: List[Tuple[Any, ...]] = []
            for row in source.rows(table, columns):
                batch.append(row)
                if len(batch) >= BATCH:
                    tx.many(insert, batch)
                    batch = []
            tx.many(insert, batch)
            if table == "audit":
                tx.run("SELECT setval(pg_get_serial_sequence('audit', 'seq'), "
                       "(SELECT COALESCE(MAX(seq), 0) + 1 FROM audit), false)")
            tx.run("INSERT INTO meta (key, value) VALUES (?, ?)",
                   (f"migrate_table:{table}", json.dumps({"rows": count, "digest": digest})))
        return count

    def _verify_tables(self, source: Source, db: Database) -> None:
        for table in source.tables():
            columns = source.columns(table)
            ordered = table == "audit"
            want = rows_digest(source.rows(table, columns), ordered)
            got = rows_digest(_target_rows(db, table, columns), ordered)
            if want != got:
                raise MigrateError(_exit("DATABASE"), f"table {table} differs after the copy ({want[0]} rows "
                                   f"at the source, {got[0]} in the target): config.json left as it was")
            self.summary.tables[table] = want[0]

    # Blobs --------------------------------------------------------------------------------------

    def _copy_blobs(self, config: Config) -> None:
        assert self.to_blobs is not None
        if config.blobs.kind != "local":
            raise MigrateError(_exit("USAGE"), f"{self.data.path} already uses an S3 store; migrate moves "
                               "the local blob folder (copy between buckets with the store's own tools)")
        from server.storage.blobs import StoreUnavailable

        target = open_store(self.data.blobs, self.to_blobs, self.data.tmp)
        source = LocalStore(self.data.blobs)
        self.data.tmp.mkdir(exist_ok=True)
        try:
            target.check()  # type: ignore[attr-defined]
            files = sorted(p for p in (self.data.blobs / "sha256").glob("*/*") if p.is_file())
            for number, path in enumerate(files, 1):
                self._copy_blob(source, target, path)
                self.say(f"blob {number}/{len(files)}: {path.name}")
            self._copy_staging(config, source, target)
        except StoreUnavailable as exc:
            raise MigrateError(_exit("IO_ERROR"), f"the blob store {self.to_blobs.describe()}: {exc} "
                               "(run migrate again to resume)") from None

    def _copy_blob(self, source: LocalStore, target: BlobStore, path: Path) -> None:
        sha256 = path.name
        size = path.stat().st_size
        if _file_sha256(path) != sha256:
            raise MigrateError(_exit("IO_ERROR"), f"{path}: its content does not match its name (a damaged "
                               "blob at the source); nothing was switched")
        if not target.exists(sha256):
            target.put_file(path, sha256)
            self.summary.blobs_copied += 1
        with target.open(sha256) as copy:
            got = hashlib.sha256()
            for chunk in iter(lambda: copy.read(1 << 20), b""):
                got.update(chunk)
        if got.hexdigest() != sha256:
            raise MigrateError(_exit("IO_ERROR"), f"blob {sha256} reads back different from the store; "
                               "config.json left as it was")
        self.summary.blobs += 1
        self.summary.blob_bytes += size

    def _copy_staging(self, config: Config, source: LocalStore, target: BlobStore) -> None:
        """Uploads in progress: their committed bytes, as staging of the same upload id, so the
        agent resumes at the same offset through the new store."""
        rows = _uploads_in_progress(config, self.data)
        for upload_id, received in rows:
            path = source.staging_path(upload_id)
            if not path.is_file() or received <= 0:
                continue
            writer = target.staging_writer(upload_id, 0)
            with open(path, "rb") as handle:
                left = received
                while left > 0:
                    chunk = handle.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    writer.write(chunk)
                    left -= len(chunk)
            writer.close()
            if target.staging_size(upload_id) < received:
                raise MigrateError(_exit("IO_ERROR"), f"upload {upload_id} did not reach the store whole")
            self.summary.staging += 1

    # Recordings and the configuration ---------------------------------------------------------

    def _copy_recordings(self, config: Config, target_db: Optional[Database]) -> None:
        """Every session recording still in `DATA/sessions/` into the new store, read back and
        hashed, and named in the `recordings` table of the database in force afterwards (as the
        gateway's archiver does, server/storage/recordings.py). The files stay: the source is the
        backup, and readers take a local file first."""
        folder = self.data.path / "sessions"
        if self.to_blobs is None:
            for path in folder.rglob("*"):
                if path.is_file():
                    self.summary.recordings += 1
                    self.summary.recording_bytes += path.stat().st_size
            return
        from server.storage.blobs import StoreUnavailable

        casts = recordings.pending(folder)
        if not casts:
            return
        target = open_store(self.data.blobs, self.to_blobs, self.data.tmp)
        db = target_db or open_database(self.data.database_url(config))
        try:
            for cast in casts:
                if not cast.with_suffix(recordings.CHAIN).is_file():
                    raise MigrateError(_exit("IO_ERROR"), f"{cast} has no chain file beside it; nothing "
                                       "was switched")
                part = recordings.store_part(target, cast)
                for sha in (part.cast_sha256, part.chain_sha256):
                    with target.open(sha) as copy:
                        got = hashlib.sha256()
                        for chunk in iter(lambda: copy.read(1 << 20), b""):
                            got.update(chunk)
                    if got.hexdigest() != sha:
                        raise MigrateError(_exit("IO_ERROR"), f"recording {cast} reads back different from "
                                           "the store; config.json left as it was")
                with db.tx() as tx:
                    kept = recordings.record(tx, part, "migrate")
                if kept != part:
                    raise MigrateError(_exit("IO_ERROR"), f"recording {cast} differs from the copy the "
                                       "database names; config.json left as it was")
                self.summary.recordings += 1
                self.summary.recording_bytes += part.bytes
                self.say(f"recording {part.session_id}/{part.file}: stored")
        except StoreUnavailable as exc:
            raise MigrateError(_exit("IO_ERROR"), f"the blob store {self.to_blobs.describe()}: {exc} "
                               "(run migrate again to resume)") from None
        finally:
            if target_db is None:
                db.close()

    def _write_config(self, config: Config) -> None:
        old = self.data.config_path.read_bytes()
        backup = self.data.path / "config.json.pre-migrate"
        if not backup.exists():
            write_private(backup, old)
        if self.to_database:
            config.database = self.to_database
        if self.to_blobs is not None:
            config.blobs = self.to_blobs
        self.data.save(config)


def _same_store(a: BlobSettings, b: BlobSettings) -> bool:
    return (a.endpoint, a.bucket, a.prefix) == (b.endpoint, b.bucket, b.prefix)


def _target_tables(tx: Any) -> List[str]:
    rows = tx.all("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                  " AND table_type = 'BASE TABLE'")
    return sorted(r["table_name"] for r in rows if r["table_name"] != "meta")


def _uploads_in_progress(config: Config, data: DataDir) -> List[Tuple[str, int]]:
    """(upload id, committed bytes) of the source installation's uploads in progress."""
    query = "SELECT id, received FROM uploads WHERE state IN ('receiving', 'completing')"
    if config.database:
        db = open_database(config.database)
        try:
            with db.tx(write=False) as tx:
                return [(r["id"], int(r["received"])) for r in tx.all(query)]
        finally:
            db.close()
    path = data.path / "server.db"
    if not path.is_file():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        return [(r[0], int(r[1])) for r in conn.execute(query).fetchall()]
    finally:
        conn.close()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
