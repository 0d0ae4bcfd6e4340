"""Rules: security — accounts that anyone can use, old authentication, and server settings
that widen what a compromised account can reach.

mysql/accounts.json (collectors/mysql/accounts.py) holds each account's user, host, plugin,
lock and role flags and whether its password is empty — a flag the server computed; it
never holds a password or a hash, and evidence here names accounts only.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional

from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule

GROUP = "security"
ACCOUNTS = "mysql/accounts.json"
VARIABLES = "mysql/global_variables.json"

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Plugins that authenticate with a password the server stores (others: socket, PAM, GSSAPI).
PASSWORD_PLUGINS = ("", "mysql_native_password", "mysql_old_password", "ed25519", "parsec",
                    "caching_sha2_password", "sha256_password")
#: At most this many accounts named in a finding.
NAMED = 10


def _true(value: Any) -> bool:
    return value is True or str(value).strip().upper() in ("1", "Y", "TRUE", "YES")


def _accounts(b: Bundle) -> List[Dict[str, Any]]:
    data = b.json(ACCOUNTS)
    if not isinstance(data, dict):
        raise Insufficient(b.why_missing(ACCOUNTS))
    rows = data.get("accounts")
    if not isinstance(rows, list):
        raise Insufficient("mysql/accounts.json has no account list")
    return [r for r in rows if isinstance(r, dict)]


def _usable(account: Dict[str, Any]) -> bool:
    """An account that can log in: not locked, not a role."""
    return not _true(account.get("account_locked")) and not _true(account.get("is_role"))


def _user(account: Dict[str, Any]) -> str:
    value = account.get("user")
    return "" if value is None else str(value)


def _host(account: Dict[str, Any]) -> str:
    value = account.get("host")
    return "" if value is None else str(value)


def _plugin(account: Dict[str, Any]) -> str:
    value = account.get("plugin")
    return "" if value is None else str(value).strip().lower()


def _name(account: Dict[str, Any]) -> str:
    def clean(text: str) -> str:
        return "".join(ch if ch >= " " else "\ufffd" for ch in text[:80])
    return f"'{clean(_user(account))}'@'{clean(_host(account))}'"


def _any_host(account: Dict[str, Any]) -> bool:
    pattern = account.get("host_pattern")
    if pattern in ("any", "wildcard"):
        return True
    return "%" in _host(account)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _names(accounts: List[Dict[str, Any]]) -> List[str]:
    return [_name(a) for a in accounts[:NAMED]]


@rule("SEC-01", "Accounts without a password can log in",
      group=GROUP, severity="error", needs=(ACCOUNTS,),
      advice="Give each account a password (ALTER USER 'u'@'h' IDENTIFIED BY '…'), or switch local admin "
             "accounts to socket authentication (MariaDB: IDENTIFIED VIA unix_socket; MySQL: auth_socket), "
             "or drop accounts nobody uses (DROP USER). Check first which applications log in with them "
             "(the general log or performance_schema.accounts).",
      risk="Clients that log in without a password stop working until they are given the new one.",
      verify="mydiag collect again: mysql/accounts.json shows empty_authentication 0.")
def empty_password(b: Bundle) -> Optional[Hit]:
    """Checks for accounts that log in with a password plugin and an empty authentication
    string — no password at all — and are neither locked nor roles (the server's own test,
    recorded as `empty_authentication` in mysql/accounts.json).

    **Why it matters**: anyone who can reach the server and knows the user name is in, with
    that account's privileges. From a host other than localhost, that is anyone on the
    network.

    **Example**: `'root'@'localhost'` with `mysql_native_password` and no password; or
    `'app'@'%'` without one.

    **Fix**: set a password, use socket authentication for local admins, or drop the account.
    """
    accounts = _accounts(b)
    if all(a.get("empty_authentication") is None for a in accounts):
        raise Insufficient("empty passwords were not checked (the collecting account cannot read the "
                           "authentication column)")
    empty = [a for a in accounts if a.get("empty_authentication") is True and _usable(a)]
    if not empty:
        return None
    own = {h.lower() for h in (b.host, b.variable("hostname") or "") if h}
    remote = [a for a in empty if _host(a).lower() not in LOCAL_HOSTS and _host(a).lower() not in own]
    return Hit(f"{len(empty)} account(s) log in without a password"
               + (f", {len(remote)} of them from other hosts" if remote else " (local connections only)")
               + ": " + ", ".join(_names(remote or empty)[:4]),
               severity="critical" if remote else "error",
               evidence=[Evidence(ACCOUNTS, {"accounts": _names(empty), "remote": len(remote),
                                             "count": len(empty)})])


@rule("SEC-02", "Anonymous accounts exist",
      group=GROUP, severity="warning", needs=(ACCOUNTS,),
      advice="Drop them: DROP USER ''@'localhost'; DROP USER ''@'<host>'; (mysql_secure_installation does "
             "this). Nothing legitimate should depend on an account without a name.",
      risk="A client that logs in with any user name and no password through an anonymous account "
           "stops working (that is the point).",
      verify="SELECT User, Host FROM mysql.user WHERE User='' returns no row.")
def anonymous(b: Bundle) -> Optional[Hit]:
    """Checks for accounts with an empty user name (`''@'localhost'`, `''@'%'`), which match
    any user name.

    **Why it matters**: an anonymous account lets anyone connect under any name; worse, it
    can shadow a real account: `'app'@'%'` loses to `''@'localhost'` for a local
    connection (the more specific host wins), so a user logs in with the anonymous account's
    privileges, or fails to log in with their own password.

    **Example**: `''@'localhost'` and `''@'db1'` left by an old installer.

    **Fix**: `DROP USER` each of them.
    """
    accounts = _accounts(b)
    found = [a for a in accounts if (a.get("anonymous") is True or _user(a) == "") and _usable(a)]
    if not found:
        return None
    wide = [a for a in found if _any_host(a)]
    return Hit(f"{len(found)} anonymous account(s): " + ", ".join(_names(found)[:4]),
               severity="error" if wide else "warning",
               evidence=[Evidence(ACCOUNTS, {"accounts": _names(found), "from_any_host": len(wide)})])


@rule("SEC-03", "root can log in from any host",
      group=GROUP, severity="warning", needs=(ACCOUNTS,),
      advice="Keep root local ('root'@'localhost', socket authentication) and give remote administrators "
             "their own named accounts with the privileges they need, from the hosts they use: CREATE "
             "USER 'ops'@'10.0.0.%' …; GRANT …; then DROP USER 'root'@'%'.",
      risk="Tools that log in remotely as root (backup agents, monitoring) must be given their own "
           "accounts first.",
      verify="SELECT Host FROM mysql.user WHERE User='root' lists only local hosts.")
def root_any_host(b: Bundle) -> Optional[Hit]:
    """Checks for a `root` account whose host is a wildcard (`'root'@'%'`, `'root'@'10.%'`).

    **Why it matters**: root has every privilege (SUPER, FILE, SHUTDOWN, GRANT); from any host
    its password is the only barrier, and the name is the first one every scanner tries.

    **Example**: `'root'@'%'` with `mysql_native_password`.

    **Fix**: named admin accounts from known hosts; root local only.
    """
    accounts = _accounts(b)
    found = [a for a in accounts if _user(a) == "root" and _any_host(a) and _usable(a)]
    if not found:
        return None
    everywhere = [a for a in found if _host(a) == "%"]
    return Hit(f"root can log in from {', '.join(_names(found)[:4])}",
               severity="error" if everywhere else "warning",
               evidence=[Evidence(ACCOUNTS, {"accounts": _names(found),
                                             "plugins": sorted({_plugin(a) or "(default)" for a in found})})])


@rule("SEC-04", "Accounts use an old authentication plugin",
      group=GROUP, severity="notice", needs=(ACCOUNTS,),
      advice="Move each account to a current plugin: ALTER USER 'u'@'h' IDENTIFIED WITH "
             "caching_sha2_password BY '…' (MySQL 8), or IDENTIFIED VIA ed25519 USING PASSWORD('…') "
             "(MariaDB); "
             "mysql_old_password accounts first. Check that the clients' connectors support the new "
             "plugin (caching_sha2_password needs TLS or RSA key exchange for the first login).",
      risk="Old connectors cannot log in with the new plugin; the password must be set again (the "
           "old hash cannot be converted).",
      verify="SELECT plugin, COUNT(*) FROM mysql.user GROUP BY plugin shows none of the old plugins.")
def old_auth_plugins(b: Bundle) -> Optional[Hit]:
    """Checks the accounts' authentication plugins: `mysql_old_password` (the pre-4.1 hash,
    broken for decades) on any server; on MySQL 8.0+ also `mysql_native_password`
    (deprecated in 8.0, disabled by default in 8.4, removed in 9.0) and `sha256_password`
    (deprecated since 8.0.16).

    **Why it matters**: `mysql_old_password` hashes can be reversed quickly from a captured
    handshake. `mysql_native_password` is SHA-1 based and on MySQL an upgrade blocker: after
    an upgrade to 8.4 those accounts cannot log in until the plugin is loaded again.

    **Example**: MySQL 8.0 with 12 application accounts on `mysql_native_password`.

    **Fix**: `ALTER USER … IDENTIFIED WITH caching_sha2_password BY …`.
    """
    accounts = [a for a in _accounts(b) if _usable(a)]
    mysql8 = not b.version.is_mariadb and b.version.at_least(8, 0)
    old = [a for a in accounts if _plugin(a) == "mysql_old_password"]
    deprecated = [a for a in accounts
                  if mysql8 and _plugin(a) in ("mysql_native_password", "sha256_password")]
    if not old and not deprecated:
        return None
    parts = []
    if old:
        parts.append(f"{len(old)} account(s) on mysql_old_password (the pre-4.1 hash)")
    if deprecated:
        parts.append(f"{len(deprecated)} account(s) on mysql_native_password or sha256_password, "
                     "deprecated in MySQL 8.0 and disabled by default from 8.4 (an upgrade blocker)")
    return Hit("; ".join(parts), severity="error" if old else "notice",
               evidence=[Evidence(ACCOUNTS, {"mysql_old_password": _names(old),
                                             "deprecated": _names(deprecated),
                                             "deprecated_count": len(deprecated)})])


@rule("SEC-05", "Passwords never expire",
      group=GROUP, severity="info", confidence="medium", needs=(ACCOUNTS, VARIABLES),
      advice="If your policy asks for rotation, set default_password_lifetime (days) and exempt service "
             "accounts whose rotation you manage elsewhere: ALTER USER 'svc'@'h' PASSWORD EXPIRE NEVER. "
             "Many policies now prefer long random passwords without forced rotation: decide, then "
             "record it.",
      risk="An expired password locks the application out (it can only run SET PASSWORD): exempt "
           "service accounts before setting a default.",
      verify="SELECT @@default_password_lifetime and each account's password_lifetime match the policy.")
def no_expiry(b: Bundle) -> Optional[Hit]:
    """Checks whether any password expiry policy exists: `default_password_lifetime=0` and
    no password account with its own `password_lifetime`.

    **Why it matters**: a password that never changes outlives the people and systems that
    knew it; compliance frameworks (PCI DSS, CIS benchmarks) ask for a stated policy. This is
    information, not a fault: rotation by force has costs too.

    **Example**: `default_password_lifetime=0`, 20 accounts, none with a lifetime.

    **Fix**: a lifetime for people's accounts, `PASSWORD EXPIRE NEVER` for managed service
    accounts — or a recorded decision not to.
    """
    default = b.number("default_password_lifetime")
    if default is None:
        raise NotApplicable("default_password_lifetime does not exist on this server")
    if default > 0:
        return None
    accounts = [a for a in _accounts(b) if _usable(a) and _plugin(a) in PASSWORD_PLUGINS]
    if not accounts:
        return None
    with_policy = [a for a in accounts if (to_number(a.get("password_lifetime")) or 0) > 0]
    if with_policy:
        return None
    return Hit(f"No password expiry: default_password_lifetime=0 and none of the {len(accounts)} password "
               "account(s) has a lifetime of its own",
               evidence=[Evidence(VARIABLES, {"default_password_lifetime": 0}),
                         Evidence(ACCOUNTS, {"password_accounts": len(accounts)})])


@rule("SEC-06", "LOAD DATA LOCAL is enabled (local_infile=ON)",
      group=GROUP, severity="notice", needs=(VARIABLES,),
      advice="SET GLOBAL local_infile=OFF (and local_infile=0 in the option file) unless an application "
             "loads client-side files; where one does, enable it on that client only.",
      risk="Applications using LOAD DATA LOCAL INFILE fail (error 1148/3948) until enabled for them.",
      verify="SELECT @@local_infile returns 0.")
def local_infile(b: Bundle) -> Optional[Hit]:
    """Checks `local_infile`, which lets clients send files with `LOAD DATA LOCAL INFILE`.

    **Why it matters**: the server asks the *client* for the file, and a malicious or
    compromised server can ask a client for any file it can read (its SSH keys, its
    configuration); with SQL injection, an attacker can have the application load local
    files into a table. MySQL 8 turns it off by default; MariaDB leaves it on.

    **Example**: `local_infile=ON` on a server whose applications never load files.

    **Fix**: `local_infile=OFF`.
    """
    value = b.switch("local_infile")
    if value is None:
        raise Insufficient("local_infile is not in the variables")
    if not value:
        return None
    return Hit("local_infile=ON: clients may send files with LOAD DATA LOCAL INFILE",
               evidence=[Evidence(VARIABLES, {"local_infile": b.variable("local_infile")})])


@rule("SEC-07", "FILE operations may read and write anywhere (secure_file_priv is empty)",
      group=GROUP, severity="warning", needs=(VARIABLES,),
      advice="Set secure_file_priv to a dedicated directory (e.g. /var/lib/mysql-files, owned by mysql, "
             "mode 750) in the option file, or to NULL to disable server-side import and export; it is "
             "read at start-up only. Grant FILE to no application account.",
      risk="A restart; SELECT … INTO OUTFILE and LOAD DATA INFILE outside that directory fail afterwards.",
      verify="SELECT @@secure_file_priv returns the directory (or NULL).")
def secure_file_priv(b: Bundle) -> Optional[Hit]:
    """Checks `secure_file_priv`: empty means an account with the FILE privilege can read any
    file the server's OS user can read (`LOAD_FILE('/etc/…')`, `LOAD DATA INFILE`) and write
    new files anywhere it can write (`SELECT … INTO OUTFILE`).

    **Why it matters**: FILE plus an empty `secure_file_priv` turns a leaked account or an SQL
    injection into reading the server's files (other databases' data files, keys in the
    option files) and planting files (a plugin library in the plugin directory, a web shell).

    **Example**: MariaDB's default `secure_file_priv=''`.

    **Fix**: a dedicated directory, or NULL.
    """
    raw = b.json(VARIABLES, {})
    if not isinstance(raw, dict):
        raise Insufficient("the variables are not readable")
    values = {str(k).lower(): v for k, v in raw.items()}
    if "secure_file_priv" not in values:
        raise Insufficient("secure_file_priv is not in the variables")
    value = values["secure_file_priv"]
    if value is None or str(value).strip().upper() == "NULL" or str(value).strip():
        return None
    return Hit("secure_file_priv is empty: accounts with FILE can read and write files anywhere the server "
               "can", evidence=[Evidence(VARIABLES, {"secure_file_priv": ""})])


@rule("SEC-08", "The server resolves client host names (skip_name_resolve=OFF)",
      group=GROUP, severity="notice", confidence="medium", needs=(VARIABLES,),
      advice="If accounts use IP addresses (or localhost) only, set skip_name_resolve=ON in the option file "
             "(read at start-up). Accounts whose host is a name must first be recreated with the "
             "address or a netmask.",
      risk="After the change, accounts defined by host name no longer match: their clients are refused.",
      verify="SELECT @@skip_name_resolve returns 1; new connections do not wait in 'login' state; "
             "Connection_errors_peer_address stays 0.")
def name_resolve(b: Bundle) -> Optional[Hit]:
    """Checks `skip_name_resolve`: when OFF, every new connection from a TCP client waits for
    a reverse and forward DNS lookup before it is authenticated.

    **Why it matters**: a slow or failing DNS server turns into slow or refused logins
    (`unauthenticated user … login` piling up in the processlist), and host-name accounts
    trust whatever DNS says. Accounts by address are faster and harder to spoof.

    **Example**: `skip_name_resolve=OFF` with every account on an IP or localhost.

    **Fix**: `skip_name_resolve=ON` after moving host-name accounts to addresses.
    """
    value = b.switch("skip_name_resolve")
    if value is None:
        raise Insufficient("skip_name_resolve is not in the variables")
    if value:
        return None
    by_name: List[Dict[str, Any]] = []
    data = b.json(ACCOUNTS)
    if isinstance(data, dict) and isinstance(data.get("accounts"), list):
        for a in data["accounts"]:
            if not isinstance(a, dict):
                continue
            host = _host(a).lower()
            if host and host not in LOCAL_HOSTS and "%" not in host and "/" not in host \
                    and not _is_ip(host):
                by_name.append(a)
    return Hit("skip_name_resolve=OFF: each TCP connection waits for DNS lookups"
               + (f"; {len(by_name)} account(s) are defined by host name and would need an address first"
                  if by_name else ""),
               evidence=[Evidence(VARIABLES, {"skip_name_resolve": b.variable("skip_name_resolve")}),
                         Evidence(ACCOUNTS, {"host_name_accounts": _names(by_name)})])
