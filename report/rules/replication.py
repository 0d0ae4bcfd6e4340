"""Rules: replica health — broken threads with their real error, lag and its trend, a
writable replica, crash safety, GTID, parallel apply, chained replicas.

SHOW SLAVE STATUS (MariaDB, MySQL before 8.0.22) and SHOW REPLICA STATUS (MySQL 8.0.22+)
name the same columns differently; every read here takes either name.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from report.facts import replica_count
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule
from report.window import Window

GROUP = "replication"
STATUS_NOW = "mysql/replication/replica_status.json"
STATUS_SAMPLES = "mysql/replication/replica_status.jsonl"
VARIABLES = "mysql/global_variables.json"
REPLICA_HOSTS = "mysql/replication/replica_hosts.json"
WORKERS = "mysql/replication/applier_workers.json"
GTID = "mysql/replication/gtid.json"

#: Quoted server text (an error message) is cut to this many characters.
QUOTE = 300

IO_RUNNING = ("Slave_IO_Running", "Replica_IO_Running")
SQL_RUNNING = ("Slave_SQL_Running", "Replica_SQL_Running")
LAG = ("Seconds_Behind_Master", "Seconds_Behind_Source")
NAME = ("Connection_name", "Channel_Name", "Channel_name")


def _field(channel: Dict[str, Any], names: Tuple[str, ...]) -> Any:
    for name in names:
        if name in channel:
            return channel[name]
    return None


def _text(value: Any) -> str:
    """Server text for evidence: a string, control characters shown, at most QUOTE chars."""
    text = "" if value is None else str(value)
    text = "".join(ch if ch >= " " or ch == "\t" else "\ufffd" for ch in text[:QUOTE * 2])
    return text[:QUOTE]


def _name(channel: Dict[str, Any]) -> str:
    return _text(_field(channel, NAME))[:64] or "(default)"


def _channel_list(value: Any) -> List[Dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [c for c in value if isinstance(c, dict)]


def _channels(b: Bundle) -> List[Dict[str, Any]]:
    """The replica's channels now (the last sample, else the one-shot reading); NotApplicable
    when none is configured."""
    rows = [r for r in b.jsonl(STATUS_SAMPLES) if isinstance(r.get("channels"), list)]
    if rows:
        channels = _channel_list(rows[-1]["channels"])
    else:
        data = b.json(STATUS_NOW)
        if not isinstance(data, dict) or "channels" not in data:
            raise Insufficient(b.why_missing(STATUS_NOW))
        channels = _channel_list(data.get("channels"))
    if not channels:
        raise NotApplicable("not a replica (no replication channel)")
    return channels


def _yes(value: Any) -> bool:
    return str(value or "").strip().lower() == "yes"


def _lag_window(b: Bundle, channel: str) -> Window:
    """The channel's lag and thread states over the samples, as a Window."""
    rows = []
    for row in b.jsonl(STATUS_SAMPLES):
        for ch in _channel_list(row.get("channels")):
            if _name(ch) == channel:
                rows.append({"ts": row.get("ts"), "values": {
                    "lag": to_number(_field(ch, LAG)),
                    "io": 1 if _yes(_field(ch, IO_RUNNING)) else 0,
                    "sql": 1 if _yes(_field(ch, SQL_RUNNING)) else 0}})
    return Window.from_rows(rows, "values")


def _worker_errors(b: Bundle) -> List[Dict[str, Any]]:
    """The parallel applier workers' own errors (performance_schema), at most three."""
    errors = []
    workers = b.json(WORKERS)
    for row in workers if isinstance(workers, list) else []:
        if not isinstance(row, dict):
            continue
        number = to_number(row.get("LAST_ERROR_NUMBER"))
        if number:
            errors.append({"channel": _text(row.get("CHANNEL_NAME"))[:64], "errno": int(number),
                           "error": _text(row.get("LAST_ERROR_MESSAGE"))})
    return errors[:3]


@rule("REPL-01", "A replication thread is stopped",
      group=GROUP, severity="error", needs=(),
      advice="Read the thread's error below. An SQL thread stopped on a duplicate key or a missing row "
             "(1062, 1032) means the replica diverged: compare it with the source (pt-table-checksum) "
             "and rebuild it rather than skip events. An I/O thread error names the connection or the "
             "binary log position: check the network, the replication account and whether the source "
             "still has the binary log the replica asks for (SHOW BINARY LOGS on the source).",
      risk="Skipping events (sql_slave_skip_counter, gtid_next empty transactions) hides the divergence "
           "and makes it grow: only after the cause is understood.",
      verify="SHOW REPLICA STATUS shows both threads Yes and the lag falling over a new window.")
