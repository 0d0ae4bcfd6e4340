"""The diag console's database account: what it is granted, and what is too much.

The console's read-only promise is kept by the database server first: the console
connects as an account that cannot read files, administer the server, write anything or
read the `mysql` schema's accounts. `mydiag grants --purpose diag` prints that account
(`script`); at start the console reads its own account's grants (SHOW GRANTS, which on
MariaDB also lists the grants of the active role and of the roles inside it) and refuses
to start when they hold more (`excess`), unless the customer granted the session with
--allow-privileged-account.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from agent.session.sqllex import DEFAULT_MODE, Mode, Odd, Token, tokenize
from collectors.mysql.flavor import Flavor

#: The key, in the console's connection settings (its --spec-fd pipe, and a hold.json
#: handed to the scheduled agent), that carries the grant's --allow-privileged-account.
ALLOW_PRIVILEGED = "allow_privileged_account"
#: Connections the account may hold at once: two console channels, each with one reserve
#: connection to stop its running statement (agent/session/channel.py caps the channels).
MAX_USER_CONNECTIONS = 4
#: Global privileges that only let the account look.
GLOBAL_OK = frozenset({"USAGE", "PROCESS", "REPLICATION CLIENT", "BINLOG MONITOR", "SLAVE MONITOR",
                       "REPLICA MONITOR", "SHOW DATABASES"})
#: Privileges on a schema, table or column that only let the account look.
OBJECT_OK = frozenset({"SELECT", "SHOW VIEW"})
#: In `mysql`, only these tables may be read whole (InnoDB statistics: table sizes).
MYSQL_TABLES = frozenset({"innodb_table_stats", "innodb_index_stats"})
SECRET_COLUMNS = frozenset({"authentication_string", "password", "user_password", "priv"})


def _replica_monitor(flavor: Flavor) -> List[str]:
    if flavor.is_mariadb and flavor.at_least(10, 5, 9):
        return ["SLAVE MONITOR", "BINLOG MONITOR"]
    if flavor.is_mariadb and flavor.at_least(10, 5, 2):
        return ["BINLOG MONITOR"]
    return ["REPLICATION CLIENT"]


def script(flavor: Flavor, user: str, host: str) -> List[str]:
    """CREATE USER and GRANT statements for the diag console's account on `flavor`."""
    account = f"'{user}'@'{host}'"
    create = f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '<choose a password>'"
    if not flavor.is_mariadb or flavor.at_least(10, 4, 0):
        create += f" WITH MAX_USER_CONNECTIONS {MAX_USER_CONNECTIONS}"
    return [
        "-- the diag console's account: it can look, never change, read files or read the accounts",
        create + ";",
        f"GRANT {', '.join(['PROCESS', *_replica_monitor(flavor)])} ON *.* TO {account};",
        f"GRANT SELECT ON performance_schema.* TO {account};",
        f"GRANT SELECT, EXECUTE ON sys.* TO {account};",
        "-- optional, to let the engineer read a schema's own rows too (it is the customer's data):",
        f"-- GRANT SELECT ON your_schema.* TO {account};",
        "-- nothing on `mysql`, no FILE, no SUPER or other admin privilege, no write privilege: the",
        "-- console refuses to start with an account that has more (see docs/sessions.md)",
    ]


class GrantsUnreadable(ValueError):
    """A SHOW GRANTS line this module cannot read: the account is taken as privileged."""


def excess(lines: Iterable[str], mode: Mode = DEFAULT_MODE) -> Optional[str]:
    """What in these SHOW GRANTS lines goes beyond looking, in a few words; None if nothing."""
    for line in lines:
        try:
            found = _line_excess(tokenize(line, mode))
        except (Odd, GrantsUnreadable, IndexError):
            return "grants this console cannot read"
        if found:
            return found
    return None


def _line_excess(tokens: List[Token]) -> Optional[str]:
    words = [t.upper for t in tokens]
    if words[:1] in (["REVOKE"], ["SET"]):
        return None  # partial revokes and the default role: they only take away or point
    if words[:1] != ["GRANT"]:
        raise GrantsUnreadable("not a GRANT")
    if "ON" not in words:
        # GRANT role TO account: the role's own grants are listed on lines of their own.
        return "the ADMIN OPTION on a role" if words[-3:] == ["WITH", "ADMIN", "OPTION"] else None
    privileges, where = _privileges(tokens[1:])
    if any(name == "PROXY" for name, _ in privileges):
        return "PROXY (it acts as other accounts)"
    if where[0].upper in ("PROCEDURE", "FUNCTION", "PACKAGE"):
        return f"{_names(privileges)} on {where[0].upper} {_object_text(where[1:])}"
    schema, table, rest = _object(where)
    for name, columns in privileges:
        reason = _judge(name, columns, schema, table)
        if reason:
            return reason
    tail = [t.upper for t in rest]
    if any(tail[i:i + 3] == ["WITH", "GRANT", "OPTION"] for i in range(len(tail))):
        return f"the GRANT OPTION on {_object_text(where)}"
    return None


def _privileges(tokens: List[Token]) -> Tuple[List[Tuple[str, List[str]]], List[Token]]:
    """[(privilege, columns)] up to ON, and the tokens after ON."""
    found: List[Tuple[str, List[str]]] = []
    words: List[str] = []
    columns: List[str] = []
    i = 0
    while tokens[i].upper != "ON":
        token = tokens[i]
        if token.text == "(":
            i += 1
            while tokens[i].text != ")":
                if tokens[i].kind in ("word", "name"):
                    columns.append(tokens[i].text)
                i += 1
        elif token.text == ",":
            found.append((" ".join(words), columns))
            words, columns = [], []
        elif token.kind == "word":
            words.append(token.upper)
        else:
            raise GrantsUnreadable("a privilege list")
        i += 1
    found.append((" ".join(words), columns))
    return found, tokens[i + 1:]


def _object(tokens: List[Token]) -> Tuple[str, str, List[Token]]:
    """(schema, table) of `*.*`, `db`.*, `db`.`t`, with `*` for all; and the tokens after."""
    parts = []
    i = 0
    while True:
        token = tokens[i]
        parts.append("*" if token.text == "*" else token.text)
        i += 1
        if i < len(tokens) and tokens[i].text == ".":
            i += 1
            continue
        break
    if len(parts) == 1:
        parts = ["", parts[0]]
    if len(parts) != 2:
        raise GrantsUnreadable("an object")
    return parts[0], parts[1], tokens[i:]


def _object_text(tokens: List[Token]) -> str:
    schema, table, _ = _object(tokens)
    return f"{schema}.{table}" if schema else table


def _names(privileges: List[Tuple[str, List[str]]]) -> str:
    return ", ".join(name for name, _ in privileges)


def _judge(name: str, columns: List[str], schema: str, table: str) -> Optional[str]:
    where = f"{schema}.{table}"
    if schema == "*":
        return None if name in GLOBAL_OK else f"{name} on *.*"
    if name == "USAGE":
        return None
    if name == "EXECUTE" and schema.lower() == "sys":
        return None
    if name not in OBJECT_OK:
        return f"{name} on {where}"
    if schema.lower() != "mysql":
        return None
    if table.lower() in MYSQL_TABLES:
        return None
    if table.lower() == "user" and columns and not {c.lower() for c in columns} & SECRET_COLUMNS:
        return None
    return f"{name} on {where}" + (f" ({', '.join(columns)})" if columns else "")
