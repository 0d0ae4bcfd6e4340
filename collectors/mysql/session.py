"""A safe session on a production server.

Read-only, autocommit, a tiny `lock_wait_timeout`, a server-side time limit on every
statement (`max_statement_time` on MariaDB, `MAX_EXECUTION_TIME` on MySQL) and a
client read timeout behind it. Errors come back as `CollectorError`s that say what
happened and what to do; a missing privilege names the GRANT.
"""

from __future__ import annotations

import contextlib
import getpass
import re
import socket as _socket
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pymysql
import pymysql.cursors

from collectors.mysql import privileges
from collectors.mysql.flavor import Flavor
from collectors.mysql.sql import IDENTITY, Statement
from collectors.registry import CollectorError

_ACCESS_DENIED = {1045, 1698}
_NO_PRIVILEGE = {1044, 1142, 1143, 1227, 1370, 4151}
_TIMEOUT = {1969, 3024, 1317, 1205, 1028}
_GONE = {2006, 2013, 2055, 2014}
_ABSENT = {1109, 1146, 1193, 1286, 1049}

#: "Can't connect to MySQL server on 'h' ([Errno 111] Connection refused)": the OS's words.
_OS_WORDS = re.compile(r"\((?:\[Errno -?\d+\] )?([^()]*)\)\s*$")
_CONNECT_FIXES = {
    1040: "try again when connections have closed, or raise max_connections on the server",
    1129: "unblock this host on the server: FLUSH HOSTS (or `mariadb-admin flush-hosts`)",
}

CONNECT_TIMEOUT = 3.0
LOCK_WAIT_TIMEOUT = 1


@dataclass
class ConnectSpec:
    host: Optional[str] = None
    port: int = 3306
    socket: Optional[str] = None
    user: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    ssl_ca: Optional[str] = None
    ssl_cert: Optional[str] = None
    ssl_key: Optional[str] = None
    ssl_required: bool = False
    sources: List[str] = field(default_factory=list)

    @property
    def effective_user(self) -> str:
        return self.user or getpass.getuser()

    def describe(self) -> str:
        """Where this connects, for messages: never the password."""
        if self.socket:
            return f"'{self.effective_user}' via socket {self.socket}"
        return f"'{self.effective_user}' at {self.host}:{self.port}"


def _unreachable_fix(spec: ConnectSpec, words: str = "") -> str:
    if "timed out" in words:
        return (f"check that this is the server's address and that no firewall drops the "
                f"connection; a server that cannot answer within {CONNECT_TIMEOUT:g}s may be "
                f"stalled")
    if spec.socket:
        return ("start the server, or give --socket the path of the socket it listens on "
                "(the server's `socket` variable names it)")
    return "start the server, or give the --host and --port (or --socket) of one that is running"


class AccessDenied(CollectorError):
    pass


class ServerDown(CollectorError):
    pass


class ServerGone(CollectorError):
    pass


class StatementTimeout(CollectorError):
    pass


class MissingPrivilege(CollectorError):
    pass


class NotAvailable(CollectorError):
    """The table, variable or statement does not exist on this server."""


@dataclass
class Streamed:
    """What `Session.stream_rows` kept of one result: its columns, at most `keep` rows, and
    whether the server had more."""

    names: List[str]
    rows: List[tuple]
    more: bool = False
    warnings: List[str] = field(default_factory=list)
    stopped_at_bytes: bool = False


def _cell_size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, bytearray)) else 8


def _cut(value: Any, chars: int) -> Any:
    """A cell cut to `chars` characters (bytes: four per character, as UTF-8 could need)."""
    if isinstance(value, str) and len(value) > chars:
        return value[:chars]
    if isinstance(value, (bytes, bytearray)) and len(value) > 4 * chars:
        return bytes(value[:4 * chars])
    return value