def stopped_thread(b: Bundle) -> Optional[Hit]:
    """Checks each replication channel's I/O and SQL threads, and quotes the error that
    stopped them (`Last_IO_Errno`/`Last_IO_Error`, `Last_SQL_Errno`/`Last_SQL_Error`, and for a
    parallel replica the workers' own errors from performance_schema).

    **Why it matters**: a stopped SQL thread means the replica no longer applies changes: it
    falls behind by the second, and a failover to it loses everything since. A stopped I/O
    thread means it no longer receives them. An error is the server's explanation; a thread
    stopped without one was stopped by someone (`STOP SLAVE`) and forgotten.

    **Example**: `Slave_SQL_Running: No`, `Last_SQL_Errno: 1062`, `Last_SQL_Error: Could not
    execute Write_rows_v1 event on table app.t; Duplicate entry '…' for key 'PRIMARY'`.

    **Fix**: act on the error (see the advice); never skip events blindly.
    """
    problems = []
    evidence = []
    worst = None
    for ch in _channels(b):
        io, sql = _field(ch, IO_RUNNING), _field(ch, SQL_RUNNING)
        if io is None and sql is None:
            continue
        io_ok, sql_ok = _yes(io), _yes(sql)
        if io_ok and sql_ok:
            continue
        io_err, sql_err = to_number(ch.get("Last_IO_Errno")), to_number(ch.get("Last_SQL_Errno"))
        values: Dict[str, Any] = {"channel": _name(ch), "io_running": _text(io)[:20],
                                  "sql_running": _text(sql)[:20]}
        if not io_ok and (io_err or ch.get("Last_IO_Error")):
            values.update(Last_IO_Errno=int(io_err or 0), Last_IO_Error=_text(ch.get("Last_IO_Error")))
        if not sql_ok and (sql_err or ch.get("Last_SQL_Error")):
            values.update(Last_SQL_Errno=int(sql_err or 0), Last_SQL_Error=_text(ch.get("Last_SQL_Error")))
        severity = ("critical" if not sql_ok and "Last_SQL_Errno" in values
                    else "error" if "Last_IO_Errno" in values or not sql_ok else "warning")
        if worst is None or ["warning", "error", "critical"].index(severity) > \
                ["warning", "error", "critical"].index(worst):
            worst = severity
        threads = [name for name, ok in (("I/O", io_ok), ("SQL", sql_ok)) if not ok]
        reason = values.get("Last_SQL_Error") or values.get("Last_IO_Error") or "no error recorded"
        problems.append(f"channel {values['channel']}: {' and '.join(threads)} thread not running "
                        f"({reason[:120]})")
        evidence.append(Evidence(STATUS_NOW, values))
    if not problems:
        return None
    workers = _worker_errors(b)
    if workers:
        evidence.append(Evidence(WORKERS, {"worker_errors": workers},
                                 note="the applier workers' own errors (the coordinator's error only "
                                      "says a worker failed)"))
    return Hit("; ".join(problems[:4]), severity=worst, evidence=evidence)


@rule("REPL-02", "Replica lag grows during the window",
      group=GROUP, severity="warning", window=True, needs=(),
      advice="The replica applies slower than the source writes. Look at what it applies (the SQL "
             "thread's state, long transactions on the source, tables without primary keys under ROW "
             "format) and at its I/O (disk latency of the replica); enable parallel replication "
             "(slave_parallel_threads / replica_parallel_workers) when the workload allows.",
      risk="Reading diagnostics costs nothing; each remedy has its own cost (see the related rules).",
      verify="Over a new window the lag's trend is flat or falling.")
