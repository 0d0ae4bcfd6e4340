"""The server's database: one small SQL layer over SQLite (embedded) and PostgreSQL.

SQL is written once, with `?` placeholders and types both engines accept; only the
schema's serial column and row locks differ. Every write runs in a transaction that
takes the write lock up front (`BEGIN IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on
the rows that matter on PostgreSQL), so several server processes on one database
serialize instead of corrupting each other.
"""

from __future__ import annotations

import hashlib
import os
import queue
import sqlite3
import threading
import urllib.parse
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence

SCHEMA_VERSION = 1

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS engineers (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  digest TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL,
  created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tickets (
  id TEXT PRIMARY KEY, customer TEXT NOT NULL, title TEXT NOT NULL, recipients TEXT NOT NULL,
  created DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hosts (
  customer TEXT NOT NULL, fingerprint TEXT NOT NULL, ticket_id TEXT NOT NULL,
  public_key TEXT NOT NULL, hostname TEXT NOT NULL, enrolled DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (customer, fingerprint));
CREATE TABLE IF NOT EXISTS uploads (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, length BIGINT NOT NULL, received BIGINT NOT NULL,
  metadata TEXT NOT NULL, declared_sha256 TEXT, state TEXT NOT NULL,
  created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,
  expires DOUBLE PRECISION NOT NULL, lease_owner TEXT, lease_until DOUBLE PRECISION,
  sha256 TEXT, bundle_id TEXT);
CREATE INDEX IF NOT EXISTS uploads_ticket ON uploads (ticket_id, state);
CREATE TABLE IF NOT EXISTS bundles (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
  filename TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, signer TEXT, host TEXT,
  started TEXT, finished TEXT, manifest TEXT, received DOUBLE PRECISION NOT NULL,
  verified DOUBLE PRECISION, claim_owner TEXT, claim_until DOUBLE PRECISION,
  UNIQUE (ticket_id, sha256));
CREATE INDEX IF NOT EXISTS bundles_status ON bundles (status);
CREATE TABLE IF NOT EXISTS bundle_attempts (
  bundle_id TEXT PRIMARY KEY, attempts INTEGER NOT NULL, next_try DOUBLE PRECISION NOT NULL,
  last_error TEXT);
CREATE TABLE IF NOT EXISTS engineer_keys (
  fingerprint TEXT PRIMARY KEY, name TEXT NOT NULL, public_key TEXT NOT NULL,
  added DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, engineer TEXT NOT NULL, mode TEXT NOT NULL,
  purpose TEXT NOT NULL, host TEXT NOT NULL, tunnel_key TEXT NOT NULL, granted_by TEXT NOT NULL,
  created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,
  ended DOUBLE PRECISION, end_reason TEXT, parts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS sessions_ticket ON sessions (ticket_id, created);
CREATE TABLE IF NOT EXISTS engineer_passwords (
  name TEXT PRIMARY KEY, hash TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS web_sessions (
  digest TEXT PRIMARY KEY, engineer TEXT NOT NULL, csrf TEXT NOT NULL,
  created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS web_sessions_expires ON web_sessions (expires);
CREATE TABLE IF NOT EXISTS signin_failures (
  account TEXT NOT NULL, address TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS signin_failures_account ON signin_failures (account, at);
CREATE INDEX IF NOT EXISTS signin_failures_address ON signin_failures (address, at);
CREATE TABLE IF NOT EXISTS reports (
  bundle_id TEXT PRIMARY KEY, state TEXT NOT NULL, headline TEXT, report_json TEXT, html_key TEXT,
  error TEXT, rendered DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS tickets_created ON tickets (created, id);
CREATE INDEX IF NOT EXISTS bundles_ticket ON bundles (ticket_id, received);
CREATE INDEX IF NOT EXISTS hosts_ticket ON hosts (ticket_id);
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT PRIMARY KEY, message_id TEXT, ticket_id TEXT, to_addr TEXT NOT NULL, raw TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, next_try DOUBLE PRECISION, last_error TEXT,
  created DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_try);
CREATE INDEX IF NOT EXISTS outbox_message ON outbox (message_id);
CREATE TABLE IF NOT EXISTS mail_inbox (
  id TEXT PRIMARY KEY, raw_key TEXT NOT NULL, size BIGINT NOT NULL, envelope_from TEXT NOT NULL,
  envelope_to TEXT NOT NULL, source TEXT NOT NULL, received DOUBLE PRECISION NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, next_try DOUBLE PRECISION, outcome TEXT,
  ticket_id TEXT, message_id TEXT, processed DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS mail_inbox_due ON mail_inbox (state, next_try);
CREATE TABLE IF NOT EXISTS mail_notices (
  email TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS customer_people (
  email TEXT PRIMARY KEY, customer TEXT NOT NULL, name TEXT, added DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS customer_people_customer ON customer_people (customer, email);
CREATE TABLE IF NOT EXISTS customer_plans (
  customer TEXT PRIMARY KEY, plan TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS ticket_terms (
  ticket_id TEXT PRIMARY KEY, severity TEXT NOT NULL, owner TEXT, waiting_since DOUBLE PRECISION,
  waiting_by TEXT);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, author TEXT NOT NULL,
  author_kind TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, source TEXT NOT NULL,
  mail_message_id TEXT, raw_key TEXT, attachments TEXT, delivery TEXT, delivery_detail TEXT,
  no_reply_reason TEXT, no_reply_by TEXT, waiting INTEGER NOT NULL DEFAULT 0, obligation_id TEXT);
CREATE INDEX IF NOT EXISTS messages_ticket ON messages (ticket_id, at);
CREATE INDEX IF NOT EXISTS messages_mail_id ON messages (mail_message_id);
CREATE INDEX IF NOT EXISTS messages_delivery ON messages (delivery, at);
CREATE INDEX IF NOT EXISTS messages_obligation ON messages (obligation_id);
CREATE TABLE IF NOT EXISTS obligations (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, kind TEXT NOT NULL, policy TEXT NOT NULL,
  calendar TEXT NOT NULL, target DOUBLE PRECISION NOT NULL, opened_by TEXT NOT NULL,
  started DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, used DOUBLE PRECISION NOT NULL,
  active_since DOUBLE PRECISION, paused_by TEXT, paused_at DOUBLE PRECISION,
  warn50 DOUBLE PRECISION, warn80 DOUBLE PRECISION, warn95 DOUBLE PRECISION,
  due_at DOUBLE PRECISION NOT NULL, fired INTEGER NOT NULL DEFAULT 0, next_check DOUBLE PRECISION,
  met_by TEXT, met_at DOUBLE PRECISION, closed_reason TEXT);
CREATE INDEX IF NOT EXISTS obligations_ticket ON obligations (ticket_id, state);
CREATE INDEX IF NOT EXISTS obligations_check ON obligations (next_check);
CREATE TABLE IF NOT EXISTS clock_events (
  obligation_id TEXT NOT NULL, kind TEXT NOT NULL, ticket_id TEXT NOT NULL,
  due DOUBLE PRECISION NOT NULL, recorded_at DOUBLE PRECISION NOT NULL, recorded_by TEXT,
  PRIMARY KEY (obligation_id, kind));
CREATE INDEX IF NOT EXISTS clock_events_ticket ON clock_events (ticket_id, recorded_at);
CREATE TABLE IF NOT EXISTS notifications (
  id TEXT PRIMARY KEY, recipient TEXT NOT NULL, ticket_id TEXT, kind TEXT NOT NULL, text TEXT NOT NULL,
  at DOUBLE PRECISION NOT NULL, seen DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS notifications_recipient ON notifications (recipient, at);
CREATE INDEX IF NOT EXISTS obligations_due ON obligations (state, due_at, ticket_id);
CREATE TABLE IF NOT EXISTS customer_signin_links (
  digest TEXT PRIMARY KEY, email TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
  expires DOUBLE PRECISION NOT NULL, used DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS customer_signin_links_email ON customer_signin_links (email, created);
CREATE TABLE IF NOT EXISTS customer_web_sessions (
  digest TEXT PRIMARY KEY, email TEXT NOT NULL, customer TEXT NOT NULL, csrf TEXT NOT NULL,
  created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS customer_web_sessions_expires ON customer_web_sessions (expires);
CREATE TABLE IF NOT EXISTS customer_link_requests (address TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS customer_link_requests_address ON customer_link_requests (address, at);
CREATE TABLE IF NOT EXISTS promises (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, obligation_id TEXT NOT NULL, version INTEGER NOT NULL,
  due_at DOUBLE PRECISION NOT NULL, policy_due_at DOUBLE PRECISION, reason TEXT NOT NULL,
  proposed_by TEXT NOT NULL, proposed_side TEXT NOT NULL, proposed_at DOUBLE PRECISION NOT NULL,
  replaces TEXT, state TEXT NOT NULL, answered_by TEXT, answered_at DOUBLE PRECISION,
  renegotiated INTEGER NOT NULL DEFAULT 0, estimate DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS promises_ticket ON promises (ticket_id, version);
CREATE INDEX IF NOT EXISTS promises_obligation ON promises (obligation_id, version);
CREATE TABLE IF NOT EXISTS admission_refusals (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
  wanted_at DOUBLE PRECISION NOT NULL, earliest_feasible_at DOUBLE PRECISION, detail TEXT);
CREATE INDEX IF NOT EXISTS admission_refusals_ticket ON admission_refusals (ticket_id, at);
CREATE TABLE IF NOT EXISTS engineer_calendars (
  engineer TEXT PRIMARY KEY, timezone TEXT NOT NULL, hours TEXT NOT NULL, holidays TEXT,
  subdivision TEXT, share DOUBLE PRECISION NOT NULL DEFAULT 1, updated DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS engineer_time_off (
  id TEXT PRIMARY KEY, engineer TEXT NOT NULL, starts DOUBLE PRECISION NOT NULL,
  ends DOUBLE PRECISION NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS engineer_time_off_engineer ON engineer_time_off (engineer, starts);
CREATE TABLE IF NOT EXISTS task_efforts (
  task_id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, kind TEXT NOT NULL, estimate DOUBLE PRECISION,
  estimated_by TEXT, spent DOUBLE PRECISION NOT NULL DEFAULT 0, owner TEXT, done_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS queue_holds (
  id TEXT PRIMARY KEY, engineer TEXT NOT NULL, task_id TEXT NOT NULL, ticket_id TEXT NOT NULL,
  taken_at DOUBLE PRECISION NOT NULL, slice_ends DOUBLE PRECISION NOT NULL,
  released_at DOUBLE PRECISION, released_why TEXT);
CREATE INDEX IF NOT EXISTS queue_holds_open ON queue_holds (released_at, engineer);
CREATE INDEX IF NOT EXISTS queue_holds_task ON queue_holds (task_id, taken_at);
CREATE TABLE IF NOT EXISTS task_waits (
  id TEXT PRIMARY KEY, task_id TEXT NOT NULL, ticket_id TEXT NOT NULL, waiting_on TEXT NOT NULL,
  since DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION, actor TEXT NOT NULL, note TEXT);
CREATE INDEX IF NOT EXISTS task_waits_task ON task_waits (task_id, ended);
CREATE TABLE IF NOT EXISTS work_items (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, obligation_id TEXT, owner TEXT NOT NULL,
  title TEXT NOT NULL, estimate DOUBLE PRECISION NOT NULL, due_at DOUBLE PRECISION NOT NULL,
  state TEXT NOT NULL, result TEXT, created_by TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
  done_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS work_items_ticket ON work_items (ticket_id, created_at);
CREATE INDEX IF NOT EXISTS work_items_owner ON work_items (owner, state, due_at);
CREATE TABLE IF NOT EXISTS calls (
  id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, requested_by TEXT NOT NULL,
  requested_at DOUBLE PRECISION NOT NULL, agenda TEXT NOT NULL, limit_minutes INTEGER NOT NULL,
  attendees TEXT NOT NULL, engineer TEXT, starts_at DOUBLE PRECISION, ends_at DOUBLE PRECISION,
  state TEXT NOT NULL, refused_reason TEXT, minutes TEXT, minuted_at DOUBLE PRECISION,
  minuted_by TEXT, session_id TEXT, ical_uid TEXT, ical_sequence INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS calls_ticket ON calls (ticket_id, requested_at);
CREATE INDEX IF NOT EXISTS calls_engineer ON calls (engineer, starts_at);
CREATE TABLE IF NOT EXISTS session_holders (
  session_id TEXT PRIMARY KEY, owner TEXT NOT NULL, address TEXT NOT NULL,
  since DOUBLE PRECISION NOT NULL, beat DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS recordings (
  session_id TEXT NOT NULL, file TEXT NOT NULL, cast_sha256 TEXT NOT NULL, chain_sha256 TEXT NOT NULL,
  bytes BIGINT NOT NULL, archived DOUBLE PRECISION NOT NULL, archived_by TEXT NOT NULL,
  PRIMARY KEY (session_id, file));
"""

_AUDIT = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, ticket_id TEXT, subject TEXT, detail TEXT);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX IF NOT EXISTS audit_ticket ON audit (ticket_id, seq);
""",
    "postgresql": """
CREATE TABLE IF NOT EXISTS audit (
  seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, ticket_id TEXT, subject TEXT, detail TEXT);
CREATE OR REPLACE FUNCTION mydiag_audit_append_only() RETURNS trigger AS $$
  BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_append_only ON audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION mydiag_audit_append_only();
CREATE INDEX IF NOT EXISTS audit_ticket ON audit (ticket_id, seq);
""",
}


class DatabaseError(Exception):
    """The database cannot be reached or used: one line, never the URL's password."""


Row = Dict[str, Any]


class Tx:
    """One transaction: `all`, `one` and `run` with `?` placeholders."""

    def __init__(self, cursor: Any, dialect: str, pipeline: Any = None) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self._pipeline = pipeline

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def all(self, sql: str, params: Sequence[Any] = ()) -> List[Row]:
        self._cursor.execute(self._sql(sql), tuple(params))
        if self._pipeline is not None:
            self._pipeline.sync()
        if self._cursor.description is None:
            return []
        names = [d[0] for d in self._cursor.description]
        return [dict(zip(names, row)) for row in self._cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Optional[Row]:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._sql(sql), tuple(params))
        if self._pipeline is not None:
            self._pipeline.sync()  # the row count is only known once the server answered
        return self._cursor.rowcount

    def put(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write whose row count nobody needs: on PostgreSQL it travels in the pipeline
        with whatever follows (a failure surfaces at the next answer or at COMMIT, and the
        transaction is rolled back), so it costs no round trip of its own."""
        self._cursor.execute(self._sql(sql), tuple(params))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for each parameter row (psycopg pipelines them in one round trip)."""
        if rows:
            self._cursor.executemany(self._sql(sql), [tuple(r) for r in rows])

    def lock(self, table: str, key: str) -> None:
        """Serialize writers of one row (SQLite's write transaction already does)."""
        if self.dialect == "postgresql":
            # In the pipeline: the statements after it run once it holds the lock.
            self.put(f"SELECT id FROM {table} WHERE id = ? FOR UPDATE", (key,))


class Database:
    dialect = ""

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[Tx]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def once(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write statement as a transaction of its own; its row count.

        On PostgreSQL that is one round trip (an autocommitted statement) instead of
        BEGIN, the statement and COMMIT; a lease claim or renewal needs no more.
        """
        with self.tx() as tx:
            return tx.run(sql, params)

    def create_schema(self) -> None:
        """Create what is missing. Every process and CLI command opens the database; when the
        schema is already this code's (its digest in meta), nothing runs, so no DDL takes
        table locks against a running server's writes (PostgreSQL deadlocked on it)."""
        digest = hashlib.sha256((_TABLES + _AUDIT[self.dialect]).encode()).hexdigest()
        try:
            with self.tx(write=False) as tx:
                row = tx.one("SELECT value FROM meta WHERE key = 'schema_digest'")
            if row and row["value"] == digest:
                return
        except Exception:  # noqa: BLE001 - a new database has no meta table yet
            pass
        with self.tx() as tx:
            if self.dialect == "postgresql":
                # Two processes starting at once must not race on CREATE TABLE.
                tx.run("SELECT pg_advisory_xact_lock(7201905)")
            for statement in (_TABLES + _AUDIT[self.dialect]).split(";\n"):
                if statement.strip():
                    tx.run(statement)
            tx.run("INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO NOTHING",
                   (str(SCHEMA_VERSION),))
            tx.run("INSERT INTO meta (key, value) VALUES ('schema_digest', ?)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (digest,))


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: List[sqlite3.Connection] = []
        self._guard = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot open the database {self.path}: {exc}") from None
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[Tx]:
        conn = self._conn()
        cursor = conn.cursor()
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield Tx(cursor, self.dialect)
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cursor.close()

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()


class PostgresDatabase(Database):
    """A pool of psycopg connections; a broken one is replaced, not reused.

    Measured under 200 concurrent uploads (bench/README.md, issue 18): a write
    transaction runs in psycopg's pipeline mode, so BEGIN travels with its first
    statement instead of costing a round trip of its own, and the pool holds as many
    connections as the server has worker threads (Starlette's 40, plus the background
    workers), so that a request never waits for a connection while another holds one
    waiting on a row lock. `MYDIAG_PG_POOL` sets another size (N processes on one
    PostgreSQL need N times the pool within its max_connections).
    """

    dialect = "postgresql"

    def __init__(self, url: str, size: int = 0) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        size = size or _pool_size()
        self.size = size
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._checkin(self._connect())

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"cannot connect to PostgreSQL: {first}") from None

    def _checkin(self, conn: Any) -> None:
        self._pool.put(conn)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._slots:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            healthy = True
            try:
                yield conn
            except self._psycopg.Error:
                # A failed statement can leave a pipeline or the session half-done: a fresh
                # connection costs less than finding out.
                healthy = False
                raise
            finally:
                if healthy and not conn.closed:
                    self._checkin(conn)
                else:
                    conn.close()

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[Tx]:
        with self._connection() as conn:
            if not write:
                # Reads run as single autocommitted statements: no BEGIN/COMMIT round trips.
                with conn.cursor() as cursor:
                    yield Tx(cursor, self.dialect)
                return
            with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as cursor:
                yield Tx(cursor, self.dialect, pipeline)

    def once(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._connection() as conn, conn.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), tuple(params))
            return cursor.rowcount

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def _pool_size() -> int:
    text = os.environ.get("MYDIAG_PG_POOL", "")
    return int(text) if text.isdigit() and int(text) > 0 else 48


def open_database(url: str) -> Database:
    """`sqlite:///path` or `postgresql://…`; the schema is created when missing."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "sqlite":
        db: Database = SQLiteDatabase(url[len("sqlite:///"):])
    elif scheme in ("postgresql", "postgres"):
        db = PostgresDatabase(url)
    else:
        raise DatabaseError(f"unsupported database URL scheme {scheme!r} (use postgresql://… or none)")
    db.create_schema()
    return db
