"""Accounts summary: plugin, locked, expired, host patterns, anonymous accounts and
accounts with an empty password. Never a password hash: emptiness is tested on the
server, and only the account names come back."""

from __future__ import annotations

from collections import Counter
from typing import Iterator, Optional, Set, Tuple

from collectors.mysql.common import optional
from collectors.mysql.session import MissingPrivilege, NotAvailable
from collectors.mysql.sql import ACCOUNTS, ACCOUNTS_GLOBAL_PRIV, Statement
from collectors.registry import Artifact, CollectorError, Context, Need, collector

#: Plugins whose empty authentication string means "no password" (not socket or PAM logins).
PASSWORD_PLUGINS = (
    "", "mysql_native_password", "mysql_old_password", "ed25519", "parsec",
    "caching_sha2_password", "sha256_password",
)

EMPTY_AUTHENTICATION = Statement(
    "empty_authentication",
    lambda f: (
        "SELECT User AS user, Host AS host FROM mysql.global_priv"
        " WHERE IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = ''"
        " AND IFNULL(JSON_VALUE(Priv, '$.plugin'), '') IN %(plugins)s"
        if f.is_mariadb
        else "SELECT User AS user, Host AS host FROM mysql.user"
        " WHERE authentication_string = '' AND plugin IN %(plugins)s"
    ),
    "select_accounts",
)

#: On MariaDB: ACCOUNTS_GLOBAL_PRIV with the empty-password test beside it (a flag, never
#: the string), so one statement reads both.
ACCOUNTS_WITH_EMPTY = Statement(
    "accounts_with_empty_authentication",
    lambda f: ACCOUNTS_GLOBAL_PRIV.sql(f).replace(
        " FROM mysql.global_priv",
        ", IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = ''"
        " AND IFNULL(JSON_VALUE(Priv, '$.plugin'), '') IN %(plugins)s AS empty_authentication"
        " FROM mysql.global_priv"),
    "select_accounts",
)


@collector("mysql.accounts", needs=[Need.MYSQL], timeout=5)
def accounts(ctx: Context) -> Iterator[Artifact]:
    """Each account's plugin and state, plus counts by plugin and host pattern, anonymous
    accounts and accounts with an empty password (a flag and a count)."""
    rows = None
    empty: Optional[Set[Tuple[str, str]]] = None
    if ctx.session.flavor.is_mariadb:
        # Reading single JSON keys of global_priv gives the lock flag without the hash,
        # and the server's empty-password test in the same statement.
        try:
            rows = ctx.session.query(ACCOUNTS_WITH_EMPTY, {"plugins": PASSWORD_PLUGINS})
        except CollectorError:
            rows = None
        else:
            empty = {(str(r["user"]), str(r["host"])) for r in rows
                     if _true(r.pop("empty_authentication", 0))}
    if rows is None:
        rows = optional(ctx, ACCOUNTS)
        if rows is None:
            return
        if ctx.session.flavor.is_mariadb:
            ctx.notes.add("lock state needs SELECT on mysql.global_priv; left out")
        empty = _empty_authentication(ctx)
    for row in rows:
        host = str(row.get("host", ""))
        row["host_pattern"] = "any" if host == "%" else "wildcard" if "%" in host else "exact"
        row["anonymous"] = not row.get("user")
        # A locked account or a role cannot log in, whatever its authentication string.
        usable = not _true(row.get("account_locked")) and not _true(row.get("is_role"))
        row["empty_authentication"] = (
            None if empty is None else usable and (str(row.get("user")), host) in empty
        )
    # The definer check (stored_objects) needs the names: it need not read them again.
    ctx.shared.setdefault("account_names", {(str(r.get("user")), str(r.get("host", "")).lower())
                                            for r in rows})
    with_empty = sum(1 for r in rows if r["empty_authentication"])
    summary = {
        "accounts": len(rows),
        "by_plugin": dict(Counter(str(r.get("plugin") or "") for r in rows)),
        "by_host_pattern": dict(Counter(r["host_pattern"] for r in rows)),
        "anonymous": sum(1 for r in rows if r["anonymous"]),
        "has_anonymous": any(r["anonymous"] for r in rows),
        "empty_authentication": None if empty is None else with_empty,
        "has_empty_authentication": None if empty is None else with_empty > 0,
    }
    yield Artifact.json("mysql/accounts.json", {"summary": summary, "accounts": rows})


def _empty_authentication(ctx: Context) -> Optional[Set[Tuple[str, str]]]:
    """Accounts whose password plugin has an empty authentication string: names only."""
    try:
        found = ctx.session.query(EMPTY_AUTHENTICATION, {"plugins": PASSWORD_PLUGINS})
    except (MissingPrivilege, NotAvailable):
        # A least-privilege account is meant not to read that column: a note, not a failure.
        ctx.notes.add("accounts with an empty password not checked: the test runs on the "
                      "server over the authentication column, which this account cannot read")
        return None
    return {(str(r["user"]), str(r["host"])) for r in found}


def _true(value: object) -> bool:
    return str(value).strip().upper() in ("1", "Y", "TRUE", "YES")