def lag_growing(b: Bundle) -> Optional[Hit]:
    """Checks the trend of each channel's lag (`Seconds_Behind_Master` /
    `Seconds_Behind_Source`) over the window's samples of replica status.

    **Why it matters**: a single lag reading says little (a big transaction makes it jump and
    fall); a lag that grows at a steady slope across the window says the replica cannot keep
    up, and tells how long until it is an hour behind.

    **Example**: lag 40 s → 95 s over 60 s of samples: it grows by about 0.9 s per second.

    **Fix**: find what the replica waits on; parallel apply; faster storage on the replica.
    """
    hits = []
    evidence = []
    for ch in _channels(b):
        name = _name(ch)
        w = _lag_window(b, name)
        trend = w.trend("lag")
        if trend.per_second <= 0.2 or trend.last - trend.first < 10 or trend.last < 30:
            continue
        hits.append(f"channel {name}: lag {trend.first:,.0f} s → {trend.last:,.0f} s "
                    f"(+{trend.per_second:.2f} s per second)")
        evidence.append(Evidence(STATUS_SAMPLES, {"channel": name,
                                                  "slope_s_per_s": round(trend.per_second, 3),
                                                  "first": trend.first, "last": trend.last},
                                 samples=w.evidence_samples("lag")))
    if not hits:
        return None
    return Hit("; ".join(hits[:4]), evidence=evidence)


@rule("REPL-03", "The replica is far behind its source",
      group=GROUP, severity="warning", needs=(),
      advice="Find what holds the SQL thread (its state in SHOW REPLICA STATUS, a long transaction "
             "replayed, tables without primary keys under ROW format); do not fail over to this "
             "replica until it has caught up.",
      risk="None from looking; a failover to a lagging replica loses the unapplied changes.",
      verify="Seconds_Behind_Master (Seconds_Behind_Source) falls below a minute.")
def lag_high(b: Bundle) -> Optional[Hit]:
    """Checks each channel's current lag (`Seconds_Behind_Master` / `Seconds_Behind_Source`).

    **Why it matters**: reads from a lagging replica see old data, and a failover to it loses
    the changes it has not applied. Five minutes is where most applications notice; an hour is
    an outage of the replica's purpose.

    **Example**: `Seconds_Behind_Master: 1800`.

    **Fix**: find and remove the cause (see REPL-02 for the trend).
    """
    worst: Optional[float] = None
    evidence = []
    for ch in _channels(b):
        lag = to_number(_field(ch, LAG))
        if lag is None or lag < 300:
            continue
        worst = lag if worst is None else max(worst, lag)
        evidence.append(Evidence(STATUS_NOW, {"channel": _name(ch), "lag_seconds": lag}))
    if worst is None:
        return None
    return Hit(f"{len(evidence)} channel(s) behind by up to {worst:,.0f} s ({worst / 60:,.0f} min)",
               severity="error" if worst >= 3600 else "warning", evidence=evidence)


@rule("REPL-04", "A replica accepts writes (read_only is off)",
      group=GROUP, severity="warning", confidence="medium", needs=(VARIABLES,),
      advice="SET GLOBAL read_only=ON on the replica (MySQL: also super_read_only=ON) and in the option "
             "file; the replication threads still apply changes. Give application accounts no SUPER "
             "(MySQL) / READ_ONLY ADMIN (MariaDB) privilege.",
      risk="Applications that write to this server by design (a multi-source or active-active setup) "
           "will get errors: check before switching.",
      verify="SELECT @@read_only returns 1; a write by an application account fails with error 1290.")
def writable_replica(b: Bundle) -> Optional[Hit]:
    """Checks that a replica is `read_only` (and, on MySQL, `super_read_only`).

    **Why it matters**: a write made directly on a replica diverges it from its source; the
    next replicated change to the same row breaks replication (duplicate key, row not found)
    or, worse, silently overwrites. `read_only` does not stop accounts with SUPER (MySQL);
    `super_read_only` does.

    **Example**: a replica with `read_only=OFF`.

    **Fix**: `read_only=ON` (and `super_read_only=ON` on MySQL).
    """
    _channels(b)
    read_only = b.switch("read_only")
    if read_only is None:
        raise Insufficient("read_only is not in the variables")
    chained = bool(replica_count(b))
    if not read_only:
        return Hit("This server replicates from a source but accepts writes (read_only=OFF)"
                   + ("; it also has replicas of its own (a chain or a ring?)" if chained else ""),
                   confidence="low" if chained else "medium",
                   evidence=[Evidence(VARIABLES, {"read_only": b.variable("read_only")})])
    if not b.version.is_mariadb and b.switch("super_read_only") is False:
        return Hit("read_only=ON but super_read_only=OFF: accounts with SUPER or "
                   "CONNECTION_ADMIN can still write to the replica", severity="notice",
                   evidence=[Evidence(VARIABLES, {"read_only": b.variable("read_only"),
                                                  "super_read_only": b.variable("super_read_only")})])
    return None


