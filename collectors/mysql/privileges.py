"""What each part of a collection needs on the server, as GRANT text per flavor."""

from __future__ import annotations

from typing import Dict, List, Tuple

from collectors.mysql.flavor import Flavor

#: Columns of mysql.user the accounts summary reads: never a password or hash column.
ACCOUNT_COLUMNS_MARIADB = (
    "User", "Host", "plugin", "password_expired", "is_role", "max_user_connections",
)
ACCOUNT_COLUMNS_MYSQL = (
    "User", "Host", "plugin", "account_locked", "password_expired", "password_last_changed",
    "password_lifetime", "max_user_connections",
)


def _grant(flavor: Flavor, key: str) -> Tuple[str, str]:
    """(privilege list, object) for a privilege key on this flavor."""
    if key == "process":
        return "PROCESS", "*.*"
    if key == "replica_monitor":
        if flavor.is_mariadb and flavor.at_least(10, 5, 9):
            return "SLAVE MONITOR", "*.*"
        if flavor.is_mariadb and flavor.at_least(10, 5, 2):
            return "REPLICATION SLAVE ADMIN", "*.*"
        return "REPLICATION CLIENT", "*.*"
    if key == "binlog_monitor":
        if flavor.is_mariadb and flavor.at_least(10, 5, 2):
            return "BINLOG MONITOR", "*.*"
        return "REPLICATION CLIENT", "*.*"
    if key == "replica_hosts":
        if flavor.is_mariadb and flavor.at_least(10, 5, 9):
            return "REPLICATION MASTER ADMIN", "*.*"
        return "REPLICATION SLAVE", "*.*"
    if key == "select_ps":
        return "SELECT", "performance_schema.*"
    if key == "select_sys":
        return "SELECT", "sys.*"
    if key == "select_stats":
        return "SELECT", "mysql.innodb_table_stats"
    if key == "select_accounts":
        columns = ACCOUNT_COLUMNS_MARIADB if flavor.is_mariadb else ACCOUNT_COLUMNS_MYSQL
        return f"SELECT ({', '.join(columns)})", "mysql.user"
    raise KeyError(key)


PURPOSES: Dict[str, str] = {
    "process": "processlist, InnoDB status, transactions and metrics",
    "replica_monitor": "replica status",
    "binlog_monitor": "binary log status and list",
    "select_ps": "performance_schema summaries",
    "select_stats": "schema sizes on large catalogs (InnoDB persistent statistics)",
    "select_accounts": "accounts summary (plugin, locked, expired; never a hash)",
}


def grant_statement(flavor: Flavor, key: str, account: str = "'mydiag'@'localhost'") -> str:
    privileges, obj = _grant(flavor, key)
    return f"GRANT {privileges} ON {obj} TO {account};"


def least_privilege_script(flavor: Flavor, user: str, host: str) -> List[str]:
    """CREATE USER and GRANT statements for the standard profile, merged per object."""
    account = f"'{user}'@'{host}'"
    merged: Dict[str, List[str]] = {}
    for key in PURPOSES:
        privileges, obj = _grant(flavor, key)
        if privileges not in merged.setdefault(obj, []):
            merged[obj].append(privileges)
    lines = [
        f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '<choose a password>';",
    ]
    if not flavor.is_mariadb or flavor.at_least(10, 4, 0):
        lines[0] = lines[0][:-1] + " WITH MAX_USER_CONNECTIONS 3;"
    for obj, privileges in merged.items():
        lines.append(f"GRANT {', '.join(privileges)} ON {obj} TO {account};")
    return lines
