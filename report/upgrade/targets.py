"""What changes between a server's version and an upgrade target: the facts the checks read.

One place knows each fact: the targets and the versions they accept, the variables each
version removed or renamed, the defaults it changed, the SQL modes it dropped and the
words it reserved. The tables come from the vendors' upgrade notes (MySQL's "Option and
Variable Changes" pages and upgrade checker, MariaDB's "Upgrading from … to …" pages);
a version is where the change happened, so a check applies it when the server is older
than that version and the target is at least that version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

Series = Tuple[int, int]


@dataclass(frozen=True)
class Target:
    flavor: str  # "mysql" or "mariadb"
    version: Series
    #: The oldest series the vendor supports upgrading from in place, straight to this one.
    direct_from: Series
    #: The long-term series a direct upgrade passes over (read their notes too).
    lts_between: Tuple[Series, ...] = ()

    @property
    def label(self) -> str:
        return f"{'MariaDB' if self.flavor == 'mariadb' else 'MySQL'} {self.version[0]}.{self.version[1]}"

    @property
    def key(self) -> str:
        return f"{self.flavor} {self.version[0]}.{self.version[1]}"


#: The upgrade targets, by key (`mysql 8.4`).
TARGETS: Dict[str, Target] = {t.key: t for t in (
    Target("mysql", (8, 0), direct_from=(5, 7)),
    Target("mysql", (8, 4), direct_from=(8, 0)),
    Target("mariadb", (11, 4), direct_from=(10, 0), lts_between=((10, 6), (10, 11))),
    Target("mariadb", (11, 8), direct_from=(10, 0), lts_between=((10, 6), (10, 11), (11, 4))),
)}

_TARGET = re.compile(r"^\s*(?:(mysql|mariadb)[\s:=/_-]*)?(\d{1,2})\.(\d{1,2})(?:\.\d{1,3})?\s*$", re.I)


def parse_target(text: str, bundle_flavor: Optional[str] = None) -> Target:
    """`mysql 8.4`, `mariadb:11.8`, `MariaDB-11.4.2`, or a bare `11.4` (the flavor taken from
    the bundle, or from the version when only one flavor has it). Raises ValueError with one
    printable line for an unknown target or one of another flavor than the bundle's server."""
    known = ", ".join(TARGETS)
    match = _TARGET.match(str(text or "")[:40])
    if not match:
        raise ValueError(f"upgrade target {str(text)[:40]!r} is not like 'mysql 8.4' or 'mariadb 11.4' "
                         f"(known: {known})")
    flavor = (match.group(1) or "").lower()
    series = (int(match.group(2)), int(match.group(3)))
    if not flavor:
        candidates = [t for t in TARGETS.values() if t.version == series
                      and (bundle_flavor is None or t.flavor == bundle_flavor)]
        if len(candidates) == 1:
            return candidates[0]
        if bundle_flavor and any(t.version == series for t in TARGETS.values()):
            raise ValueError(f"upgrade target {series[0]}.{series[1]} is not a "
                             f"{_name(bundle_flavor)} version, and the bundle's server is "
                             f"{_name(bundle_flavor)} (known: {known})")
        raise ValueError(f"unknown upgrade target {series[0]}.{series[1]} (known: {known})")
    target = TARGETS.get(f"{flavor} {series[0]}.{series[1]}")
    if target is None:
        raise ValueError(f"unknown upgrade target {_name(flavor)} {series[0]}.{series[1]} (known: {known})")
    if bundle_flavor and target.flavor != bundle_flavor:
        raise ValueError(f"the bundle's server is {_name(bundle_flavor)}: it cannot be upgraded in "
                         f"place to {target.label} (known: {known})")
    return target


def _name(flavor: str) -> str:
    return "MariaDB" if flavor == "mariadb" else "MySQL"


@dataclass(frozen=True)
class Removed:
    """A server variable (and its option) that `version` removed; `instead` replaces it."""

    name: str
    version: Tuple[int, ...]
    instead: str = ""
    #: The old series' default, where comparing the running value with it says something.
    default: Optional[str] = None


def _removed(version: Tuple[int, ...], *entries: object) -> Tuple[Removed, ...]:
    out = []
    for entry in entries:
        if isinstance(entry, tuple):
            out.append(Removed(entry[0], version, *entry[1:]))
        else:
            out.append(Removed(str(entry), version))
    return tuple(out)