@rule("REPL-05", "Replication is not crash-safe",
      group=GROUP, severity="warning", needs=(VARIABLES,),
      advice="Set relay_log_recovery=ON (option file; read at start-up). MySQL before 8.0.23: also "
             "relay_log_info_repository=TABLE and master_info_repository=TABLE. MariaDB: replicate with "
             "MASTER_USE_GTID=slave_pos so the position is kept in mysql.gtid_slave_pos (InnoDB), "
             "updated in the same transaction as the data.",
      risk="relay_log_recovery discards unapplied relay logs at start-up and fetches them again from "
           "the source: the source must still have those binary logs. Changing the repositories needs "
           "the replication threads stopped.",
      verify="After a restart of the replica (or a kill -9 in a test), SHOW REPLICA STATUS resumes "
             "without duplicate-key errors.")
def crash_safety(b: Bundle) -> Optional[Hit]:
    """Checks the settings that let a replica survive its own crash: `relay_log_recovery`,
    on MySQL the info repositories (`relay_log_info_repository`, `master_info_repository`),
    and on MariaDB whether the applied position is kept transactionally (GTID mode
    `slave_pos`, the `mysql.gtid_slave_pos` table).

    **Why it matters**: without them, a replica that crashes restarts from a position written
    to a file independently of the data: it re-applies or skips transactions, and stops on a
    duplicate key or a missing row, or diverges silently.

    **Example**: `relay_log_recovery=OFF`, `relay_log_info_repository=FILE`.

    **Fix**: `relay_log_recovery=ON`; TABLE repositories (MySQL); GTID positions (MariaDB).
    """
    channels = _channels(b)
    reasons: Dict[str, Any] = {}
    if b.switch("relay_log_recovery") is False:
        reasons["relay_log_recovery"] = "OFF"
    if b.version.is_mariadb:
        no_gtid = [_name(c) for c in channels if str(c.get("Using_Gtid") or "").strip().lower() == "no"]
        if no_gtid:
            reasons["channels_on_file_positions"] = no_gtid[:10]
    else:
        for name in ("relay_log_info_repository", "master_info_repository"):
            value = (b.variable(name) or "").strip().upper()
            if value == "FILE":
                reasons[name] = value
    if not reasons:
        return None
    return Hit("A crash of this replica can leave its position out of step with its data: "
               + ", ".join(f"{k}={v}" if isinstance(v, str) else f"{k}: {', '.join(v)}"
                           for k, v in reasons.items()),
               evidence=[Evidence(VARIABLES, reasons)])


@rule("REPL-06", "Replication does not use GTIDs consistently",
      group=GROUP, severity="notice", needs=(VARIABLES,),
      advice="MySQL: move to gtid_mode=ON with enforce_gtid_consistency=ON step by step (OFF_PERMISSIVE, "
             "ON_PERMISSIVE, ON; see the manual's online procedure), then CHANGE REPLICATION SOURCE TO "
             "SOURCE_AUTO_POSITION=1. MariaDB: STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID=slave_pos; "
             "START SLAVE.",
      risk="The MySQL procedure needs every server of the topology to pass each step; a transaction "
           "unsafe for GTIDs fails once enforce_gtid_consistency=ON (test with WARN first).",
      verify="MySQL: SELECT @@gtid_mode returns ON and Auto_Position is 1; MariaDB: Using_Gtid is "
             "Slave_Pos.")
