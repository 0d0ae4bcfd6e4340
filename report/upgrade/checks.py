"""The upgrade checks: what on this server breaks or changes on the target, from the bundle.

Each check is a function declared with `@check` (a stable id `UPG-NN`, a title, a severity:
error = the upgrade breaks (the server refuses to start, logins or tables fail), warning =
behaviour changes, notice = deprecated). It returns a Hit when it fires, None when the server
passes, raises `Insufficient` when the bundle lacks what it needs (reported as "not
checked", never as a pass) and `NotApplicable` when the check has nothing to say about this
source and target. Its docstring says what it checks, why it matters and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.upgrade import settings as cfg
from report.upgrade.targets import (
    DEFAULTS,
    DEPRECATED,
    REMOVED,
    REMOVED_ENGINES,
    REMOVED_PLUGINS,
    REMOVED_SQL_MODES,
    RESERVED,
    Removed,
    Target,
)

ACCOUNTS = "mysql/accounts.json"
TABLE_FACTS = "mysql/table_facts.json"
OVERVIEW = "mysql/schema_overview.json"
PLUGINS = "mysql/plugins.json"
VARIABLES = "mysql/global_variables.json"
_LISTED = 20


@dataclass
class Upgrade:
    """One bundle against one target, with the settings read once."""

    bundle: Bundle
    target: Target
    source: Tuple[int, ...]
    _cache: Dict[str, Any] = field(default_factory=dict)

    @property
    def flavor(self) -> str:
        return self.target.flavor

    def crosses(self, version: Tuple[int, ...]) -> bool:
        """True when the upgrade passes `version`: the server is older, the target not."""
        older = not self.source or tuple(self.source[:len(version)]) < tuple(version)
        return older and tuple(self.target.version) >= tuple(version[:2])

    def options(self) -> Optional[List[cfg.Setting]]:
        if "options" not in self._cache:
            self._cache["options"] = cfg.option_settings(self.bundle, self.target.version)
        return self._cache["options"]

    def persisted(self) -> Optional[List[cfg.Setting]]:
        if "persisted" not in self._cache:
            self._cache["persisted"] = (cfg.persisted_settings(self.bundle)
                                        if self.source_flavor == "mysql" else [])
        return self._cache["persisted"]

    @property
    def source_flavor(self) -> str:
        return self.bundle.version.flavor

    def removed(self) -> Dict[str, Removed]:
        return {r.name: r for r in REMOVED[self.flavor] if self.crosses(r.version)}

    def variables(self) -> Dict[str, str]:
        values = self.bundle.variables
        if not values:
            raise Insufficient(self.bundle.why_missing(VARIABLES))
        return values

    def need(self, path: str) -> Any:
        data = self.bundle.json(path)
        if data is None:
            raise Insufficient(self.bundle.why_missing(path))
        return data


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    func: Callable[[Upgrade], Optional[Hit]]
    advice: str
    risk: str
    verify: str


CHECKS: List[Check] = []


def check(id: str, title: str, severity: str, advice: str, risk: str = "", verify: str = "") -> Callable:
    def declare(func: Callable[[Upgrade], Optional[Hit]]) -> Callable[[Upgrade], Optional[Hit]]:
        if any(c.id == id for c in CHECKS) or not (func.__doc__ or "").strip():
            raise ValueError(f"check {id}: declared twice or without a docstring")
        CHECKS.append(Check(id, title, severity, func, advice, risk, verify))
        return func
    return declare


def _dotted(version: Tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _names(items: List[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def _rows(data: Any, key: Optional[str] = None) -> List[Dict[str, Any]]:
    rows = data.get(key) if key and isinstance(data, dict) else data
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


# -- the path ------------------------------------------------------------------------------
@check("UPG-01", "The upgrade path is not supported in one step", "error",
       advice="Upgrade one supported step at a time (MySQL 5.7 → 8.0 → 8.4), each with its own "
              "checks, backup and test; MariaDB may skip a long-term series but read each skipped "
              "series' upgrade notes.",
       risk="An unsupported in-place upgrade can leave a data directory that neither version opens.",
       verify="After each step the error log shows the server's own upgrade completing without errors.")
def version_path(u: Upgrade) -> Optional[Hit]:
    """Checks that the server's version may be upgraded in place straight to the target.

    **Why it matters**: MySQL supports in-place upgrades only from the previous series
    (5.7 → 8.0, 8.0 → 8.4); a 5.7 data directory started by 8.4 fails. MariaDB allows a
    skip over long-term series, but each skipped series' changes still apply.
    **Example**: MySQL 5.7.44 with target 8.4. **Fix**: upgrade to 8.0 first.
    """
    if not u.source:
        raise Insufficient("the server's version is not in the bundle")
    here = _dotted(u.source)
    if tuple(u.source[:2]) < u.target.direct_from:
        severity = "error" if u.flavor == "mysql" else "warning"
        return Hit(f"{u.bundle.version} cannot go straight to {u.target.label}: the oldest series it "
                   f"upgrades from in place is {_dotted(u.target.direct_from)}",
                   evidence=[Evidence("manifest.json", {"version": here,
                                                        "target": u.target.key})], severity=severity)
    skipped = [s for s in u.target.lts_between if tuple(u.source[:2]) < s]
    if skipped:
        return Hit(f"{u.bundle.version} to {u.target.label} skips the long-term series "
                   f"{', '.join(_dotted(s) for s in skipped)}: supported in one step, but the changes "
                   "of every skipped series apply (the other checks include them)",
                   evidence=[Evidence("manifest.json", {"version": here, "target": u.target.key,
                                                        "skipped": [_dotted(s) for s in skipped]})],
                   severity="notice",
                   advice="Read the upgrade notes of each skipped series; test the application on "
                          "the target with a copy of the data.")
    return None


# -- accounts ------------------------------------------------------------------------------
@check("UPG-02", "Accounts use an authentication plugin the target disables or removes", "error",
       advice="Move each account to caching_sha2_password (ALTER USER … IDENTIFIED WITH "
              "caching_sha2_password BY '…') once its clients support it, or start the target with "
              "mysql_native_password=ON as a stopgap (MySQL 9.0 removes the plugin).",
       risk="Clients older than MySQL 8.0's libraries (or connectors without caching_sha2_password) "
            "cannot log in to a moved account; change and test one application at a time.",
       verify="SELECT user, host, plugin FROM mysql.user shows no mysql_native_password accounts.")
def authentication(u: Upgrade) -> Optional[Hit]:
    """Checks the accounts' authentication plugins against the target.

    **Why it matters**: MySQL 8.4 no longer enables mysql_native_password by default: an
    account using it cannot log in after the upgrade; authentication_fido is removed;
    sha256_password is deprecated. **Example**: 'app'@'%' with mysql_native_password and
    target 8.4. **Fix**: ALTER USER to caching_sha2_password, or mysql_native_password=ON.
    """
    if u.flavor != "mysql":
        raise NotApplicable("MariaDB keeps mysql_native_password")
    rows = _rows(u.need(ACCOUNTS), "accounts")
    usable = [r for r in rows if str(r.get("account_locked")) not in ("1", "Y", "True", "true")
              and str(r.get("is_role")) not in ("1", "Y", "True", "true")]
    broken = {"authentication_fido"} | ({"mysql_native_password"} if u.crosses((8, 4)) else set())
    hit = sorted(f"'{r.get('user')}'@'{r.get('host')}' ({r.get('plugin')})" for r in usable
                 if str(r.get("plugin") or "") in broken)
    if hit:
        return Hit(f"{len(hit)} accounts cannot log in on {u.target.label} as they are: {_names(hit)}",
                   evidence=[Evidence(ACCOUNTS, {"accounts": hit[:_LISTED]})])
    deprecated = sorted(f"'{r.get('user')}'@'{r.get('host')}'" for r in usable
                        if str(r.get("plugin") or "") == "sha256_password")
    if deprecated:
        return Hit(f"{len(deprecated)} accounts use the deprecated sha256_password: {_names(deprecated)}",
                   evidence=[Evidence(ACCOUNTS, {"accounts": deprecated[:_LISTED]})], severity="notice",
                   advice="Move them to caching_sha2_password (the same SHA-256 scheme, cached).")
    return None


# -- variables -----------------------------------------------------------------------------
def _removed_in(settings: List[cfg.Setting],
                removed: Dict[str, Removed]) -> List[Tuple[cfg.Setting, Removed]]:
    out = []
    for setting in settings:
        for key in cfg.lookup_keys(setting.key):
            if key in removed:
                out.append((setting, removed[key]))
                break
    return out


def _describe(pairs: List[Tuple[cfg.Setting, Removed]]) -> List[str]:
    return [f"{s.name} ({s.where()}; removed in {_dotted(r.version)}"
            + (f", use {r.instead}" if r.instead else "") + ")" for s, r in pairs]


@check("UPG-03", "Option files set variables the target removed", "error",
       advice="Before the upgrade, delete or replace each named line in the option file (the "
              "replacement is named beside it); keep a copy of the old file for a rollback.",
       risk="None on the old version when the variable only restates its default; otherwise set the "
            "replacement to keep the behaviour.",
       verify="`mysqld --validate-config` (MySQL 8.0.16+) or a test start of the target with the new "
              "file reports no unknown variable.")
def removed_in_option_files(u: Upgrade) -> Optional[Hit]:
    """Checks the server groups of the copied option files for variables the target removed.

    **Why it matters**: the target refuses to start on an unknown variable in `[mysqld]`
    (`unknown variable 'expire_logs_days=7'`); with the `loose-` prefix it only warns and
    ignores the setting. **Example**: `expire_logs_days = 7` before MySQL 8.4.
    **Fix**: `binlog_expire_logs_seconds = 604800` instead.
    """
    options = u.options()
    if options is None:
        raise Insufficient(u.bundle.why_missing(cfg.OPTION_FILES))
    pairs = _removed_in(options, u.removed())
    if not pairs:
        return None
    fatal = [p for p in pairs if not p[0].loose]
    lines = _describe(pairs)
    return Hit(f"{len(pairs)} removed variables in the option files"
               + ("" if fatal else " (all loose-: ignored with a warning)") + f": {_names(lines)}",
               evidence=[Evidence(cfg.OPTION_FILES, {"settings": lines[:_LISTED]})],
               severity=None if fatal else "notice")


@check("UPG-04", "Persisted variables (SET PERSIST) name variables the target removed", "error",
       advice="RESET PERSIST <name> for each, and SET PERSIST the replacement if the behaviour is "
              "wanted, before the upgrade.",
       risk="RESET PERSIST only changes mysqld-auto.cnf; the running value stays until a restart.",
       verify="SELECT * FROM performance_schema.persisted_variables no longer lists them.")
def removed_persisted(u: Upgrade) -> Optional[Hit]:
    """Checks mysqld-auto.cnf for variables the target removed.

    **Why it matters**: the server reads mysqld-auto.cnf at start-up; a removed variable in
    it stops the start like one in my.cnf. **Example**: a persisted
    `binlog_transaction_dependency_tracking` before 8.4. **Fix**: RESET PERSIST it.
    """
    if u.source_flavor != "mysql":
        raise NotApplicable("MariaDB has no SET PERSIST")
    persisted = u.persisted()
    if persisted is None:
        raise Insufficient(cfg.why_persisted_missing(u.bundle))
    pairs = _removed_in(persisted, u.removed())
    if not pairs:
        return None
    lines = _describe(pairs)
    return Hit(f"{len(pairs)} removed variables are persisted: {_names(lines)}",
               evidence=[Evidence(cfg.PERSISTED, {"settings": lines[:_LISTED]})])


@check("UPG-05", "Running values of removed variables differ from their default", "warning",
       advice="Find where each is set (the command line, an init file, SET GLOBAL by a script) and "
              "move the intent to the replacement named beside it before the upgrade.",
       risk="None before the upgrade; after it the old setting is silently gone (or refused).",
       verify="On the target, the replacement variable shows the intended value.")
def removed_running(u: Upgrade) -> Optional[Hit]:
    """Checks the running global values of variables the target removed against their defaults.

    **Why it matters**: a value set on the command line or with SET GLOBAL is not in the
    option files; after the upgrade the server either refuses the option or the behaviour
    silently reverts. **Example**: expire_logs_days=10 on 8.0. **Fix**: set
    binlog_expire_logs_seconds=864000 in my.cnf.
    """
    values = u.variables()
    written = (u.options() or []) + (u.persisted() or [])
    out = []
    for name, removed in sorted(u.removed().items()):
        if removed.default is None or name not in values or cfg.explicitly_set(written, name):
            continue
        if not _same(values[name], removed.default):
            out.append(f"{name}={values[name]} (default {removed.default}"
                       + (f"; use {removed.instead}" if removed.instead else "") + ")")
    if not out:
        return None
    return Hit(f"{len(out)} removed variables run with a non-default value set outside the option "
               f"files: {_names(out)}", evidence=[Evidence(VARIABLES, {"variables": out[:_LISTED]})])


def _same(value: Any, default: str) -> bool:
    left, right = to_number(value), to_number(default)
    if left is not None and right is not None:
        return left == right
    text = str(value).strip().upper()
    aliases = {"ON": "1", "OFF": "0", "TRUE": "1", "FALSE": "0"}
    return aliases.get(text, text) == aliases.get(default.upper(), default.upper())


@check("UPG-06", "sql_mode names modes the target removed", "error",
       advice="Remove the named modes from sql_mode in the option files and in applications that "
              "SET sql_mode (NO_AUTO_CREATE_USER's protection is built in since 8.0).",
       risk="Applications that set the mode in their session fail on the target until changed.",
       verify="SELECT @@GLOBAL.sql_mode on the target; the application's connections log no error 1231.")
def removed_sql_modes(u: Upgrade) -> Optional[Hit]:
    """Checks the global sql_mode and sql_mode lines of the option files for removed modes.

    **Why it matters**: MySQL 8.0 removed NO_AUTO_CREATE_USER, the DB2/MSSQL/ORACLE/…
    combination modes and NO_*_OPTIONS; an option file naming one stops the start, a
    session naming one gets error 1231. **Example**:
    `sql_mode=STRICT_TRANS_TABLES,NO_AUTO_CREATE_USER`. **Fix**: drop NO_AUTO_CREATE_USER.
    """
    modes = {m for m, version in REMOVED_SQL_MODES[u.flavor] if u.crosses(version)}
    if not modes:
        raise NotApplicable(f"{u.target.label} removed no SQL mode this server has")
    values = u.variables()
    found = []
    for mode in sorted(_modes(values.get("sql_mode", "")) & modes):
        found.append(f"{mode} (global sql_mode)")
    for setting in (u.options() or []) + (u.persisted() or []):
        if setting.key == "sql_mode":
            for mode in sorted(_modes(setting.value) & modes):
                found.append(f"{mode} ({setting.where()})")
    if not found:
        return None
    return Hit(f"sql_mode names modes {u.target.label} removed: {_names(found)}",
               evidence=[Evidence(VARIABLES, {"sql_mode": values.get("sql_mode", ""), "found": found})])


def _modes(text: str) -> set:
    return {m.strip().upper() for m in str(text).split(",") if m.strip()}


@check("UPG-07", "Defaults the target changes apply to this server", "warning",
       advice="For each named variable decide: keep the old behaviour by writing the old value into "
              "my.cnf before the upgrade, or accept the new default after testing it.",
       risk="Pinning an old value keeps today's behaviour; accepting the new one changes I/O, memory "
            "or semantics as listed. Do not raise innodb_io_capacity on spinning disks.",
       verify="After the upgrade SHOW GLOBAL VARIABLES shows the values you decided on.")
def changed_defaults(u: Upgrade) -> Optional[Hit]:
    """Checks the variables whose default the target changes, where this server runs on the old
    default (not set in the option files or persisted).

    **Why it matters**: a server that relies on a default gets the new one silently: MySQL 8.4
    runs innodb_io_capacity=10000 and no adaptive hash index; MariaDB 11.8 makes new tables
    utf8mb4 with uca1400 collations and turns on innodb_snapshot_isolation. **Example**:
    innodb_io_capacity=200 from the default on 8.0. **Fix**: pin it or accept it after a test.
    """
    values = u.variables()
    written = (u.options() or []) + (u.persisted() or [])
    changed = [c for c in DEFAULTS[u.flavor] if u.crosses(c.version) and c.name in values
               and _same(values[c.name], c.old) and not cfg.explicitly_set(written, c.name)]
    if not changed:
        return None
    lines = [f"{c.name} {c.old} → {c.new}: {c.effect}" for c in changed]
    return Hit(f"{len(changed)} defaults change on {u.target.label} for this server: {_names(lines)}",
               evidence=[Evidence(VARIABLES, {c.name: values[c.name] for c in changed})])


@check("UPG-08", "The query cache is in use and the target has none", "warning",
       advice="Measure what the cache saved (Qcache_hits per second) and plan for it: indexes for the "
              "cached statements, caching in the application or a proxy. Remove query_cache_* from "
              "my.cnf (UPG-03).",
       risk="Statements served from the cache today hit the storage engine after the upgrade.",
       verify="After the upgrade the statements' latency (performance_schema digests) is acceptable.")
def query_cache(u: Upgrade) -> Optional[Hit]:
    """Checks whether the query cache is on where the target (MySQL 8.0+) removed it.

    **Why it matters**: read-heavy workloads served from the query cache see more load when
    it is gone. **Example**: query_cache_type=1, query_cache_size=64M on 5.7. **Fix**: plan
    the capacity without it.
    """
    if u.flavor != "mysql" or not u.crosses((8, 0)):
        raise NotApplicable("the target keeps the query cache or the server has none")
    values = u.variables()
    kind = str(values.get("query_cache_type", "")).upper()
    size = to_number(values.get("query_cache_size"))
    if kind in ("", "OFF", "0") or not size:
        return None
    return Hit(f"the query cache is on (query_cache_type={kind}, query_cache_size={int(size)}) and "
               f"{u.target.label} has none",
               evidence=[Evidence(VARIABLES, {"query_cache_type": kind, "query_cache_size": int(size)})])


# -- names and schema ----------------------------------------------------------------------
def _known_names(u: Upgrade) -> Tuple[List[Tuple[str, str]], bool]:
    """(kind, name) for the schemas and tables the bundle names, and whether any member had them."""
    found = False
    names: List[Tuple[str, str]] = []
    overview = u.bundle.json(OVERVIEW)
    if isinstance(overview, dict):
        found = True
        per_schema = overview.get("tables_per_schema")
        names += [("schema", str(s)) for s in (per_schema if isinstance(per_schema, dict) else [])]
        names += [("table", f"{r.get('schema_name')}.{r.get('table_name')}")
                  for r in _rows(overview, "top_tables")]
    facts = u.bundle.json(TABLE_FACTS)
    if isinstance(facts, dict):
        found = True
        for key in ("without_primary_key", "non_innodb", "unopenable"):
            names += [("table", f"{r.get('schema')}.{r.get('table')}") for r in _rows(facts, key)]
    return sorted(set(names)), found


@check("UPG-09", "Schema or table names are words the target reserves", "warning",
       advice="Quote the names with backticks in every statement that uses them (`rank`), or rename "
              "the objects before the upgrade; search the application's SQL for the bare word.",
       risk="A rename breaks every query that names the object; quoting is safe on both versions.",
       verify="The application's statements run on a test server of the target without error 1064.")
def reserved_names(u: Upgrade) -> Optional[Hit]:
    """Checks the schema and table names the bundle holds against the target's new reserved
    words. The bundle holds every schema name, the largest tables and the tables other facts
    list; other tables and all column names are not checked (the note says so).

    **Why it matters**: an unquoted reserved word is a syntax error (1064) on the target.
    **Example**: a table `rank` before MySQL 8.0. **Fix**: quote it or rename it.
    """
    words = {w for w, version in RESERVED[u.flavor] if u.crosses(version)}
    if not words:
        raise NotApplicable(f"no new reserved words known between this server and {u.target.label}")
    names, found = _known_names(u)
    if not found:
        raise Insufficient(u.bundle.why_missing(OVERVIEW))
    hits = sorted(f"{kind} {name}" for kind, name in names if name.split(".")[-1].upper() in words)
    if not hits:
        return None
    return Hit(f"{len(hits)} names are reserved words on {u.target.label}: {_names(hits)}",
               evidence=[Evidence(OVERVIEW, {"names": hits[:_LISTED]},
                                  note="schema names, top tables and listed tables only: other "
                                       "tables and columns were not checked")])


@check("UPG-10", "Columns and schemas use utf8mb3 or another deprecated character set", "notice",
       advice="Convert in a maintenance window: ALTER SCHEMA … CHARACTER SET utf8mb4 for defaults, "
              "ALTER TABLE … CONVERT TO CHARACTER SET utf8mb4 per table (rebuilds it; check index "
              "key lengths: 4 bytes per character).",
       risk="CONVERT rebuilds the table (time, disk, replica lag) and widens keys; test first.",
       verify="mysql/table_facts.json of a new bundle lists no deprecated character sets.")
def deprecated_charsets(u: Upgrade) -> Optional[Hit]:
    """Checks the tables' columns, schema defaults and other tables' defaults for utf8mb3 and
    the character sets MySQL deprecated.

    **Why it matters**: MySQL deprecates utf8mb3 (the `utf8` alias will mean utf8mb4); on
    MariaDB 11.8, utf8mb4 becomes the default, and joins between utf8mb3 and utf8mb4
    columns convert values and can stop using indexes. **Example**: 40 utf8mb3 columns in
    shop.orders. **Fix**: convert to utf8mb4.
    """
    if u.flavor == "mariadb" and not u.crosses((11, 6)):
        raise NotApplicable("utf8mb3 is neither deprecated nor against the default on this target")
    facts = u.need(TABLE_FACTS)
    charsets = facts.get("deprecated_charsets") if isinstance(facts, dict) else None
    if not isinstance(charsets, dict):
        raise Insufficient("mysql/table_facts.json has no deprecated_charsets")
    columns = _rows(charsets, "innodb_columns")
    schemas = _rows(charsets, "schema_defaults")
    tables = _rows(charsets, "non_innodb_table_defaults")
    if not (columns or schemas or tables):
        return None
    count = sum(int(to_number(c.get("columns")) or 0) for c in columns)
    listed = ([f"{c.get('schema')}.{c.get('table')} ({c.get('collation')})" for c in columns]
              + [f"schema {s.get('schema')} ({s.get('charset')})" for s in schemas]
              + [f"{t.get('schema')}.{t.get('table')} ({t.get('collation')})" for t in tables])
    return Hit(f"{count} columns in {len(columns)} tables, {len(schemas)} schema defaults and "
               f"{len(tables)} table defaults use deprecated character sets: {_names(listed)}",
               evidence=[Evidence(TABLE_FACTS, {"columns": count, "objects": listed[:_LISTED]})])


@check("UPG-11", "Partitioned tables on engines without native partitioning", "error",
       advice="Before the upgrade, ALTER TABLE … ENGINE=InnoDB each partitioned MyISAM/other table, "
              "or remove its partitioning (ALTER TABLE … REMOVE PARTITIONING).",
       risk="Both rebuild the table.",
       verify="SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.PARTITIONS WHERE "
              "ENGINE <> 'InnoDB' returns nothing.")
def partitioned_non_innodb(u: Upgrade) -> Optional[Hit]:
    """Checks for partitioned tables on engines other than InnoDB before MySQL 8.0.

    **Why it matters**: MySQL 8.0 partitions only InnoDB (and NDB) tables; the upgrade stops
    at a partitioned MyISAM table. **Example**: a MyISAM log table partitioned by month.
    **Fix**: convert it to InnoDB first. The bundle does not record partitioning, so this
    check says what to run instead of passing.
    """
    if u.flavor != "mysql" or not u.crosses((8, 0)):
        raise NotApplicable("native partitioning does not change on this target")
    facts = u.need(TABLE_FACTS)
    engines = {str(r.get("engine") or "").lower() for r in _rows(facts, "non_innodb")}
    if isinstance(facts, dict) and not engines - {"", "innodb"} and "non_innodb" in facts:
        return None  # no table on another engine: nothing can be partitioned on one
    raise Insufficient("the bundle does not record which tables are partitioned: run SELECT DISTINCT "
                       "TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.PARTITIONS WHERE "
                       "PARTITION_NAME IS NOT NULL AND ENGINE <> 'InnoDB'")


@check("UPG-12", "The upgrade's own step differs on the target", "notice",
       advice="Follow the target's procedure named in the summary.",
       risk="Skipping the upgrade step leaves system tables of the old version: privilege and "
            "statistics errors after the start.",
       verify="The error log after the first start of the target shows the upgrade step completing.")
def upgrade_tool(u: Upgrade) -> Optional[Hit]:
    """Says which upgrade step the target needs: mysql_upgrade, the server's own upgrade, or
    mariadb-upgrade.

    **Why it matters**: MySQL 8.0.16+ upgrades its system tables itself at start-up
    (`--upgrade=AUTO`) and mysql_upgrade is deprecated; MariaDB needs `mariadb-upgrade` run
    after the first start (11.x packages may not ship the `mysql_upgrade` name).
    **Fix**: use the named step; update automation that calls the old name.
    """
    if u.flavor == "mysql":
        text = (f"{u.target.label} upgrades the data dictionary and system tables itself at the first "
                "start (--upgrade=AUTO): do not run mysql_upgrade (deprecated since 8.0.16); watch the "
                "error log of that start")
    else:
        text = (f"after the first start of {u.target.label} run `mariadb-upgrade` (the `mysql_upgrade` "
                "name is a deprecated alias that 11.x packages may not ship); update scripts that call "
                "the mysql* client names")
    return Hit(text, evidence=[Evidence("manifest.json", {"target": u.target.key})])


@check("UPG-13", "Tables use a storage engine the target does not have", "error",
       advice="ALTER TABLE … ENGINE=InnoDB for each table on the engine before the upgrade (or dump "
              "and reload it).",
       risk="Rebuilds each table; its engine-specific features (compression, clustering) change.",
       verify="SELECT ENGINE, COUNT(*) FROM information_schema.TABLES GROUP BY ENGINE shows none left.")
def removed_engines(u: Upgrade) -> Optional[Hit]:
    """Checks the engines of the bundle's tables against engines the target removed.

    **Why it matters**: a table whose engine is gone cannot be opened after the upgrade.
    **Example**: TokuDB tables before Percona Server 8.0.28 / MariaDB 10.6. **Fix**: convert
    them to InnoDB (or MyRocks) first.
    """
    gone = {name for name, version in REMOVED_ENGINES[u.flavor] if u.crosses(version)}
    if not gone:
        raise NotApplicable(f"{u.target.label} removed no engine this server may have")
    overview, facts = u.bundle.json(OVERVIEW), u.bundle.json(TABLE_FACTS)
    if not isinstance(overview, dict) and not isinstance(facts, dict):
        raise Insufficient(u.bundle.why_missing(OVERVIEW))
    counted: Dict[str, int] = {}
    for schema in _rows(overview, "schemas") if isinstance(overview, dict) else []:
        engines = schema.get("engines")
        for engine, count in (engines.items() if isinstance(engines, dict) else []):
            if str(engine).lower() in gone:
                counted[str(engine)] = counted.get(str(engine), 0) + int(to_number(count) or 0)
    if not counted:
        for row in _rows(facts, "non_innodb") if isinstance(facts, dict) else []:
            if str(row.get("engine") or "").lower() in gone:
                counted[str(row["engine"])] = counted.get(str(row["engine"]), 0) + 1
    if not counted:
        return None
    return Hit(f"tables on engines {u.target.label} does not have: "
               + ", ".join(f"{n} ({k} tables)" for n, k in sorted(counted.items())),
               evidence=[Evidence(OVERVIEW, {"tables_by_engine": counted})])


def _plugins(u: Upgrade) -> List[Dict[str, Any]]:
    return [p for p in _rows(u.need(PLUGINS)) if str(p.get("status") or "").upper() == "ACTIVE"]


@check("UPG-14", "Plugins are loaded that the target no longer has", "error",
       advice="Replace each plugin by what is named beside it (configured before the upgrade), and "
              "remove its plugin-load / early-plugin-load line.",
       risk="A keyring moved wrongly makes encrypted tablespaces unreadable: migrate keys with the "
            "documented keyring migration and test the restore first.",
       verify="The target starts without 'unknown plugin' errors and the replacement shows in "
              "performance_schema / INFORMATION_SCHEMA.PLUGINS.")
def removed_plugins(u: Upgrade) -> Optional[Hit]:
    """Checks the active plugins against plugins the target removed.

    **Why it matters**: MySQL 8.4 removed the keyring_file and keyring_encrypted_file plugins
    (components replace them) and authentication_fido; a plugin-load line for one stops the
    start, and a keyring that does not load leaves encrypted tables closed.
    **Example**: early-plugin-load=keyring_file.so. **Fix**: the keyring component.
    """
    gone = {name: instead for name, version, instead in REMOVED_PLUGINS[u.flavor] if u.crosses(version)}
    if not gone:
        raise NotApplicable(f"{u.target.label} removed no plugin this server may have")
    found = sorted(f"{p.get('name')} (use {gone[str(p.get('name')).lower()]})" for p in _plugins(u)
                   if str(p.get("name") or "").lower() in gone)
    if not found:
        return None
    return Hit(f"active plugins {u.target.label} does not have: {_names(found)}",
               evidence=[Evidence(PLUGINS, {"plugins": found})])


@check("UPG-15", "Full-text parser plugins are loaded from a library", "warning",
       advice="Get the plugin built for the target version before the upgrade; rebuild the FULLTEXT "
              "indexes that use it after (ALTER TABLE … FORCE) if its vendor says so.",
       risk="Without the plugin, the tables whose FULLTEXT indexes use it cannot be opened.",
       verify="SELECT * FROM information_schema.PLUGINS WHERE PLUGIN_TYPE='FTPARSER' on the target.")
def fulltext_parsers(u: Upgrade) -> Optional[Hit]:
    """Checks for full-text parser plugins loaded from a shared library (not built in).

    **Why it matters**: a plugin library is built for one server version's plugin API; the
    target may refuse it, and tables whose FULLTEXT indexes name the parser do not open.
    **Example**: a custom `ftparser_cjk.so`. **Fix**: install its build for the target.
    """
    found = sorted(f"{p.get('name')} ({p.get('library')})" for p in _plugins(u)
                   if str(p.get("type") or "").upper() == "FTPARSER" and p.get("library"))
    if not found:
        return None
    return Hit(f"full-text parser plugins from libraries: {_names(found)}",
               evidence=[Evidence(PLUGINS, {"plugins": found})])


@check("UPG-16", "Old temporal columns (before MySQL 5.6.4's format) block the upgrade", "error",
       advice="ALTER TABLE … FORCE each table with old TIME/DATETIME/TIMESTAMP columns on 5.7 before "
              "the upgrade.",
       risk="Rebuilds each table.",
       verify="With show_old_temporals=ON, no COLUMN_TYPE in information_schema.COLUMNS ends in "
              "'/* 5.5 binary format */'.")
def old_temporals(u: Upgrade) -> Optional[Hit]:
    """Checks for TIME, DATETIME and TIMESTAMP columns in the pre-5.6.4 format.

    **Why it matters**: MySQL 8.0 cannot upgrade tables with them in place. The bundle holds
    no column types, so this check is reported as not checked with the query to run.
    **Fix**: ALTER TABLE … FORCE on 5.7.
    """
    if u.flavor != "mysql" or not u.crosses((8, 0)):
        raise NotApplicable("only MySQL 5.x to 8.0 upgrades are blocked by old temporal columns")
    raise Insufficient("the bundle holds no column types: on the server run SET SESSION "
                       "show_old_temporals=ON; SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM "
                       "information_schema.COLUMNS WHERE COLUMN_TYPE LIKE '%5.5 binary format%'")


@check("UPG-17", "Columns use deprecated definitions (ZEROFILL, display widths, FLOAT(M,D))", "notice",
       advice="Drop ZEROFILL (format in the application: LPAD), integer display widths and FLOAT(M,D) "
              "precision from new definitions; AUTO_INCREMENT on FLOAT/DOUBLE columns should become "
              "an integer column.",
       verify="SHOW WARNINGS after each CREATE/ALTER on the target shows no deprecation warning.")
def deprecated_columns(u: Upgrade) -> Optional[Hit]:
    """Checks for column features MySQL 8.0 deprecated: ZEROFILL, integer display widths,
    FLOAT(M,D)/DOUBLE(M,D), AUTO_INCREMENT on FLOAT/DOUBLE, UNSIGNED on decimal types.

    **Why it matters**: they still work but print warnings and will be removed; information
    from display widths is gone from SHOW CREATE TABLE in 8.0. The bundle holds no column
    definitions, so this check is reported as not checked with the query to run.
    """
    if u.flavor != "mysql":
        raise NotApplicable("MariaDB does not deprecate these column features")
    raise Insufficient("the bundle holds no column definitions: on the server run SELECT TABLE_SCHEMA, "
                       "TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS "
                       "WHERE COLUMN_TYPE LIKE '%zerofill%' OR COLUMN_TYPE REGEXP '^(float|double)\\\\(' "
                       "OR (DATA_TYPE IN ('float','double') AND EXTRA LIKE '%auto_increment%')")


@check("UPG-18", "Option files use deprecated variable names", "notice",
       advice="Rename each to the name given (same meaning) in the option files; the old names will "
              "be removed in a later version.",
       risk="None on a server that knows the new name; check it does before rolling out.",
       verify="The error log of the target's first start has no 'deprecated' warning for them.")
def deprecated_names(u: Upgrade) -> Optional[Hit]:
    """Checks the option files and persisted variables for names the target deprecates
    (slave_* → replica_*, master_* → source_*, innodb_log_file_size → innodb_redo_log_capacity).

    **Why it matters**: they work on the target with a warning each start and disappear in a
    later release. **Example**: `log_slave_updates = ON`. **Fix**: `log_replica_updates = ON`.
    """
    options = u.options()
    if options is None:
        raise Insufficient(u.bundle.why_missing(cfg.OPTION_FILES))
    names = dict(DEPRECATED[u.flavor])
    found = sorted({f"{s.name} ({s.where()}" + (f"; use {names[s.key]}" if names[s.key] else "") + ")"
                    for s in options + (u.persisted() or []) if s.key in names})
    if not found:
        return None
    return Hit(f"{len(found)} deprecated names in the configuration: {_names(found)}",
               evidence=[Evidence(cfg.OPTION_FILES, {"settings": found[:_LISTED]})])


@check("UPG-19", "The target's optimizer cost model changes query plans", "warning",
       advice="Replay the heaviest statements (performance_schema digests, the slow log) against a "
              "copy on the target with EXPLAIN/ANALYZE before switching production.",
       risk="A regressed plan can be pinned with index hints or optimizer_switch while it is reported.",
       verify="The digests' latency on the target matches or beats today's.")
def cost_model(u: Upgrade) -> Optional[Hit]:
    """Checks for an upgrade across MariaDB 11.0, whose new optimizer cost model (SSD-based
    costs, new optimizer_*_cost variables) chooses different plans.

    **Why it matters**: most plans improve, some regress; the regressions show as slower
    statements after the switch. **Fix**: test the workload on the target first.
    """
    if u.flavor != "mariadb" or not u.crosses((11, 0)):
        raise NotApplicable("no cost-model change between this server and the target")
    return Hit(f"{u.bundle.version} plans with the old cost model; {u.target.label} uses the 11.0 cost "
               "model: query plans can change",
               evidence=[Evidence("manifest.json", {"target": u.target.key})])


@check("UPG-20", "Clients verify TLS by default on the target and the server has no certificate",
       "warning",
       advice="Give the server a certificate clients trust (ssl_cert/ssl_key signed by your CA), or "
              "configure the clients: local socket connections are exempt, TCP clients need the CA "
              "(--ssl-ca) or, knowingly, --disable-ssl-verify-server-cert.",
       risk="Turning verification off in clients removes protection against a man in the middle.",
       verify="A TCP client of the target's version connects with default options.")
def tls_default(u: Upgrade) -> Optional[Hit]:
    """Checks whether the server has TLS configured before an upgrade across MariaDB 11.4,
    whose server enables TLS by default (a self-signed certificate when none is given) and
    whose clients verify the server's certificate by default.

    **Why it matters**: TCP clients of 11.4 refuse a server certificate they cannot verify.
    **Example**: have_ssl=DISABLED on 10.11. **Fix**: a CA-signed certificate, or the CA in
    the clients' option files.
    """
    if u.flavor != "mariadb" or not u.crosses((11, 4)):
        raise NotApplicable("no TLS default change between this server and the target")
    values = u.variables()
    if str(values.get("have_ssl", "")).upper() == "YES" and values.get("ssl_cert"):
        return None
    return Hit(f"TLS is not configured (have_ssl={values.get('have_ssl') or 'unknown'}, ssl_cert="
               f"{values.get('ssl_cert') or 'empty'}); {u.target.label} clients verify the server "
               "certificate by default", evidence=[Evidence(VARIABLES, {
                   "have_ssl": values.get("have_ssl"), "ssl_cert": values.get("ssl_cert")})])