_QC = "nothing (the query cache is gone: cache in the application or a proxy)"

REMOVED: Dict[str, Tuple[Removed, ...]] = {
    "mysql": (
        *_removed((8, 0),
                  ("query_cache_type", _QC, "OFF"), ("query_cache_size", _QC, "1048576"),
                  ("query_cache_limit", _QC, "1048576"), ("query_cache_min_res_unit", _QC),
                  ("query_cache_wlock_invalidate", _QC, "OFF"),
                  ("tx_isolation", "transaction_isolation"), ("tx_read_only", "transaction_read_only"),
                  ("innodb_file_format", "nothing (Barracuda is the only format)"),
                  "innodb_file_format_check", "innodb_file_format_max",
                  ("innodb_large_prefix", "nothing (large prefixes are always on)"),
                  ("innodb_support_xa", "nothing (always on)"),
                  ("innodb_undo_logs", "innodb_rollback_segments"),
                  ("innodb_locks_unsafe_for_binlog", "transaction_isolation=READ-COMMITTED", "OFF"),
                  "sync_frm", ("secure_auth", "nothing (always on)"), ("old_passwords", "", "0"),
                  ("log_warnings", "log_error_verbosity"), "date_format", "datetime_format",
                  "time_format", "max_tmp_tables", "multi_range_count", "metadata_locks_cache_size",
                  "metadata_locks_hash_instances", "ignore_builtin_innodb",
                  "log_builtin_as_identified_by_password", "ignore_db_dirs", "temp_pool",
                  ("innodb_stats_sample_pages", "innodb_stats_transient_sample_pages"),
                  ("des_key_file", "nothing (DES_ENCRYPT is gone: use AES_ENCRYPT)")),
        *_removed((8, 2),
                  ("expire_logs_days", "binlog_expire_logs_seconds", "0"),
                  "abort_slave_event_count", "disconnect_slave_event_count"),
        *_removed((8, 3),
                  ("master_info_repository", "nothing (always TABLE)", "TABLE"),
                  ("relay_log_info_repository", "nothing (always TABLE)", "TABLE"),
                  "master_info_file", "relay_log_info_file",
                  ("log_bin_use_v1_row_events", "", "OFF"),
                  ("transaction_write_set_extraction", "nothing (always XXHASH64)", "XXHASH64"),
                  ("group_replication_ip_whitelist", "group_replication_ip_allowlist"),
                  ("slave_rows_search_algorithms", "nothing (always INDEX_SCAN,HASH_SCAN)"),
                  ("skip_host_cache", "host_cache_size=0"), "old_style_user_limits",
                  "character_set_client_handshake"),
        *_removed((8, 4),
                  ("default_authentication_plugin", "authentication_policy"),
                  ("binlog_transaction_dependency_tracking", "nothing (always WRITESET)",
                   "COMMIT_ORDER"),
                  "avoid_temporal_upgrade", "show_old_temporals",
                  ("ssl", "tls_version / require_secure_transport"),
                  ("admin_ssl", "admin_tls_version"), "have_openssl", "have_ssl",
                  "group_replication_recovery_complete_at",
                  ("keyring_file_data", "the component_keyring_file component"),
                  ("keyring_encrypted_file_data", "the component_keyring_encrypted_file component"),
                  ("keyring_encrypted_file_password", "the component_keyring_encrypted_file component"),
                  ("authentication_fido_rp_id", "authentication_webauthn_rp_id"),
                  "new", "old"),
    ),
    "mariadb": (
        *_removed((10, 6),
                  ("innodb_buffer_pool_instances", "nothing (one buffer pool)"),
                  ("innodb_log_files_in_group", "nothing (one redo log file)"),
                  "innodb_thread_concurrency", "innodb_thread_sleep_delay", "innodb_commit_concurrency",
                  "innodb_concurrency_tickets", "innodb_adaptive_max_sleep_delay",
                  "innodb_page_cleaners", "innodb_replication_delay", "innodb_undo_logs",
                  "innodb_log_checksums", "innodb_log_compressed_pages", "innodb_log_optimize_ddl",
                  "innodb_lock_schedule_algorithm", "innodb_scrub_log", "innodb_scrub_log_speed",
                  "innodb_background_scrub_data_compressed", "innodb_background_scrub_data_uncompressed",
                  "innodb_background_scrub_data_interval", "innodb_background_scrub_data_check_interval",
                  "innodb_file_format", "innodb_large_prefix"),
        *_removed((11, 0),
                  ("innodb_change_buffering", "nothing (the change buffer is gone)", "none"),
                  ("innodb_change_buffer_max_size", "nothing (the change buffer is gone)", "25")),
        *_removed((11, 1),
                  ("innodb_defragment", "OPTIMIZE TABLE", "OFF"), "innodb_defragment_n_pages",
                  "innodb_defragment_stats_accuracy", "innodb_defragment_fill_factor",
                  "innodb_defragment_fill_factor_n_recs", "innodb_defragment_frequency"),
    ),
}