class Session:
    """One connection to the server, reconnected once if lost, with a reserve to interrupt."""

    def __init__(self, spec: ConnectSpec, *, statement_timeout: float = 3.0) -> None:
        self.spec = spec
        self.statement_timeout = statement_timeout
        self.flavor = Flavor("mysql", (0, 0, 0))
        self.identity: Dict[str, Any] = {}
        self.statements = 0
        self._conn: Optional[pymysql.connections.Connection] = None
        self._down: Optional[ServerDown] = None
        self._lock = threading.Lock()

    # -- connecting -------------------------------------------------------

    def _open(self) -> pymysql.connections.Connection:
        spec = self.spec
        kwargs: Dict[str, Any] = dict(
            user=spec.effective_user,
            password=spec.password or "",
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=self.statement_timeout + 2,
            write_timeout=self.statement_timeout + 2,
            autocommit=True,
            charset="utf8mb4",
            cursorclass=pymysql.cursors.DictCursor,
            program_name="mydiag",
        )
        if spec.socket:
            kwargs["unix_socket"] = spec.socket
        else:
            kwargs["host"], kwargs["port"] = spec.host, spec.port
        if spec.ssl_ca or spec.ssl_cert or spec.ssl_required:
            # TLS is a deliberate choice (it costs ~50 ms per connect): on when asked for.
            kwargs["ssl"] = {
                k: v
                for k, v in (("ca", spec.ssl_ca), ("cert", spec.ssl_cert), ("key", spec.ssl_key))
                if v
            } or {"check_hostname": False}
        else:
            kwargs["ssl_disabled"] = True
        try:
            conn = pymysql.connect(**kwargs)
        except pymysql.err.MySQLError as exc:
            raise self._connect_error(exc) from None
        except (OSError, _socket.timeout) as exc:
            raise ServerDown(
                f"cannot connect to {spec.describe()}: server not reachable ({exc})",
                _unreachable_fix(spec, str(exc)),
            ) from None
        server_version = conn.get_server_info() or ""
        family = "mariadb" if "mariadb" in server_version.lower() else "mysql"
        with conn.cursor() as cur:
            cur.execute(self._session_settings(family))
            self.statements += 1
        return conn

    def _session_settings(self, family: str) -> str:
        if family == "mariadb":
            return (
                f"SET SESSION tx_read_only=1, lock_wait_timeout={LOCK_WAIT_TIMEOUT},"
                f" innodb_lock_wait_timeout={LOCK_WAIT_TIMEOUT},"
                f" max_statement_time={self.statement_timeout:g}"
            )
        return (
            f"SET SESSION transaction_read_only=1, lock_wait_timeout={LOCK_WAIT_TIMEOUT},"
            f" innodb_lock_wait_timeout={LOCK_WAIT_TIMEOUT},"
            f" max_execution_time={int(self.statement_timeout * 1000)}"
        )

    def _connect_error(self, exc: pymysql.err.MySQLError) -> CollectorError:
        code = exc.args[0] if exc.args else 0
        where = self.spec.describe()
        # The server's (or the OS's) own words stay: DBAs diagnose from them.
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        if code in _ACCESS_DENIED:
            return AccessDenied(
                f"access denied for {where}: {message}",
                "check the user and password (in the option file, or type the password at "
                "--ask-pass); run `mydiag grants` for the SQL that creates a diagnostics user",
            )
        if code in (2002, 2003):
            found = _OS_WORDS.search(message)
            words = found.group(1) if found else message
            return ServerDown(f"cannot connect to {where}: server not reachable ({words})",
                              _unreachable_fix(self.spec, words))
        return ServerDown(f"cannot connect to {where}: {message}", _CONNECT_FIXES.get(code, ""))

    def connect(self) -> None:
        """Connect and learn the flavor. Raises AccessDenied or ServerDown."""
        self._conn = self._open()
        rows = self._execute(IDENTITY.sql(self.flavor), None, IDENTITY, None)
        self.identity = rows[0] if rows else {}
        self.flavor = Flavor.parse(
            str(self.identity.get("version", "")), str(self.identity.get("version_comment", ""))
        )

    @property
    def connection_id(self) -> Optional[int]:
        return self._conn.thread_id() if self._conn else None

    def close(self) -> None:
        if self._conn is not None:
            # Closing a dead socket may fail in any way; the connection is gone either way.
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def interrupt(self) -> None:
        """Stop the running statement from a reserve connection, then drop ours."""
        victim = self.connection_id
        conn, self._conn = self._conn, None
        if victim is not None and self._down is None:
            try:
                reserve = self._open()
                try:
                    with reserve.cursor() as cur:
                        cur.execute(f"KILL QUERY {int(victim)}")
                        self.statements += 1
                finally:
                    reserve.close()
            except (CollectorError, pymysql.err.MySQLError, OSError):
                pass
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- querying ---------------------------------------------------------

    def query(
        self,
        stmt: Statement,
        params: Optional[Dict[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> List[Dict[str, Any]]:
        """Run a named statement and return its rows as dicts."""
        return self._execute(self._limited(stmt.sql(self.flavor), timeout), params, stmt, timeout)

    def _limited(self, sql: str, timeout: Optional[float]) -> str:
        if timeout is None or timeout == self.statement_timeout:
            return sql
        if self.flavor.is_mariadb:
            return f"SET STATEMENT max_statement_time={timeout:g} FOR {sql}"
        if sql.upper().startswith("SELECT "):
            return f"SELECT /*+ MAX_EXECUTION_TIME({int(timeout * 1000)}) */ {sql[7:]}"
        return sql

    def _execute(
        self,
        sql: str,
        params: Optional[Dict[str, Any]],
        stmt: Statement,
        timeout: Optional[float],
    ) -> List[Dict[str, Any]]:
        if self._down is not None:
            raise self._down
        if self._conn is None:
            try:
                self._conn = self._open()
            except ServerDown as exc:
                self._down = exc
                raise
        conn = self._conn
        try:
            with self._lock:
                if timeout is not None:
                    conn._sock.settimeout(timeout + 2)  # type: ignore[union-attr]
                with conn.cursor() as cur:
                    self.statements += 1
                    cur.execute(sql, params or {})
                    rows = list(cur.fetchall())
                if timeout is not None:
                    conn._sock.settimeout(self.statement_timeout + 2)  # type: ignore[union-attr]
                return rows
        except pymysql.err.MySQLError as exc:
            raise self._statement_error(exc, stmt, conn, timeout) from None
        except (OSError, AttributeError) as exc:
            self._conn = None
            raise ServerGone(f"{stmt.name}: connection lost ({exc})", "") from None

    def stream_rows(self, sql: str, keep: int, stmt: Statement, *, cell_chars: Optional[int] = None,
                    max_bytes: Optional[int] = None) -> Streamed:
        """Run one statement and keep at most `keep` rows of its result, unbuffered.

        The caller caps what the server sends (e.g. `sql_select_limit`); should the server
        send more than `keep` rows anyway, the connection is dropped rather than read to
        the end, so a huge result never reaches this process whole. Rows alone do not bound
        bytes (1001 cells of `REPEAT('a', 16000000)` are 16 GB): with `cell_chars` each cell
        is cut as it arrives, and past `max_bytes` of one result (counted before the cut)
        reading stops and the connection is dropped; `stopped_at_bytes` says so. After a
        drop the session is disconnected: the caller reconnects.
        """
        if self._conn is None:
            raise ServerGone(f"{stmt.name}: not connected", "")
        conn = self._conn
        try:
            with self._lock:
                cursor = conn.cursor(pymysql.cursors.SSCursor)
                self.statements += 1
                cursor.execute(sql)
                names = [d[0] for d in cursor.description or ()]
                rows: List[tuple] = []
                read = 0
                while names:
                    row = cursor.fetchone()
                    if row is None:
                        break
                    if len(rows) >= keep:
                        return self._drop(conn, cursor, Streamed(names, rows, more=True))
                    read += sum(_cell_size(value) for value in row)
                    rows.append(row if cell_chars is None else tuple(_cut(v, cell_chars) for v in row))
                    if max_bytes is not None and read > max_bytes:
                        cut = Streamed(names, rows, more=True, stopped_at_bytes=True)
                        return self._drop(conn, cursor, cut)
                count = cursor.warning_count
                cursor.close()
                warnings: List[str] = []
                if count:
                    with conn.cursor(pymysql.cursors.Cursor) as cur:
                        cur.execute("SHOW WARNINGS")
                        warnings = [f"{level} {code}: {message}" for level, code, message in cur.fetchall()]
                return Streamed(names, rows, more=False, warnings=warnings)
        except pymysql.err.MySQLError as exc:
            raise self._statement_error(exc, stmt, conn, None) from None
        except (OSError, AttributeError) as exc:
            self._conn = None
            raise ServerGone(f"{stmt.name}: connection lost ({exc})", "") from None

    def _drop(self, conn: Any, cursor: Any, kept: Streamed) -> Streamed:
        """Stop reading a result: drop its connection rather than read it to the end."""
        self._conn = None
        result = getattr(cursor, "_result", None)
        if result is not None:
            result.unbuffered_active = False  # else its finalizer reads on the closed socket
        conn._force_close()
        return kept

    def _statement_error(
        self,
        exc: pymysql.err.MySQLError,
        stmt: Statement,
        conn: pymysql.connections.Connection,
        timeout: Optional[float],
    ) -> CollectorError:
        code = exc.args[0] if exc.args else 0
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        limit = timeout if timeout is not None else self.statement_timeout
        if code in _GONE or not conn.open:
            if conn is self._conn:
                self._conn = None
            if "timed out" in message:
                return StatementTimeout(
                    f"{stmt.name}: no answer within {limit + 2:g}s (client read timeout)", ""
                )
            return ServerGone(f"{stmt.name}: lost the connection to the server ({message})", "")
        if code in _TIMEOUT:
            what = "waited too long for a lock" if code == 1205 else f"exceeded the {limit:g}s limit"
            return StatementTimeout(f"{stmt.name}: {what}, stopped by the server", "")
        if code in _NO_PRIVILEGE or code in _ACCESS_DENIED:
            fix = ""
            if stmt.privilege:
                fix = privileges.grant_statement(
                    self.flavor, stmt.privilege, f"'{self.spec.effective_user}'@'<host>'"
                )
            return MissingPrivilege(f"{stmt.name}: permission denied ({message})", fix)
        if code in _ABSENT:
            return NotAvailable(f"{stmt.name}: not available on this server ({message})", "")
        return CollectorError(f"{stmt.name}: server error {code}: {message}", "")
