"""The incident over time: what the bundle holds about every sample of the window, checked
against real private servers doing the things DBAs are called for (a lock pile-up behind
an idle transaction, a metadata-lock wait, a growing history list, a replica), and the
window opened before anything touches the server's catalog."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pymysql
import pytest

from agent.collect.runner import Options, collect
from collectors.mysql.session import ConnectSpec
from tests.conftest import _start
from tests.helpers import bundle_files

#: Neither the server's time zone nor its system's is UTC, and they differ from each other:
#: performance_schema shows the first, InnoDB's transactions the second; a local time
#: passed off as UTC would show.
ZONE, SYSTEM_ZONE, SYSTEM_OFFSET = "+05:00", "Asia/Kolkata", dt.timedelta(hours=5, minutes=30)


@pytest.fixture(scope="module")
def zoned(tmp_path_factory):
    """A private server with performance_schema on, its clocks east of UTC."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = SYSTEM_ZONE
    try:
        instance = _start(tmp_path_factory, "window", "--performance-schema=ON",
                          f"--default-time-zone={ZONE}")
    finally:
        if saved is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = saved
    instance.sql("CREATE DATABASE shop",
                 "CREATE TABLE shop.stock (id INT PRIMARY KEY, qty INT) ENGINE=InnoDB",
                 "INSERT INTO shop.stock VALUES " + ",".join(f"({n}, 0)" for n in range(1, 51)))
    yield instance
    instance.stop()


def _collect(instance, folder: Path, only: Optional[List[str]], samples: int = 3,
             progress=None, **kwargs):
    spec = ConnectSpec(host="127.0.0.1", port=instance.port, user="root")
    options = Options(output_dir=folder, samples=samples, interval=0.5, only=only, **kwargs)
    result = collect(spec, options, progress) if progress else collect(spec, options)
    assert result.bundle is not None, [(e.name, e.error) for e in result.manifest.collectors]
    return result, bundle_files(result.bundle)


def _lines(files: Dict[str, bytes], name: str) -> List[dict]:
    return [json.loads(line) for line in files[name].decode().splitlines()]