#: Deprecated, still accepted by the target: a notice. (name, what to use instead).
DEPRECATED: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "mysql": tuple((old, new) for old, new in (
        ("log_slave_updates", "log_replica_updates"), ("slave_parallel_workers", "replica_parallel_workers"),
        ("slave_parallel_type", "replica_parallel_type"),
        ("slave_preserve_commit_order", "replica_preserve_commit_order"),
        ("slave_net_timeout", "replica_net_timeout"), ("slave_skip_errors", "replica_skip_errors"),
        ("skip_slave_start", "skip_replica_start"), ("slave_exec_mode", "replica_exec_mode"),
        ("slave_type_conversions", "replica_type_conversions"),
        ("slave_max_allowed_packet", "replica_max_allowed_packet"),
        ("slave_transaction_retries", "replica_transaction_retries"),
        ("slave_compressed_protocol", "replica_compressed_protocol"),
        ("slave_sql_verify_checksum", "replica_sql_verify_checksum"),
        ("slave_load_tmpdir", "replica_load_tmpdir"), ("master_verify_checksum", "source_verify_checksum"),
        ("sync_master_info", "sync_source_info"), ("log_bin_trust_function_creators", ""),
        ("innodb_log_file_size", "innodb_redo_log_capacity"),
        ("innodb_log_files_in_group", "innodb_redo_log_capacity"),
    )),
    "mariadb": (
        ("innodb_purge_rseg_truncate_frequency", ""), ("big_tables", ""),
        ("keep_files_on_create", ""), ("innodb_prefix_index_cluster_optimization", ""),
    ),
}


@dataclass(frozen=True)
class DefaultChange:
    name: str
    version: Series
    old: str
    new: str
    effect: str