def gtid_consistency(b: Bundle) -> Optional[Hit]:
    """Checks how a replica tracks its position: by GTID (MySQL `gtid_mode=ON` with
    `enforce_gtid_consistency=ON` and auto-positioning; MariaDB `Using_Gtid: Slave_Pos`) or by
    binary log file and offset.

    **Why it matters**: with file positions, re-pointing a replica to another source after a
    failover means finding the matching file and offset by hand, the classic way to lose or
    duplicate transactions. A MySQL server left in a transitional `gtid_mode`
    (`OFF_PERMISSIVE`, `ON_PERMISSIVE`) mixes both kinds of transactions.

    **Example**: MySQL 8.0 replica with `gtid_mode=OFF`; or a MariaDB replica with
    `Using_Gtid: No`.

    **Fix**: GTID positioning (see the advice).
    """
    channels = _channels(b)
    if b.version.is_mariadb:
        files = [_name(c) for c in channels if str(c.get("Using_Gtid") or "").strip().lower() == "no"]
        if not files:
            return None
        return Hit(f"{len(files)} channel(s) replicate by binary log file and position (Using_Gtid: No)",
                   evidence=[Evidence(STATUS_NOW, {"channels": files[:10]})])
    gtid = b.json(GTID, {})
    gtid = gtid if isinstance(gtid, dict) else {}
    mode = str(gtid.get("gtid_mode") or b.variable("gtid_mode") or "").strip().upper()
    enforce = str(gtid.get("enforce_gtid_consistency") or b.variable("enforce_gtid_consistency") or "")
    enforce = enforce.strip().upper()
    if not mode:
        raise Insufficient("gtid_mode is not in the variables")
    if mode in ("OFF_PERMISSIVE", "ON_PERMISSIVE"):
        return Hit(f"gtid_mode={mode[:20]}: a transitional mode, with and without GTIDs mixed",
                   severity="warning", evidence=[Evidence(GTID, {"gtid_mode": mode[:20],
                                                                 "enforce_gtid_consistency": enforce[:10]})])
    if mode != "ON":
        return Hit(f"gtid_mode={mode[:20]}: replicas follow binary log file positions",
                   evidence=[Evidence(GTID, {"gtid_mode": mode[:20]})])
    manual = [_name(c) for c in channels if to_number(c.get("Auto_Position")) == 0]
    if enforce not in ("ON", "1") or manual:
        return Hit("gtid_mode=ON but " + ("; ".join(filter(None, [
            f"enforce_gtid_consistency={enforce[:10] or '?'}" if enforce not in ("ON", "1") else "",
            f"{len(manual)} channel(s) without SOURCE_AUTO_POSITION" if manual else ""]))),
            evidence=[Evidence(GTID, {"gtid_mode": mode[:20], "enforce_gtid_consistency": enforce[:10],
                                      "channels_without_auto_position": manual[:10]})])
    return None


def _parallel_workers(b: Bundle) -> Optional[float]:
    for name in ("slave_parallel_threads", "replica_parallel_workers", "slave_parallel_workers"):
        value = b.number(name)
        if value is not None:
            return value
    return None


@rule("REPL-07", "The replica lags with parallel replication off",
      group=GROUP, severity="warning", window=True, needs=(VARIABLES,),
      advice="Enable parallel apply: MariaDB slave_parallel_threads=4…8 with slave_parallel_mode=optimistic; "
             "MySQL replica_parallel_workers=4…8 with replica_preserve_commit_order=ON (8.0.26+ names) "
             "and, on the source, binlog_transaction_dependency_tracking=WRITESET (8.0). Stop the SQL "
             "thread to change it.",
      risk="More applier threads use more CPU and, with optimistic mode, roll back and retry conflicting "
           "transactions (Slave_retried_transactions); commit order is kept.",
      verify="Over a new window the lag falls; the worker threads appear in "
             "performance_schema.replication_applier_status_by_worker.")
def lag_single_threaded(b: Bundle) -> Optional[Hit]:
    """Checks whether a replica that lags for most of the window applies with a single
    thread (`slave_parallel_threads=0` on MariaDB, `replica_parallel_workers` ≤ 1 on MySQL).

    **Why it matters**: the source commits with many sessions at once; a single applier
    thread replays them one after the other, so write bursts turn into lag that only drains
    when the source is quiet. Parallel apply is the usual remedy.

    **Example**: lag above 60 s in all of the window's samples with
    `slave_parallel_threads=0`.

    **Fix**: enable parallel apply (see the advice).
    """
    channels = _channels(b)
    workers = _parallel_workers(b)
    if workers is None:
        raise Insufficient("the parallel replication setting is not in the variables")
    if workers > 1:
        return None
    lagging = []
    for ch in channels:
        name = _name(ch)
        w = _lag_window(b, name)
        share = w.above("lag", 60)
        if share >= 0.5:
            lagging.append((name, share, w))
    if not lagging:
        return None
    name, share, w = lagging[0]
    return Hit(f"channel {name} lags more than 60 s in {share:.0%} of the window's samples while "
               f"the replica applies with one thread", evidence=[
                   Evidence(STATUS_SAMPLES, {"channel": name, "share_over_60s": round(share, 3),
                                             "parallel_workers": workers},
                            samples=w.evidence_samples("lag"))])