def _utc(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _entries(result) -> dict:
    return {e.name: e for e in result.manifest.collectors}


def _wait_for(instance, sql: str, count: int = 1, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(instance.sql(sql)) < count:
        assert time.monotonic() < deadline, f"never true: {sql}"
        time.sleep(0.05)


@contextlib.contextmanager
def _repeating(instance, statement: str):
    """`statement` run again and again on a connection of its own until the block ends."""
    stop = threading.Event()

    def run() -> None:
        with instance.connect() as conn, conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(statement)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(10)


def _in_thread(conn, statement: str) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(pymysql.MySQLError):  # ended by the holder or a KILL
            conn.cursor().execute(statement)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_lock_pile_up_names_the_idle_blocker_in_every_sample(zoned, tmp_path):
    secret = secrets.token_hex(4)
    holder = zoned.connect()
    waiters = [zoned.connect() for _ in range(2)]
    began = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    holder.cursor().execute("BEGIN")
    holder.cursor().execute(f"UPDATE shop.stock SET qty = qty + 1 WHERE id = 7 AND '{secret}' <> ''")
    threads = []
    for conn in waiters:
        conn.cursor().execute("SET SESSION innodb_lock_wait_timeout = 60")
        threads.append(_in_thread(conn, f"UPDATE shop.stock SET qty = 99 WHERE id = 7 AND '{secret}' <> ''"))
    try:
        _wait_for(zoned, "SELECT 1 FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'", 2)
        time.sleep(1.1)  # the holder has been idle in its transaction for a second at least
        result, files = _collect(zoned, tmp_path, ["mysql.status", "mysql.innodb_transactions",
                                                   "mysql.processlist"], samples=3)
    finally:
        holder.rollback()
        for thread in threads:
            thread.join(10)
        for conn in [holder, *waiters]:
            conn.close()
    assert _entries(result)["mysql.innodb_transactions"].status == "ok"
    samples = _lines(files, "mysql/lock_waits.jsonl")
    status_ts = [row["ts"] for row in _lines(files, "mysql/global_status.jsonl")]
    assert [s["sample"] for s in samples] == [0, 1, 2]
    idle = []
    for sample, status_stamp in zip(samples, status_ts):
        # One schedule for every MySQL file: sample N is taken at the moment status's N is.
        assert abs((_utc(sample["ts"]) - _utc(status_stamp)).total_seconds()) < 0.3
        # The second waiter also queues behind the first; the holder blocks both, and the
        # blocker that holds up most threads comes first.
        waits = [w for w in sample["waits"] if w["blocking_thread"] == holder.thread_id()]
        assert sample["waits"][0]["blocking_thread"] == holder.thread_id()
        assert {w["waiting_thread"] for w in waits} == {c.thread_id() for c in waiters}
        assert len(waits) == 2, sample["waits"]
        for wait in waits:
            assert wait["blocking_thread"] == holder.thread_id()
            assert wait["waiters"] == 2
            assert wait["blocking_command"] == "Sleep" and wait["blocking_host"]
            assert wait["locked_table"] == "`shop`.`stock`" and wait["locked_index"] == "PRIMARY"
            assert wait["waiting_lock_mode"] == "X" and wait["blocking_lock_mode"] == "X"
            assert wait["waiting_statement"] == "UPDATE shop.stock SET qty = ? WHERE id = ? AND ? <> ?"
            assert wait["blocking_statement"] is None  # idle: no statement running
            assert wait["blocking_trx_started_utc"].endswith("Z")
            assert abs((_utc(wait["blocking_trx_started_utc"]) - began).total_seconds()) <= 2
        idle.append(waits[0]["blocking_idle_seconds"])
    assert idle[0] >= 1 and idle == sorted(idle) and idle[-1] > idle[0], idle
    # The transactions over time, the holder oldest, its start in UTC beside server time.
    trx = _lines(files, "mysql/innodb_trx.jsonl")
    assert len(trx) == 3
    for sample in trx:
        by_thread = {t["trx_mysql_thread_id"]: t for t in sample["transactions"]}
        oldest = by_thread[holder.thread_id()]
        assert oldest["trx_started"] <= min(t["trx_started"] for t in by_thread.values())
        assert {by_thread[c.thread_id()]["trx_state"] for c in waiters} == {"LOCK WAIT"}
        local = dt.datetime.fromisoformat(str(oldest["trx_started"]))
        assert _utc(oldest["trx_started_utc"]).replace(tzinfo=None) == local - SYSTEM_OFFSET
        assert abs((_utc(oldest["trx_started_utc"]) - began).total_seconds()) <= 2
    assert secret.encode() not in b"".join(files.values())
    # The sample-0 snapshots stay where readers expect them.
    assert json.loads(files["mysql/innodb_lock_waits.json"]) == samples[0]["waits"]


def test_a_metadata_lock_wait_is_seen_with_and_without_the_plugin(zoned, tmp_path):
    zoned.sql("CREATE TABLE IF NOT EXISTS shop.menu (id INT PRIMARY KEY)")
    holder, waiter = zoned.connect(), zoned.connect()
    holder.cursor().execute("BEGIN")
    holder.cursor().execute("SELECT * FROM shop.menu")
    waiter.cursor().execute("SET SESSION lock_wait_timeout = 60")
    thread = _in_thread(waiter, "ALTER TABLE shop.menu ADD COLUMN note INT")
    try:
        _wait_for(zoned, "SELECT 1 FROM information_schema.PROCESSLIST"
                         " WHERE STATE = 'Waiting for table metadata lock'")
        without, without_files = _collect(zoned, tmp_path / "without", [
            "mysql.status", "mysql.processlist", "mysql.metadata_locks"], samples=2)
        zoned.sql("INSTALL SONAME 'metadata_lock_info'")
        try:
            with_plugin, files = _collect(zoned, tmp_path / "with", [
                "mysql.status", "mysql.processlist", "mysql.metadata_locks"], samples=2)
        finally:
            zoned.sql("UNINSTALL SONAME 'metadata_lock_info'")
    finally:
        holder.rollback()
        thread.join(10)
        holder.close()
        waiter.close()
    entry = _entries(without)["mysql.metadata_locks"]
    assert entry.status == "skipped"
    assert entry.fix.startswith("INSTALL SONAME 'metadata_lock_info'")
    assert any("INSTALL SONAME 'metadata_lock_info'" in note for note in entry.notes)
    assert "mysql/metadata_locks.jsonl" not in without_files
    # Without the plugin the wait itself is still there, in every processlist sample.
    for sample in _lines(without_files, "mysql/processlist.jsonl"):
        states = {t["id"]: t["state"] for t in sample["threads"]}
        assert states[waiter.thread_id()] == "Waiting for table metadata lock"
    assert _entries(with_plugin)["mysql.metadata_locks"].status == "ok"
    samples = _lines(files, "mysql/metadata_locks.jsonl")
    assert [s["sample"] for s in samples] == [0, 1]
    for sample in samples:
        held = {(lock["thread_id"], lock["object_schema"], lock["object_name"])
                for lock in sample["locks"]}
        assert (holder.thread_id(), "shop", "menu") in held
        holder_lock = next(lock for lock in sample["locks"]
                           if lock["thread_id"] == holder.thread_id())
        assert holder_lock["lock_mode"] == "MDL_SHARED_READ" and holder_lock["command"] == "Sleep"
        assert all(lock["thread_id"] not in _own(sample, files) for lock in sample["locks"])


def _own(sample: dict, files: Dict[str, bytes]) -> set:
    """mydiag's own connections in the processlist sample of the same index."""
    rows = _lines(files, "mysql/processlist.jsonl")[sample["sample"]]["threads"]
    return {t["id"] for t in rows if t["mydiag"]}


def test_the_history_list_grows_across_samples_behind_an_old_read_view(zoned, tmp_path):
    reader = zoned.connect()
    reader.cursor().execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    reader.cursor().execute("SELECT COUNT(*) FROM shop.stock")
    try:
        with _repeating(zoned, "UPDATE shop.stock SET qty = qty + 1 WHERE id <= 20"):
            result, files = _collect(zoned, tmp_path, ["mysql.status", "mysql.innodb_status",
                                                       "mysql.innodb_transactions"], samples=4)
    finally:
        reader.rollback()
        reader.close()
    lengths = [int(s["status"]["Innodb_history_list_length"])
               for s in _lines(files, "mysql/global_status.jsonl")]
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0], lengths

    def history(name: str) -> int:
        return int(re.search(r"History list length (\d+)", files[name].decode()).group(1))

    assert history("mysql/innodb_status_end.txt") > history("mysql/innodb_status.txt")
    ages = [next(t["age_seconds"] for t in s["transactions"]
                 if t["trx_mysql_thread_id"] == reader.thread_id())
            for s in _lines(files, "mysql/innodb_trx.jsonl")]
    assert ages == sorted(ages) and len(ages) == 4
    entries = _entries(result)
    assert all(entries[n].status == "ok" for n in entries), entries


def test_innodb_status_and_performance_schema_at_the_start_and_the_end(zoned, tmp_path):
    # Slow enough to rank among the top digests by total time.
    with _repeating(zoned, "SELECT SLEEP(0.02), qty FROM shop.stock WHERE id = 3"):
        result, files = _collect(zoned, tmp_path, ["mysql.status", "mysql.innodb_status",
                                                   "mysql.performance_schema"], samples=3)
    entries = _entries(result)
    assert entries["mysql.performance_schema"].status == "ok", entries["mysql.performance_schema"]
    assert not [n for n in entries["mysql.performance_schema"].notes if "prepared" in n]
    captured = {f.path: _utc(f.captured_at) for f in result.manifest.files}
    for start, end in (("mysql/innodb_status.txt", "mysql/innodb_status_end.txt"),
                       *((f"mysql/performance_schema/{n}.json", f"mysql/performance_schema/{n}_end.json")
                         for n in ("statement_digests", "statements_by_event", "waits", "file_io",
                                   "table_io"))):
        assert start in files and end in files
        # Taken one window apart: at sample 0 and at the last sample (two intervals later).
        assert 0.8 <= (captured[end] - captured[start]).total_seconds() <= 2.0, (start, captured)
    for name in ("mysql/innodb_status.txt", "mysql/innodb_status_end.txt"):
        text = files[name].decode()
        assert "INNODB MONITOR OUTPUT" in text and "END OF INNODB MONITOR OUTPUT" in text

    def calls(name: str) -> int:
        rows = json.loads(files[f"mysql/performance_schema/{name}"])
        return sum(int(r["calls"]) for r in rows
                   if _is_workload(r["digest_text"]))

    assert calls("statement_digests_end.json") > calls("statement_digests.json")
    digest = next(r for r in json.loads(files["mysql/performance_schema/statement_digests_end.json"])
                  if _is_workload(r["digest_text"]))
    # first_seen is server time (+05:00); its UTC form sits beside it.
    local = dt.datetime.fromisoformat(str(digest["first_seen"]))
    assert _utc(digest["first_seen_utc"]).replace(tzinfo=None) == local - dt.timedelta(hours=5)
    by_event = {r["event"]: int(r["calls"])
                for r in json.loads(files["mysql/performance_schema/statements_by_event_end.json"])}
    assert by_event["statement/sql/select"] > 0
    setup = json.loads(files["mysql/performance_schema/setup.json"])
    live = dict(zoned.sql("SELECT NAME, ENABLED FROM performance_schema.setup_consumers"))
    assert {c["name"]: c["enabled"] for c in setup["consumers"]} == live
    classes = {c["class"]: c for c in setup["instruments_by_class"]}
    enabled = zoned.sql("SELECT COUNT(*) FROM performance_schema.setup_instruments"
                        " WHERE NAME LIKE 'statement/%' AND ENABLED = 'YES'")[0][0]
    assert classes["statement"]["enabled"] == enabled
    assert classes["memory"]["instruments"] > classes["memory"]["enabled"]  # MariaDB's default


def _is_workload(digest_text: str) -> bool:
    return digest_text.startswith("SELECT `SLEEP`") and "`stock`" in digest_text


def test_a_prepared_statement_workload_is_named_where_digests_cannot_show_it(zoned, tmp_path):
    if shutil.which("sysbench") is None:
        pytest.fail("sysbench is not installed (scripts/system-deps.sh installs it)", pytrace=False)
    base = ["sysbench", "--db-driver=mysql", "--mysql-host=127.0.0.1",
            f"--mysql-port={zoned.port}", "--mysql-user=root", "--mysql-db=bench",
            "--tables=1", "--table-size=1000", "oltp_point_select"]
    zoned.sql("CREATE DATABASE IF NOT EXISTS bench")
    subprocess.run([*base, "prepare"], check=True, capture_output=True, timeout=60)
    load = subprocess.Popen([*base, "--time=6", "--threads=1", "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        result, files = _collect(zoned, tmp_path, ["mysql.status", "mysql.performance_schema"],
                                 samples=3)
    finally:
        load.wait(30)
    notes = _entries(result)["mysql.performance_schema"].notes
    assert any("prepared statements dominate during the window" in n
               and "statement/com/Execute" in n for n in notes), notes
    by_event = {r["event"]: int(r["calls"])
                for r in json.loads(files["mysql/performance_schema/statements_by_event_end.json"])}
    assert by_event["statement/com/Execute"] > 100


def test_the_first_status_sample_is_taken_before_anything_touches_the_catalog(tmp_path_factory, tmp_path):
    fresh = _start(tmp_path_factory, "fresh", "--performance-schema=ON")
    try:
        conn = fresh.connect(client_flag=1 << 16)  # CLIENT_MULTI_STATEMENTS
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE app")
            cur.execute(";".join(f"CREATE TABLE app.t{n} (id INT PRIMARY KEY)" for n in range(40)))
            while cur.nextset():
                pass
        conn.close()
        fresh.restart()  # an empty table cache, as after a quiet night

        def counters() -> dict:
            with fresh.connect() as probe, probe.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Opened_tables',"
                            " 'Opened_table_definitions', 'Open_tables')")
                return {name: int(value) for name, value in cur.fetchall()}

        before = counters()
        texts: List[str] = []
        result, files = _collect(fresh, tmp_path, None, samples=3, allow_findings=True,
                                 progress=lambda name, entry: texts.append(name) if entry is None else None)
        after = counters()
    finally:
        fresh.stop()
    first = _lines(files, "mysql/global_status.jsonl")[0]["status"]
    assert {name: int(first[name]) for name in before} == before
    # The run did open tables afterwards (performance_schema's, the schema overview's):
    # sample 0 would have counted them had anything run before it.
    assert after["Opened_tables"] > before["Opened_tables"], (before, after)
    # Every file carries its capture time, within the run, in the order the run made them.
    manifest = json.loads(files["manifest.json"])
    started, finished = _utc(manifest["started"]), _utc(manifest["finished"])
    for entry in manifest["files"]:
        taken = _utc(entry["captured_at"])
        assert started <= taken <= finished + dt.timedelta(seconds=1), entry
    stamps = {e["path"]: _utc(e["captured_at"]) for e in manifest["files"]}
    status_last = _utc(_lines(files, "mysql/global_status.jsonl")[-1]["ts"])
    assert stamps["mysql/global_status.jsonl"] >= status_last
    assert stamps["mysql/schema_overview.json"] > _utc(_lines(files, "mysql/global_status.jsonl")[0]["ts"])
    # The progress line told the window's state while it was open, sample by sample.
    seen = [t for t in texts if t.startswith("sampling ")]
    steps = [t.split()[1] for t in seen]
    assert {"1/3", "2/3"} <= set(steps) <= {"1/3", "2/3", "3/3"}, texts
    assert steps == sorted(steps), steps
    assert any(" · mysql." in t for t in seen), texts


def test_replica_status_is_sampled_so_lag_has_a_trend(replica_pair, tmp_path):
    primary, replica = replica_pair
    spec = ConnectSpec(host="127.0.0.1", port=replica.port, user="root")
    result = collect(spec, Options(output_dir=tmp_path / "replica", samples=3, interval=0.5,
                                   only=["mysql.status", "mysql.replication"]))
    files = bundle_files(result.bundle)
    samples = _lines(files, "mysql/replication/replica_status.jsonl")
    status = _lines(files, "mysql/global_status.jsonl")
    assert [s["sample"] for s in samples] == [0, 1, 2]
    for sample, reading in zip(samples, status):
        assert abs((_utc(sample["ts"]) - _utc(reading["ts"])).total_seconds()) < 0.3
        channel = sample["channels"][0]
        assert int(channel["Master_Port"]) == primary.port
        assert "Seconds_Behind_Master" in channel and channel["Slave_IO_Running"] == "Yes"
    assert json.loads(files["mysql/replication/replica_status.json"])["channels"] == samples[0]["channels"]
    spec = ConnectSpec(host="127.0.0.1", port=primary.port, user="root")
    on_primary = collect(spec, Options(output_dir=tmp_path / "primary", samples=3, interval=0.5,
                                       only=["mysql.status", "mysql.replication"]))
    primary_files = bundle_files(on_primary.bundle)
    assert "mysql/replication/replica_status.jsonl" not in primary_files
    assert "mysql/replication/replica_status.json" in primary_files



def test_each_sample_costs_the_server_at_most_twelve_statements(zoned, tmp_path):
    """The per-sample budget of issue 12, measured as the cost of three more samples."""
    zoned.sql("INSTALL SONAME 'metadata_lock_info'")
    holder, waiter = zoned.connect(), zoned.connect()
    holder.cursor().execute("BEGIN")
    holder.cursor().execute("UPDATE shop.stock SET qty = 1 WHERE id = 9")
    waiter.cursor().execute("SET SESSION innodb_lock_wait_timeout = 60")
    thread = _in_thread(waiter, "UPDATE shop.stock SET qty = 2 WHERE id = 9")
    try:
        _wait_for(zoned, "SELECT 1 FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
        short, _ = _collect(zoned, tmp_path / "short", None, samples=2, allow_findings=True)
        long, files = _collect(zoned, tmp_path / "long", None, samples=5, allow_findings=True)
    finally:
        holder.rollback()
        thread.join(10)
        holder.close()
        waiter.close()
        zoned.sql("UNINSTALL SONAME 'metadata_lock_info'")
    # Every per-sample part was read (a lock wait, metadata locks): the worst case here.
    assert len(_lines(files, "mysql/lock_waits.jsonl")) == 5
    assert len(_lines(files, "mysql/metadata_locks.jsonl")) == 5
    per_sample = (long.statements - short.statements) / 3
    assert 3 <= per_sample <= 12, (short.statements, long.statements)
