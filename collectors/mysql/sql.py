"""Every SQL statement mydiag sends, by name, with the privilege it needs.

A statement is plain text or a function of the flavor where syntax differs. Nothing
here takes a lock that could stall traffic: no FLUSH, no SHOW TABLE STATUS, no
information_schema scan without a count first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple, Union

from collectors.mysql.flavor import Flavor

Text = Union[str, Callable[[Flavor], str]]


@dataclass(frozen=True)
class Statement:
    name: str
    text: Text
    #: A key of `collectors.mysql.privileges.PRIVILEGES`: what to GRANT when it is denied.
    privilege: str = ""

    def sql(self, flavor: Flavor) -> str:
        return self.text(flavor) if callable(self.text) else self.text


def _stmt(name: str, text: Text, privilege: str = "") -> Statement:
    return Statement(name, text, privilege)


IDENTITY = _stmt(
    "identity",
    "SELECT @@version AS version, @@version_comment AS version_comment,"
    " @@hostname AS hostname, @@server_id AS server_id, @@read_only AS read_only,"
    " @@port AS port, @@datadir AS datadir, @@log_error AS log_error,"
    " @@performance_schema AS performance_schema, @@innodb_page_size AS innodb_page_size,"
    " @@system_time_zone AS system_time_zone, @@time_zone AS time_zone,"
    " UTC_TIMESTAMP(6) AS server_utc_now, CONNECTION_ID() AS connection_id,"
    " CURRENT_USER() AS account",
)

GLOBAL_VARIABLES = _stmt("global_variables", "SHOW GLOBAL VARIABLES")
GLOBAL_STATUS = _stmt("global_status", "SHOW GLOBAL STATUS")
UPTIME = _stmt("uptime", "SHOW GLOBAL STATUS LIKE 'Uptime'")
INNODB_STATUS = _stmt("innodb_status", "SHOW ENGINE INNODB STATUS", "process")
INNODB_MUTEX = _stmt("innodb_mutex", "SHOW ENGINE INNODB MUTEX", "process")


def _utc(column: str, zone: str = "@@session.time_zone") -> str:
    """A server-local DATETIME/TIMESTAMP column as UTC ISO 8601 (`…Z`). performance_schema
    shows times in the session's time zone; InnoDB's information_schema tables in the
    server's system time zone (`_trx_utc`). `%%` because every statement is formatted with
    its parameters."""
    return (f"DATE_FORMAT(CONVERT_TZ({column}, {zone}, '+00:00'),"
            " '%%Y-%%m-%%dT%%H:%%i:%%sZ')")


def _trx_utc(column: str) -> str:
    """An INNODB_TRX time (the OS's local time, whatever @@time_zone says) as UTC."""
    return _utc(column, "'SYSTEM'")


def _trx_age(column: str) -> str:
    """Seconds since an INNODB_TRX time, right also when @@time_zone is not the system's."""
    return f"TIMESTAMPDIFF(SECOND, CONVERT_TZ({column}, 'SYSTEM', '+00:00'), UTC_TIMESTAMP())"


#: Every connection, with what each flavor adds: MariaDB's TIME_MS, STAGE/PROGRESS, memory,
#: examined rows and OS thread id (TID); MySQL's OS thread id from performance_schema.threads.
PROCESSLIST = _stmt(
    "processlist",
    lambda f: (
        "SELECT ID AS id, USER AS user, HOST AS host, DB AS db, COMMAND AS command,"
        " TIME AS time, TIME_MS AS time_ms, STATE AS state, STAGE AS stage,"
        " MAX_STAGE AS max_stage, PROGRESS AS progress, MEMORY_USED AS memory_used,"
        " MAX_MEMORY_USED AS max_memory_used, EXAMINED_ROWS AS examined_rows,"
        " QUERY_ID AS query_id, TID AS os_thread_id, INFO AS info"
        " FROM information_schema.PROCESSLIST ORDER BY TIME DESC LIMIT 1000"
        if f.is_mariadb
        else "SELECT p.ID AS id, p.USER AS user, p.HOST AS host, p.DB AS db,"
        " p.COMMAND AS command, p.TIME AS time, p.STATE AS state,"
        " t.THREAD_OS_ID AS os_thread_id, p.INFO AS info"
        " FROM information_schema.PROCESSLIST p"
        " LEFT JOIN performance_schema.threads t ON t.PROCESSLIST_ID = p.ID"
        " ORDER BY p.TIME DESC LIMIT 1000"
    ),
    "process",
)

#: The processlist without performance_schema (MySQL, when SELECT on it is not granted).
PROCESSLIST_PLAIN = _stmt(
    "processlist",
    "SELECT ID AS id, USER AS user, HOST AS host, DB AS db, COMMAND AS command,"
    " TIME AS time, STATE AS state, INFO AS info FROM information_schema.PROCESSLIST"
    " ORDER BY TIME DESC LIMIT 1000",
    "process",
)

REPLICA_STATUS = _stmt("replica_status", lambda f: f.replica_status_statement, "replica_monitor")
BINLOG_STATUS = _stmt("binlog_status", lambda f: f.binlog_status_statement, "binlog_monitor")
BINARY_LOGS = _stmt("binary_logs", "SHOW BINARY LOGS", "binlog_monitor")
GTID_STATE = _stmt(
    "gtid_state",
    lambda f: (
        "SELECT @@gtid_domain_id AS gtid_domain_id, @@gtid_binlog_pos AS gtid_binlog_pos,"
        " @@gtid_current_pos AS gtid_current_pos, @@gtid_slave_pos AS gtid_slave_pos,"
        " @@gtid_strict_mode AS gtid_strict_mode"
        if f.is_mariadb
        else "SELECT @@gtid_mode AS gtid_mode, @@enforce_gtid_consistency AS"
        " enforce_gtid_consistency, @@gtid_executed AS gtid_executed,"
        " @@gtid_purged AS gtid_purged"
    ),
)

INNODB_TRX = _stmt(
    "innodb_trx",
    "SELECT trx_id, trx_state, trx_started,"
    f" {_trx_utc('trx_started')} AS trx_started_utc, trx_requested_lock_id, trx_wait_started,"
    f" {_trx_utc('trx_wait_started')} AS trx_wait_started_utc, trx_weight,"
    " trx_mysql_thread_id, trx_query, trx_operation_state, trx_tables_in_use,"
    " trx_tables_locked, trx_lock_structs, trx_rows_locked, trx_rows_modified,"
    f" trx_isolation_level, {_trx_age('trx_started')} AS age_seconds"
    " FROM information_schema.INNODB_TRX ORDER BY trx_started LIMIT 200",
    "process",
)

#: Who blocks whom, joined on the server: the waiting and the blocking transaction, their
#: threads, hosts and statements, how long the blocker has been idle (its connection
#: sleeping inside the transaction), and the table, index and lock modes.
_WAITS_8 = (
    "SELECT w.REQUESTING_ENGINE_TRANSACTION_ID AS requesting_trx_id,"
    " w.BLOCKING_ENGINE_TRANSACTION_ID AS blocking_trx_id,"
    " w.REQUESTING_THREAD_ID AS requesting_thread_id,"
    " w.BLOCKING_THREAD_ID AS blocking_thread_id,"
    " r.trx_mysql_thread_id AS waiting_thread, r.trx_query AS waiting_query,"
    f" {_trx_age('r.trx_wait_started')} AS wait_seconds,"
    " rt.PROCESSLIST_USER AS waiting_user, rt.PROCESSLIST_HOST AS waiting_host,"
    " b.trx_mysql_thread_id AS blocking_thread, b.trx_query AS blocking_query,"
    " b.trx_state AS blocking_trx_state, b.trx_started AS blocking_trx_started,"
    f" {_trx_utc('b.trx_started')} AS blocking_trx_started_utc,"
    f" {_trx_age('b.trx_started')} AS blocking_trx_seconds,"
    " bt.PROCESSLIST_USER AS blocking_user, bt.PROCESSLIST_HOST AS blocking_host,"
    " bt.PROCESSLIST_COMMAND AS blocking_command,"
    " IF(bt.PROCESSLIST_COMMAND = 'Sleep', bt.PROCESSLIST_TIME, 0) AS blocking_idle_seconds,"
    " CONCAT('`', rl.OBJECT_SCHEMA, '`.`', rl.OBJECT_NAME, '`') AS locked_table,"
    " rl.INDEX_NAME AS locked_index, rl.LOCK_TYPE AS lock_type,"
    " rl.LOCK_MODE AS waiting_lock_mode, bl.LOCK_MODE AS blocking_lock_mode"
    " FROM performance_schema.data_lock_waits w"
    " JOIN information_schema.INNODB_TRX r ON r.trx_id = w.REQUESTING_ENGINE_TRANSACTION_ID"
    " JOIN information_schema.INNODB_TRX b ON b.trx_id = w.BLOCKING_ENGINE_TRANSACTION_ID"
    " LEFT JOIN performance_schema.data_locks rl"
    " ON rl.ENGINE_LOCK_ID = w.REQUESTING_ENGINE_LOCK_ID AND rl.ENGINE = w.ENGINE"
    " LEFT JOIN performance_schema.data_locks bl"
    " ON bl.ENGINE_LOCK_ID = w.BLOCKING_ENGINE_LOCK_ID AND bl.ENGINE = w.ENGINE"
    " LEFT JOIN performance_schema.threads rt ON rt.THREAD_ID = w.REQUESTING_THREAD_ID"
    " LEFT JOIN performance_schema.threads bt ON bt.THREAD_ID = w.BLOCKING_THREAD_ID"
    " LIMIT 200"
)
_WAITS_IS = (
    "SELECT w.requesting_trx_id, w.requested_lock_id, w.blocking_trx_id, w.blocking_lock_id,"
    " r.trx_mysql_thread_id AS waiting_thread, r.trx_query AS waiting_query,"
    f" {_trx_age('r.trx_wait_started')} AS wait_seconds,"
    " rp.USER AS waiting_user, rp.HOST AS waiting_host,"
    " b.trx_mysql_thread_id AS blocking_thread, b.trx_query AS blocking_query,"
    " b.trx_state AS blocking_trx_state, b.trx_started AS blocking_trx_started,"
    f" {_trx_utc('b.trx_started')} AS blocking_trx_started_utc,"
    f" {_trx_age('b.trx_started')} AS blocking_trx_seconds,"
    " bp.USER AS blocking_user, bp.HOST AS blocking_host, bp.COMMAND AS blocking_command,"
    " IF(bp.COMMAND = 'Sleep', bp.TIME, 0) AS blocking_idle_seconds,"
    " rl.lock_table AS locked_table, rl.lock_index AS locked_index, rl.lock_type AS lock_type,"
    " rl.lock_mode AS waiting_lock_mode, bl.lock_mode AS blocking_lock_mode"
    " FROM information_schema.INNODB_LOCK_WAITS w"
    " JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id"
    " JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id"
    " LEFT JOIN information_schema.INNODB_LOCKS rl ON rl.lock_id = w.requested_lock_id"
    " LEFT JOIN information_schema.INNODB_LOCKS bl ON bl.lock_id = w.blocking_lock_id"
    " LEFT JOIN information_schema.PROCESSLIST rp ON rp.ID = r.trx_mysql_thread_id"
    " LEFT JOIN information_schema.PROCESSLIST bp ON bp.ID = b.trx_mysql_thread_id"
    " LIMIT 200"
)
LOCK_WAITS = _stmt(
    "lock_waits", lambda f: _WAITS_8 if f.has_data_locks else _WAITS_IS, "process"
)

#: Metadata-lock holders (and, on MySQL, waiters): performance_schema.metadata_locks on
#: MySQL; MariaDB's METADATA_LOCK_INFO plugin lists granted locks only.
METADATA_LOCKS = _stmt(
    "metadata_locks",
    lambda f: (
        "SELECT m.THREAD_ID AS thread_id, 'GRANTED' AS lock_status, m.LOCK_MODE AS lock_mode,"
        " m.LOCK_DURATION AS lock_duration, m.LOCK_TYPE AS lock_type,"
        " m.TABLE_SCHEMA AS object_schema, m.TABLE_NAME AS object_name, p.USER AS user,"
        " p.HOST AS host, p.COMMAND AS command, p.TIME AS time, p.STATE AS state,"
        " p.INFO AS info FROM information_schema.METADATA_LOCK_INFO m"
        " LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID"
        " WHERE m.THREAD_ID <> CONNECTION_ID() LIMIT 500"
        if f.is_mariadb
        else "SELECT t.PROCESSLIST_ID AS thread_id, m.LOCK_STATUS AS lock_status,"
        " m.LOCK_TYPE AS lock_mode, m.LOCK_DURATION AS lock_duration,"
        " m.OBJECT_TYPE AS lock_type, m.OBJECT_SCHEMA AS object_schema,"
        " m.OBJECT_NAME AS object_name, t.PROCESSLIST_USER AS user,"
        " t.PROCESSLIST_HOST AS host, t.PROCESSLIST_COMMAND AS command,"
        " t.PROCESSLIST_TIME AS time, t.PROCESSLIST_STATE AS state,"
        " t.PROCESSLIST_INFO AS info FROM performance_schema.metadata_locks m"
        " LEFT JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID"
        " WHERE t.PROCESSLIST_ID IS NULL OR t.PROCESSLIST_ID <> CONNECTION_ID() LIMIT 500"
    ),
    "process",
)

INNODB_METRICS = _stmt(
    "innodb_metrics",
    lambda f: "SELECT NAME AS name, SUBSYSTEM AS subsystem, COUNT AS count, TYPE AS type, "
    + ("ENABLED AS enabled" if f.is_mariadb else "STATUS = 'enabled' AS enabled")
    + " FROM information_schema.INNODB_METRICS",
    "process",
)

PLUGINS = _stmt(
    "plugins",
    "SELECT PLUGIN_NAME AS name, PLUGIN_VERSION AS version, PLUGIN_STATUS AS status,"
    " PLUGIN_TYPE AS type, PLUGIN_LIBRARY AS library, LOAD_OPTION AS load_option"
    " FROM information_schema.PLUGINS",
)
ENGINES = _stmt(
    "engines",
    "SELECT ENGINE AS engine, SUPPORT AS support, TRANSACTIONS AS transactions, XA AS xa,"
    " SAVEPOINTS AS savepoints FROM information_schema.ENGINES",
)

_SYSTEM_SCHEMAS = "('mysql','information_schema','performance_schema','sys')"

#: Cheap even on 20,000 tables (0.06 s measured): no table is opened.
TABLE_COUNT = _stmt(
    "table_count",
    "SELECT TABLE_SCHEMA AS schema_name, COUNT(*) AS tables FROM information_schema.TABLES"
    f" WHERE TABLE_SCHEMA NOT IN {_SYSTEM_SCHEMAS} GROUP BY TABLE_SCHEMA",
)

#: How many InnoDB tables exist, whatever this account may see in information_schema.
STATS_TABLE_COUNT = _stmt(
    "stats_table_count",
    "SELECT COUNT(*) AS tables FROM mysql.innodb_table_stats"
    f" WHERE database_name NOT IN {_SYSTEM_SCHEMAS}",
    "select_stats",
)

#: Sizes from InnoDB's persistent statistics: one small table, no table opened.
STATS_SCHEMA_SIZES = _stmt(
    "stats_schema_sizes",
    "SELECT database_name AS schema_name, 'InnoDB' AS engine, COUNT(*) AS tables,"
    " SUM(clustered_index_size) * @@innodb_page_size AS data_bytes,"
    " SUM(sum_of_other_index_sizes) * @@innodb_page_size AS index_bytes"
    f" FROM mysql.innodb_table_stats WHERE database_name NOT IN {_SYSTEM_SCHEMAS}"
    " GROUP BY database_name",
    "select_stats",
)

#: Never the hash: only the columns that describe the account.
ACCOUNTS = _stmt(
    "accounts",
    lambda f: (
        "SELECT User AS user, Host AS host, plugin, password_expired, is_role,"
        " max_user_connections FROM mysql.user"
        if f.is_mariadb
        else "SELECT User AS user, Host AS host, plugin, account_locked, password_expired,"
        " password_last_changed, password_lifetime, max_user_connections FROM mysql.user"
    ),
    "select_accounts",
)

#: MariaDB keeps the lock flag only in global_priv's JSON; read single keys, never the hash.
ACCOUNTS_GLOBAL_PRIV = _stmt(
    "accounts_global_priv",
    "SELECT User AS user, Host AS host, JSON_VALUE(Priv, '$.plugin') AS plugin,"
    " IFNULL(JSON_VALUE(Priv, '$.account_locked'), 0) AS account_locked,"
    " JSON_VALUE(Priv, '$.password_last_changed') AS password_last_changed,"
    " JSON_VALUE(Priv, '$.password_lifetime') AS password_lifetime,"
    " IFNULL(JSON_VALUE(Priv, '$.is_role'), 0) AS is_role FROM mysql.global_priv",
)

@dataclass(frozen=True)
class PsPart:
    """One performance_schema reading: its columns (alias, expression), the rest of the
    statement (FROM … LIMIT) and the alias its rows are ordered by, descending."""

    name: str
    columns: Tuple[Tuple[str, str], ...]
    tail: str
    order: str = ""

    def select(self) -> str:
        return "SELECT " + ", ".join(f"{expr} AS {alias}" for alias, expr in self.columns) + " " + self.tail


def _ps(part: PsPart) -> Statement:
    PS_PARTS[part.name] = part
    return _stmt(part.name, part.select(), "select_ps")


#: Every performance_schema reading by statement name, for `ps_reading`.
PS_PARTS: Dict[str, PsPart] = {}

PS_DIGESTS = _ps(PsPart(
    "ps_digests",
    (("schema_name", "SCHEMA_NAME"), ("digest", "DIGEST"), ("digest_text", "DIGEST_TEXT"),
     ("calls", "COUNT_STAR"), ("total_seconds", "SUM_TIMER_WAIT/1e12"),
     ("avg_seconds", "AVG_TIMER_WAIT/1e12"), ("max_seconds", "MAX_TIMER_WAIT/1e12"),
     ("lock_seconds", "SUM_LOCK_TIME/1e12"), ("rows_sent", "SUM_ROWS_SENT"),
     ("rows_examined", "SUM_ROWS_EXAMINED"), ("tmp_disk_tables", "SUM_CREATED_TMP_DISK_TABLES"),
     ("full_joins", "SUM_SELECT_FULL_JOIN"), ("no_index_used", "SUM_NO_INDEX_USED"),
     ("first_seen", "FIRST_SEEN"), ("last_seen", "LAST_SEEN"),
     ("first_seen_utc", _utc("FIRST_SEEN")), ("last_seen_utc", _utc("LAST_SEEN"))),
    "FROM performance_schema.events_statements_summary_by_digest"
    " ORDER BY SUM_TIMER_WAIT DESC LIMIT %(limit)s",
    "total_seconds",
))
PS_WAITS = _ps(PsPart(
    "ps_waits",
    (("event", "EVENT_NAME"), ("count", "COUNT_STAR"), ("total_seconds", "SUM_TIMER_WAIT/1e12"),
     ("max_seconds", "MAX_TIMER_WAIT/1e12")),
    "FROM performance_schema.events_waits_summary_global_by_event_name"
    " WHERE COUNT_STAR > 0 AND EVENT_NAME <> 'idle'"
    " ORDER BY SUM_TIMER_WAIT DESC LIMIT %(limit)s",
    "total_seconds",
))
PS_FILE_IO = _ps(PsPart(
    "ps_file_io",
    (("file", "FILE_NAME"), ("event", "EVENT_NAME"), ("read_count", "COUNT_READ"),
     ("read_bytes", "SUM_NUMBER_OF_BYTES_READ"), ("write_count", "COUNT_WRITE"),
     ("write_bytes", "SUM_NUMBER_OF_BYTES_WRITE"), ("total_seconds", "SUM_TIMER_WAIT/1e12")),
    "FROM performance_schema.file_summary_by_instance"
    " ORDER BY SUM_TIMER_WAIT DESC LIMIT %(limit)s",
    "total_seconds",
))
PS_TABLE_IO = _ps(PsPart(
    "ps_table_io",
    (("schema_name", "OBJECT_SCHEMA"), ("table_name", "OBJECT_NAME"),
     ("read_count", "COUNT_READ"), ("write_count", "COUNT_WRITE"), ("fetches", "COUNT_FETCH"),
     ("inserts", "COUNT_INSERT"), ("updates", "COUNT_UPDATE"), ("deletes", "COUNT_DELETE"),
     ("total_seconds", "SUM_TIMER_WAIT/1e12")),
    "FROM performance_schema.table_io_waits_summary_by_table WHERE COUNT_STAR > 0"
    " ORDER BY SUM_TIMER_WAIT DESC LIMIT %(limit)s",
    "total_seconds",
))
#: Every statement kind, prepared statements included (MariaDB's digests miss those).
PS_STATEMENTS_BY_EVENT = _ps(PsPart(
    "ps_statements_by_event",
    (("event", "EVENT_NAME"), ("calls", "COUNT_STAR"), ("total_seconds", "SUM_TIMER_WAIT/1e12"),
     ("max_seconds", "MAX_TIMER_WAIT/1e12"), ("lock_seconds", "SUM_LOCK_TIME/1e12"),
     ("errors", "SUM_ERRORS"), ("rows_sent", "SUM_ROWS_SENT"),
     ("rows_examined", "SUM_ROWS_EXAMINED")),
    "FROM performance_schema.events_statements_summary_global_by_event_name"
    " WHERE COUNT_STAR > 0 ORDER BY SUM_TIMER_WAIT DESC LIMIT %(limit)s",
    "total_seconds",
))
#: What is being recorded at all, so a zero can be told from "not instrumented".
PS_CONSUMERS = _ps(PsPart(
    "ps_consumers",
    (("name", "NAME"), ("enabled", "ENABLED")),
    "FROM performance_schema.setup_consumers",
))
PS_INSTRUMENTS = _ps(PsPart(
    "ps_instruments",
    (("class", "SUBSTRING_INDEX(NAME, '/', 1)"), ("instruments", "COUNT(*)"),
     ("enabled", "SUM(ENABLED = 'YES')"), ("timed", "SUM(TIMED = 'YES')")),
    "FROM performance_schema.setup_instruments GROUP BY SUBSTRING_INDEX(NAME, '/', 1)",
))
PS_MEMORY = _ps(PsPart(
    "ps_memory",
    (("event", "EVENT_NAME"), ("current_bytes", "CURRENT_NUMBER_OF_BYTES_USED"),
     ("high_bytes", "HIGH_NUMBER_OF_BYTES_USED"), ("current_count", "CURRENT_COUNT_USED")),
    "FROM performance_schema.memory_summary_global_by_event_name"
    " WHERE CURRENT_NUMBER_OF_BYTES_USED > 0"
    " ORDER BY CURRENT_NUMBER_OF_BYTES_USED DESC LIMIT %(limit)s",
    "current_bytes",
))


def ps_folds(flavor: Flavor) -> bool:
    """Whether the server has JSON_ARRAYAGG/JSON_OBJECT (MariaDB 10.5, MySQL 5.7.22)."""
    return flavor.at_least(10, 5, 0) if flavor.is_mariadb else flavor.at_least(5, 7, 22)


def ps_reading(name: str, parts: Tuple[Statement, ...]) -> Statement:
    """Several performance_schema readings in one statement: a row per reading, its rows as
    one JSON array (NULL when it has none). JSON_ARRAYAGG keeps no order, so each row
    carries its sort column and `collectors.mysql.perfschema` orders them again; the LIMIT
    sits in a derived table, where it applies to the reading's own ORDER BY."""
    selects = []
    for n, stmt in enumerate(parts):
        part = PS_PARTS[stmt.name]
        pairs = ", ".join(f"'{alias}', `{alias}`" for alias, _ in part.columns)
        selects.append(
            f"SELECT '{part.name}' AS part, (SELECT JSON_ARRAYAGG(JSON_OBJECT({pairs}))"
            f" FROM ({part.select()}) AS r{n}) AS rows_json"
        )
    return _stmt(name, " UNION ALL ".join(selects), "select_ps")


GALERA_STATUS = _stmt("galera_status", "SHOW GLOBAL STATUS LIKE 'wsrep%%'")
GROUP_REPLICATION_MEMBERS = _stmt(
    "group_replication_members",
    "SELECT * FROM performance_schema.replication_group_members",
    "select_ps",
)

OPEN_TABLES = _stmt(
    "open_tables",
    "SHOW OPEN TABLES WHERE In_use > 0",
)

#: The agent's monitoring check: only the status variables its triggers name (one statement).
MONITOR_STATUS = _stmt("monitor_status", "SHOW GLOBAL STATUS WHERE Variable_name IN %(names)s")

#: The agent's processlist predicates, grouped on the server so the answer stays small.
MONITOR_PROCESSLIST = _stmt(
    "monitor_processlist",
    "SELECT COMMAND AS command, STATE AS state, USER AS user, COUNT(*) AS connections,"
    " MAX(IF(COMMAND = 'Query', TIME, NULL)) AS longest"
    " FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
    " GROUP BY COMMAND, STATE, USER",
    "process",
)