@rule("REPL-08", "An intermediate source does not log the changes it replicates",
      group=GROUP, severity="error", needs=(VARIABLES, REPLICA_HOSTS),
      advice="Set log_slave_updates=ON (MySQL 8.0.26+: log_replica_updates) and log_bin on this server "
             "(option file; needs a restart), then rebuild or re-point its replicas, which missed "
             "everything replicated so far.",
      risk="A restart of this server; more binary log bytes on its disk.",
      verify="SELECT @@log_slave_updates returns 1; a change on the top source reaches the chained "
             "replicas.")
def chained_without_log_updates(b: Bundle) -> Optional[Hit]:
    """Checks a server that is both a replica and a source (replicas registered with it) for
    `log_slave_updates` / `log_replica_updates`.

    **Why it matters**: without it, the changes this server receives from its own source are
    not written to its binary log: its replicas only see writes made directly on it, and
    silently drift from the top of the chain. (MySQL 8 turns it on by default; MariaDB
    does not.)

    **Example**: a MariaDB replica with two replicas of its own and `log_slave_updates=OFF`.

    **Fix**: `log_slave_updates=ON` (with `log_bin`), then rebuild the chained replicas.
    """
    _channels(b)
    replicas = replica_count(b)
    if not replicas:
        raise NotApplicable("no replica is registered with this server")
    value = b.switch("log_slave_updates")
    if value is None:
        value = b.switch("log_replica_updates")
    if value is None:
        raise Insufficient("log_slave_updates is not in the variables")
    if value and b.switch("log_bin") is not False:
        return None
    return Hit(f"This replica has {replicas} replica(s) of its own but "
               + ("log_slave_updates is OFF" if not value else "its binary log is off")
               + ": they do not receive what it replicates",
               evidence=[Evidence(VARIABLES, {"log_slave_updates": b.variable("log_slave_updates")
                                              or b.variable("log_replica_updates"),
                                              "log_bin": b.variable("log_bin")}),
                         Evidence(REPLICA_HOSTS, {"replicas": replicas})])


@rule("REPL-09", "The replica's connection to its source drops during the window",
      group=GROUP, severity="warning", window=True, needs=(),
      advice="Look at Last_IO_Error and at the network between the two (packet loss, a firewall or load "
             "balancer closing idle connections: set MASTER_HEARTBEAT_PERIOD below its idle timeout); "
             "check slave_net_timeout (replica_net_timeout).",
      risk="Lowering the heartbeat period adds a small event every period: negligible.",
      verify="Over a new window the I/O thread is Yes in every sample.")
def io_flapping(b: Bundle) -> Optional[Hit]:
    """Checks, over the window's samples of replica status, whether the I/O thread is
    running in some samples and not in others (`Connecting`, `No`).

    **Why it matters**: a connection that drops and reconnects delays every change by the
    reconnect time and is often the first sign of a network device cutting idle
    connections; a single reading (a one-shot tool) sees either a healthy or a broken replica
    and misses the pattern.

    **Example**: `Slave_IO_Running: Yes` in 4 of 6 samples, `Connecting` in the others.

    **Fix**: find the cause in the I/O error and the network; set a heartbeat.
    """
    hits = []
    evidence = []
    for ch in _channels(b):
        name = _name(ch)
        w = _lag_window(b, name)
        running = w.persistence(lambda v: v.get("io") == 1)
        if 0 < running < 1:
            hits.append(f"channel {name}: the I/O thread runs in {running:.0%} of the samples")
            evidence.append(Evidence(STATUS_SAMPLES, {"channel": name, "running_share": round(running, 3),
                                                      "Last_IO_Error": _text(ch.get("Last_IO_Error"))},
                                     samples=w.evidence_samples("io")))
    if not hits:
        return None
    return Hit("; ".join(hits[:4]), evidence=evidence)