DEFAULTS: Dict[str, Tuple[DefaultChange, ...]] = {
    "mysql": (
        DefaultChange("character_set_server", (8, 0), "latin1", "utf8mb4",
                      "new tables and schemas are utf8mb4 (up to 4 bytes per character)"),
        DefaultChange("collation_server", (8, 0), "latin1_swedish_ci", "utf8mb4_0900_ai_ci",
                      "comparisons and sort order of new columns change"),
        DefaultChange("explicit_defaults_for_timestamp", (8, 0), "OFF", "ON",
                      "TIMESTAMP columns no longer get implicit DEFAULT/ON UPDATE CURRENT_TIMESTAMP"),
        DefaultChange("event_scheduler", (8, 0), "OFF", "ON", "defined events start running"),
        DefaultChange("log_bin", (8, 0), "OFF", "ON", "binary logs are written (disk space, I/O)"),
        DefaultChange("max_allowed_packet", (8, 0), "4194304", "67108864", "larger packets accepted"),
        DefaultChange("innodb_autoinc_lock_mode", (8, 0), "1", "2",
                      "interleaved auto-increment: gaps and statement-based replication unsafe"),
        DefaultChange("default_authentication_plugin", (8, 0), "mysql_native_password",
                      "caching_sha2_password",
                      "new accounts need a client that speaks caching_sha2_password"),
        DefaultChange("innodb_io_capacity", (8, 4), "200", "10000",
                      "background flushing assumes fast SSD/NVMe storage"),
        DefaultChange("innodb_io_capacity_max", (8, 4), "2000", "2 x innodb_io_capacity",
                      "the flushing ceiling rises with innodb_io_capacity"),
        DefaultChange("innodb_log_buffer_size", (8, 4), "16777216", "67108864", "48 MiB more memory"),
        DefaultChange("innodb_adaptive_hash_index", (8, 4), "ON", "OFF",
                      "point lookups that used the adaptive hash index get slower"),
        DefaultChange("innodb_change_buffering", (8, 4), "all", "none",
                      "secondary-index changes on pages not in memory are no longer buffered"),
        DefaultChange("innodb_flush_method", (8, 4), "fsync", "O_DIRECT",
                      "data files bypass the OS page cache"),
        DefaultChange("innodb_use_fdatasync", (8, 4), "OFF", "ON", "fewer metadata syncs"),
        DefaultChange("temptable_use_mmap", (8, 4), "ON", "OFF",
                      "internal temporary tables over temptable_max_ram spill to InnoDB on disk"),
        DefaultChange("innodb_numa_interleave", (8, 4), "OFF", "ON", "buffer pool memory interleaved"),
    ),
    "mariadb": (
        DefaultChange("character_set_server", (11, 6), "latin1", "utf8mb4",
                      "new tables and schemas are utf8mb4; replicas on 10.6 or older need care"),
        DefaultChange("collation_server", (11, 6), "latin1_swedish_ci", "utf8mb4_uca1400_ai_ci",
                      "comparisons and sort order of new columns change"),
        DefaultChange("innodb_snapshot_isolation", (11, 6), "OFF", "ON",
                      "REPEATABLE READ transactions that would read a row changed after their "
                      "snapshot fail with ER_CHECKREAD instead of silently reading it"),
    ),
}

#: SQL modes a version removed: a sql_mode naming one is refused.
REMOVED_SQL_MODES: Dict[str, Tuple[Tuple[str, Tuple[int, ...]], ...]] = {
    "mysql": tuple((mode, (8, 0)) for mode in (
        "NO_AUTO_CREATE_USER", "DB2", "MAXDB", "MSSQL", "MYSQL323", "MYSQL40", "ORACLE", "POSTGRESQL",
        "NO_FIELD_OPTIONS", "NO_KEY_OPTIONS", "NO_TABLE_OPTIONS")),
    "mariadb": (),
}

#: Words a version made reserved: an unquoted schema or table name of one fails to parse.
RESERVED: Dict[str, Tuple[Tuple[str, Tuple[int, ...]], ...]] = {
    "mysql": (
        *((w, (8, 0)) for w in (
            "ARRAY", "CUBE", "CUME_DIST", "DENSE_RANK", "EMPTY", "EXCEPT", "FIRST_VALUE", "FUNCTION",
            "GROUPING", "GROUPS", "JSON_TABLE", "LAG", "LAST_VALUE", "LATERAL", "LEAD", "MEMBER",
            "NTH_VALUE", "NTILE", "OF", "OVER", "PERCENT_RANK", "RANK", "RECURSIVE", "ROW", "ROWS",
            "ROW_NUMBER", "SYSTEM", "WINDOW")),
        *((w, (8, 4)) for w in ("MANUAL", "PARALLEL", "QUALIFY", "TABLESAMPLE")),
    ),
    "mariadb": (),
}

#: Storage engines a version no longer has: tables on them cannot be opened.
REMOVED_ENGINES: Dict[str, Tuple[Tuple[str, Tuple[int, ...]], ...]] = {
    "mysql": (("tokudb", (8, 0)),),
    "mariadb": (("tokudb", (10, 6)), ("cassandra", (10, 6))),
}

#: Plugins a version no longer has (name, version, what to use instead).
REMOVED_PLUGINS: Dict[str, Tuple[Tuple[str, Tuple[int, ...], str], ...]] = {
    "mysql": (
        ("keyring_file", (8, 4), "the component_keyring_file component"),
        ("keyring_encrypted_file", (8, 4), "the component_keyring_encrypted_file component"),
        ("authentication_fido", (8, 4), "authentication_webauthn"),
        ("tokudb", (8, 0), "InnoDB or MyRocks"),
    ),
    "mariadb": (("tokudb", (10, 6), "InnoDB or MyRocks"), ("cassandra", (10, 6), "")),
}
