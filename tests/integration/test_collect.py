"""One-shot collection against a real server: each collector checked against the server itself."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import secrets
import threading
import time

import pymysql
import pytest

from tests.helpers import bundle_files, bundle_json, bundle_members, by_name, collect_json, mydiag


@pytest.fixture(scope="module")
def admin(server, tmp_path_factory):
    """A full-privilege account with a password generated for this run, via an option file."""
    password = secrets.token_urlsafe(16)
    server.sql(
        f"CREATE USER IF NOT EXISTS 'mydiag_admin'@'127.0.0.1' IDENTIFIED BY '{password}'",
        "GRANT ALL ON *.* TO 'mydiag_admin'@'127.0.0.1'",
    )
    folder = tmp_path_factory.mktemp("admin")
    return server.defaults_file(folder, "mydiag_admin", password), password


@pytest.fixture(scope="module")
def standard(server, admin, tmp_path_factory):
    """One standard collection, with a long-running statement and a known schema in place."""
    defaults, _ = admin
    server.sql(
        "CREATE DATABASE IF NOT EXISTS shop",
        "CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY, note VARCHAR(50))",
        "CREATE TABLE IF NOT EXISTS shop.items (id INT PRIMARY KEY) ENGINE=MyISAM",
        "INSERT IGNORE INTO shop.orders VALUES (1, 'first'), (2, 'second')",
    )
    sleeper = server.connect()
    sleeper_id = sleeper.thread_id()
    literal = f"card-{secrets.token_hex(6)}"

    def sleep() -> None:
        with contextlib.suppress(pymysql.MySQLError):  # ended by KILL QUERY below
            sleeper.cursor().execute(f"SELECT SLEEP(20), '{literal}' AS marker")

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    time.sleep(0.3)
    out = tmp_path_factory.mktemp("bundles")
    started = time.monotonic()
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(out))
    wall = time.monotonic() - started
    server.sql(f"KILL QUERY {sleeper_id}")
    thread.join(timeout=30)
    sleeper.close()
    assert summary is not None, done.stderr
    return done, summary, bundle_files(summary["bundle"]), literal, wall


def test_standard_collection_succeeds_and_reports_every_collector(standard):
    done, summary, files, _, _ = standard
    assert done.returncode == 0, summary
    statuses = {c["name"]: c["status"] for c in summary["collectors"]}
    assert statuses["mysql.cluster"] == "skipped"
    # Not there or not asked for: persisted variables (MariaDB), --config-file, the slow log,
    # the unit journal (a server not run by systemd).
    absent = {"mysql.cluster", "config.persisted", "config.extra_files", "logs.slow_log", "logs.journal",
              "mysql.metadata_locks", "mysql.thread_memory"}
    assert all(s == "ok" for n, s in statuses.items() if n not in absent), statuses
    assert done.stderr == ""


def test_bundle_is_a_tar_zst_with_manifest_first_and_true_digests(standard):
    _, summary, files, _, _ = standard
    names = [m.name for m in bundle_members(summary["bundle"])]
    assert names[0] == "manifest.json"
    manifest = bundle_json(files, "manifest.json")
    assert manifest["format_version"] == 1 and manifest["profile"] == "standard"
    for entry in manifest["files"]:
        data = files[entry["path"]]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    assert sorted(e["path"] for e in manifest["files"]) == sorted(n for n in names[1:])
    for stamp in (manifest["started"], manifest["finished"]):
        assert dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    assert summary["bundle"].endswith(".tar.zst")
    assert "/mydiag-" in summary["bundle"]


def test_identity_matches_the_server(server, standard):
    _, _, files, _, _ = standard
    identity = bundle_json(files, "mysql/identity.json")
    version, server_id, read_only = server.sql("SELECT @@version, @@server_id, @@read_only")[0]
    assert identity["version"] == version
    assert identity["server_id"] == server_id
    assert identity["read_only"] == read_only
    assert identity["flavor"] == ("mariadb" if "MariaDB" in version else "mysql")
    uptime = int(server.sql("SHOW GLOBAL STATUS LIKE 'Uptime'")[0][1])
    assert 0 <= uptime - identity["uptime_seconds"] <= 120


def test_variables_match_show_global_variables(server, standard):
    _, _, files, _, _ = standard
    collected = bundle_json(files, "mysql/global_variables.json")
    live = dict(server.sql("SHOW GLOBAL VARIABLES"))
    assert set(collected) == set(live)
    for name in ("innodb_buffer_pool_size", "max_connections", "port", "log_bin", "server_id"):
        assert str(collected[name]) == str(live[name])


def test_status_is_sampled_at_the_interval(standard):
    _, _, files, _, _ = standard
    lines = files["mysql/global_status.jsonl"].decode().splitlines()
    samples = [json.loads(line) for line in lines]
    assert [s["sample"] for s in samples] == [0, 1, 2, 3, 4]
    times = [dt.datetime.fromisoformat(s["ts"].replace("Z", "+00:00")) for s in samples]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert all(0.9 <= g <= 1.3 for g in gaps), gaps
    uptimes = [int(s["status"]["Uptime"]) for s in samples]
    assert uptimes == sorted(uptimes) and uptimes[-1] - uptimes[0] in (3, 4, 5)
    assert int(samples[-1]["status"]["Questions"]) > int(samples[0]["status"]["Questions"])


def test_processlist_holds_the_sleeper_as_a_fingerprint(standard):
    _, _, files, literal, _ = standard
    rows = bundle_json(files, "mysql/processlist.json")
    statements = [r["statement"] for r in rows if r["statement"]]
    assert "SELECT SLEEP(?), ? AS marker" in statements
    assert literal.encode() not in b"".join(files.values())
    # mydiag's own connections (snapshots, the status clock, the other samplers), marked.
    assert 1 <= sum(1 for r in rows if r["mydiag"]) <= 3


def test_innodb_status_is_whole(standard):
    _, _, files, _, _ = standard
    text = files["mysql/innodb_status.txt"].decode()
    assert "INNODB MONITOR OUTPUT" in text and "END OF INNODB MONITOR OUTPUT" in text


def test_schema_overview_matches_information_schema(server, standard):
    _, _, files, _, _ = standard
    overview = bundle_json(files, "mysql/schema_overview.json")
    assert overview["source"] == "mysql.innodb_table_stats"  # sizes that open no table
    count = server.sql(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop'"
    )[0][0]
    assert overview["tables_per_schema"]["shop"] == count
    shop = next(s for s in overview["schemas"] if s["schema"] == "shop")
    assert shop["engines"] == {"InnoDB": 1, "MyISAM": 1}
    assert {t["table_name"] for t in overview["top_tables"]} >= {"orders", "items"}


def test_accounts_summary_never_holds_a_hash(server, standard, admin):
    _, _, files, _, _ = standard
    _, password = admin
    raw = files["mysql/accounts.json"]
    accounts = json.loads(raw)
    users = {(a["user"], a["host"]) for a in accounts["accounts"]}
    assert ("mydiag_admin", "127.0.0.1") in users
    assert "authentication_string" not in raw.decode() and '"password"' not in raw.decode()
    hashed = server.sql(f"SELECT PASSWORD({password!r})")[0][0]
    everything = b"".join(files.values())
    assert hashed.encode() not in everything and password.encode() not in everything


def test_performance_schema_summaries_are_collected(standard):
    _, _, files, _, _ = standard
    digests = bundle_json(files, "mysql/performance_schema/statement_digests.json")
    assert digests and all("'" not in (d["digest_text"] or "") for d in digests)
    for name in ("waits", "file_io", "table_io", "memory"):
        assert f"mysql/performance_schema/{name}.json" in files


def test_plugins_and_engines_match_the_server(server, standard):
    _, _, files, _, _ = standard
    engines = {e["engine"] for e in bundle_json(files, "mysql/engines.json")}
    assert engines == {row[0] for row in server.sql("SELECT ENGINE FROM information_schema.ENGINES")}
    plugins = {p["name"] for p in bundle_json(files, "mysql/plugins.json")}
    assert "InnoDB" in plugins


def test_binary_log_and_gtid_state_on_a_primary(server, standard):
    _, _, files, _, _ = standard
    binlog = bundle_json(files, "mysql/replication/binlog_status.json")
    assert binlog and binlog[0]["File"].startswith("binlog.")
    logs = bundle_json(files, "mysql/replication/binary_logs.json")
    assert binlog[0]["File"] in {log["Log_name"] for log in logs}
    gtid = bundle_json(files, "mysql/replication/gtid.json")
    assert gtid["gtid_binlog_pos"] == server.sql("SELECT @@gtid_binlog_pos")[0][0]


def test_collection_wall_time_is_the_sampling_window_plus_a_little(standard):
    _, _, _, _, wall = standard
    assert wall < 4 + 5


def test_password_never_on_a_command_line_or_in_output(server, admin, tmp_path):
    defaults, password = admin
    seen = []

    def watch(proc_started):
        import psutil

        while proc_started.poll() is None:
            for proc in psutil.process_iter(["cmdline"]):
                seen.append(" ".join(proc.info["cmdline"] or []))
            time.sleep(0.2)

    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "collect", "--defaults-file", str(defaults),
         "--output", str(tmp_path), "--samples", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    watch(process)
    out, err = process.communicate()
    assert process.returncode == 0, err
    assert seen and not any(password in line for line in seen)
    assert password not in out + err
    bundle = next(tmp_path.glob("*.tar.zst"))
    assert password.encode() not in b"".join(bundle_files(bundle).values())


def test_inspect_lists_and_shows_members(standard):
    _, summary, files, _, _ = standard
    listing = mydiag("inspect", summary["bundle"])
    assert listing.returncode == 0
    assert "mysql/global_status.jsonl" in listing.stdout and "mysql.status" in listing.stdout
    shown = mydiag("inspect", summary["bundle"], "--show", "mysql/identity.json")
    assert shown.stdout.encode() == files["mysql/identity.json"]
    as_json = json.loads(mydiag("inspect", summary["bundle"], "--json").stdout)
    assert as_json == bundle_json(files, "manifest.json")
    missing = mydiag("inspect", summary["bundle"], "--show", "nope.json")
    assert missing.returncode == 7 and "no member 'nope.json'" in missing.stderr


def test_quick_profile_is_lighter(server, admin, tmp_path):
    defaults, _ = admin
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path),
                                 "--profile", "quick")
    assert done.returncode == 0, done.stderr
    names = set(by_name(summary))
    assert {"mysql.identity", "mysql.variables", "mysql.status", "mysql.processlist",
            "mysql.replication", "mysql.innodb_status"} == {n for n in names if n.startswith("mysql.")}
    # OS and config are light and always wanted; the slow log is not.
    assert {"os.host", "os.mysqld_process", "config.option_files", "logs.error_log"} <= names
    assert "logs.slow_log" not in names
    lines = bundle_files(summary["bundle"])["mysql/global_status.jsonl"].splitlines()
    assert len(lines) == 1


def test_full_profile_adds_mutexes_open_tables_and_more_samples(server, admin, tmp_path):
    defaults, _ = admin
    done, summary = collect_json("--defaults-file", str(defaults), "--output", str(tmp_path),
                                 "--profile", "full", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    files = bundle_files(summary["bundle"])
    assert "mysql/innodb_mutex.json" in files and "mysql/open_tables.json" in files
    assert len(files["mysql/global_status.jsonl"].splitlines()) == 10
