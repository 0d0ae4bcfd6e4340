"""The agent against a real MariaDB: schedules, triggers on real load, cooldown and daily cap,
one cycle for cron, status, and the uploads to a real `mydiag-server` in order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time

import pytest

from tests import secretkit
from tests.agentkit import SupportServer, agent, journal, read_bundle, status, wait_for, write_config
from tests.helpers import bundle_files, mydiag

pytestmark = pytest.mark.mysql


def test_a_schedule_produces_snapshots_and_status_shows_them(server, tmp_path):
    config = write_config(tmp_path, server, schedule="2s")
    spool = tmp_path / "spool"
    proc = agent(config, tmp_path).start()
    try:
        wait_for(lambda: len(journal(spool)) >= 3, 20, message="three snapshots")
        running = status(config, proc.home)
        with open(f"/proc/{proc.process.pid}/stat") as handle:
            nice = int(handle.read().rsplit(")", 1)[1].split()[16])
        io_class = subprocess.run(["ionice", "-p", str(proc.process.pid)], capture_output=True,
                                  text=True).stdout.strip()
    finally:
        assert proc.stop() == 0, proc.log()
    entries = journal(spool)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    for entry in entries:
        manifest = read_bundle(spool / "bundles" / entry["file"])
        assert manifest["profile"] == "quick" and manifest["trigger"] is None
        assert entry["kind"] == "schedule"
    created = [time.mktime(time.strptime(e["created"], "%Y-%m-%dT%H:%M:%SZ")) for e in entries]
    assert all(b - a >= 1 for a, b in zip(created, created[1:]))
    assert nice == 10 and io_class == "idle", (nice, io_class)
    assert running["running"] and running["pid"] == proc.process.pid
    assert running["schedule"]["every"] == 2.0 and running["schedule"]["last"]
    assert running["backlog"]["bundles"] >= 3 and running["uploads"] is None
    stopped = status(config, proc.home)
    assert not stopped["running"] and stopped["spool"]["bundles"] == len(entries)
    text = mydiag("agent", "status", "--config", str(config), timeout=30).stdout
    assert "not running" in text and "a quick snapshot every 2s" in text and "upload backlog" in text
    assert "Traceback" not in proc.log()


def _load(target, connections: int, seconds: float) -> list:
    """`connections` sessions each running SELECT SLEEP(seconds): real running threads."""
    threads = []
    for _ in range(connections):
        def sleep() -> None:
            with target.connect() as conn, conn.cursor() as cur:
                cur.execute(f"SELECT SLEEP({seconds})")
        thread = threading.Thread(target=sleep, daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def test_a_trigger_fires_on_real_load_and_not_without_it(server, tmp_path):
    trigger = {"name": "busy", "when": "Threads_running > 10", "for": 2, "check_every": "0.5s",
               "cooldown": "1h", "max_per_day": 5, "capture": "quick"}
    config = write_config(tmp_path, server, triggers=[trigger])
    spool = tmp_path / "spool"
    proc = agent(config, tmp_path).start()
    try:
        wait_for(lambda: (status(config, proc.home)["triggers"][0].get("last_check")), 15,
                 step=0.2, message="the first check")
        time.sleep(3)  # idle: six checks or so
        quiet = status(config, proc.home)["triggers"][0]
        assert journal(spool) == [], proc.log()
        assert quiet["last_result"] is False and quiet["fired_today"] == 0
        assert quiet["last_values"]["Threads_running"] <= 10
        loaded = time.monotonic()
        load = _load(server, 15, 6)
        entries = wait_for(lambda: journal(spool), 15, message="a trigger capture")
        latency = time.monotonic() - loaded
        for thread in load:
            thread.join(10)
    finally:
        proc.stop()
    assert latency < 6, latency
    entry = entries[0]
    assert entry["kind"] == "trigger" and entry["trigger"] == "busy"
    manifest = read_bundle(spool / "bundles" / entry["file"])
    fired = manifest["trigger"]
    assert fired["name"] == "busy" and fired["when"] == "Threads_running > 10" and fired["checks"] == 2
    assert fired["values"]["Threads_running"] > 10
    assert "trigger busy fired: Threads_running > 10 held for 2 check(s)" in proc.log()


def test_a_trigger_capture_holds_the_incident_over_time_even_when_quick(server, tmp_path):
    """A quick collection takes one sample; a trigger's capture is there for the incident as
    it unfolds, so it samples the processlist, transactions and counters across the window."""
    trigger = {"name": "busy", "when": "Threads_running > 10", "for": 1, "check_every": "0.3s",
               "cooldown": "1h", "max_per_day": 5, "capture": "quick"}
    config = write_config(tmp_path, server, triggers=[trigger], samples=3, interval="0.5s")
    spool = tmp_path / "spool"
    proc = agent(config, tmp_path).start()
    try:
        wait_for(lambda: (status(config, proc.home)["triggers"][0].get("last_check")), 15,
                 step=0.2, message="the first check")
        load = _load(server, 15, 8)
        entries = wait_for(lambda: journal(spool), 15, message="a trigger capture")
        for thread in load:
            thread.join(10)
    finally:
        proc.stop()
    files = bundle_files(spool / "bundles" / entries[0]["file"])
    sampled = [m for m in files if m.endswith(".jsonl")]
    assert {"mysql/global_status.jsonl", "mysql/processlist.jsonl"} <= set(sampled), sampled
    for member in sampled:
        rows = [json.loads(line) for line in files[member].decode().splitlines()]
        assert sorted({r["sample"] for r in rows}) == [0, 1, 2], member  # some hold a row per item
    samples = [json.loads(line) for line in files["mysql/processlist.jsonl"].decode().splitlines()]
    assert all("SLEEP" in json.dumps(s).upper() for s in samples)


def test_cooldown_and_the_daily_cap_hold_across_a_restart(server, tmp_path):
    trigger = {"name": "always", "when": "Uptime > 0", "for": 1, "check_every": "0.2s",
               "cooldown": "1.5s", "max_per_day": 3, "capture": "quick"}
    config = write_config(tmp_path, server, triggers=[trigger])
    spool = tmp_path / "spool"
    proc = agent(config, tmp_path).start()
    try:
        wait_for(lambda: len(journal(spool)) >= 3, 30, message="three captures")
        time.sleep(2.5)  # past another cooldown: the cap, not the cooldown, holds it back now
        held = status(config, proc.home)["triggers"][0]
    finally:
        proc.stop()
    entries = journal(spool)
    assert len(entries) == 3, proc.log()
    assert "daily cap of 3 reached" in held["held_back"]
    fired = [read_bundle(spool / "bundles" / e["file"])["trigger"]["fired_at"] for e in entries]
    moments = [time.mktime(time.strptime(f[:19], "%Y-%m-%dT%H:%M:%S")) + float(f[19:-1] or 0)
               for f in fired]
    assert all(b - a >= 1.5 for a, b in zip(moments, moments[1:])), fired
    again = agent(config, tmp_path).start()
    try:
        wait_for(lambda: status(config, again.home)["running"], 15, message="restarted")
        time.sleep(2)
    finally:
        again.stop()
    assert len(journal(spool)) == 3, again.log()


def test_once_takes_a_snapshot_checks_triggers_and_exits(server, tmp_path):
    trigger = {"name": "up", "when": "Uptime > 0 AND rate(Questions) >= 0", "for": 2,
               "check_every": "0.3s", "cooldown": "1h", "capture": "quick"}
    config = write_config(tmp_path, server, schedule="1h", triggers=[trigger])
    started = time.monotonic()
    done = mydiag("agent", "once", "--config", str(config), timeout=120,
                  env={**os.environ, "MYDIAG_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    kinds = sorted(e["kind"] for e in journal(tmp_path / "spool"))
    assert kinds == ["schedule", "trigger"], done.stderr
    assert "trigger up fired" in done.stderr


def test_a_misspelt_status_variable_is_refused_at_start(server, tmp_path):
    trigger = {"name": "typo", "when": "Threads_runing > 5", "capture": "quick"}
    config = write_config(tmp_path, server, triggers=[trigger])
    done = mydiag("agent", "run", "--config", str(config), timeout=60,
                  env={**os.environ, "MYDIAG_HOME": str(tmp_path / "home")})
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert f"{config}: trigger 'typo'.when: Threads_runing is not a numeric status variable" in line
    assert "Traceback" not in done.stderr


def test_a_second_agent_on_the_same_spool_refuses_to_start(server, tmp_path):
    config = write_config(tmp_path, server, schedule="1h")
    proc = agent(config, tmp_path).start()
    try:
        wait_for(lambda: journal(tmp_path / "spool"), 20, message="the first snapshot")
        done = mydiag("agent", "run", "--config", str(config), timeout=60)
        assert done.returncode == 2
        assert f"another agent is running with the spool {tmp_path / 'spool'} (pid {proc.process.pid})" \
            in done.stderr
    finally:
        proc.stop()


def test_no_password_or_token_reaches_the_log_or_the_status(server, tmp_path):
    password, token = secretkit.make("pw-"), secretkit.make("tok-")
    server.sql("DROP USER IF EXISTS 'agent_diag'@'127.0.0.1'",
               f"CREATE USER 'agent_diag'@'127.0.0.1' IDENTIFIED BY '{password}'",
               "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'agent_diag'@'127.0.0.1'")
    folder = tmp_path / "cfg"
    config = write_config(folder, server, schedule="1h", server={
        "url": "http://127.0.0.1:9", "ticket": "tk-x", "token": token})
    server.defaults_file(folder, user="agent_diag", password=password)
    text = config.read_text().replace("my-root.cnf", "my-agent_diag.cnf")
    config.write_text(text)
    proc = agent(config, tmp_path).start()
    try:
        wait_for(lambda: journal(tmp_path / "cfg" / "spool"), 20, message="a snapshot")
        wait_for(lambda: "upload of" in proc.log(), 20, message="an upload attempt")
        shown = json.dumps(status(config, proc.home))
    finally:
        proc.stop()
    for secret in (password, token):
        assert secret not in proc.log() and secret not in shown
        assert secret not in (tmp_path / "cfg" / "spool" / "state.json").read_text()
    assert "refused the connection" in proc.log()


def _uploading_agent(mysql, tmp_path, schedule: str) -> tuple:
    """A support server (not started yet) with a ticket, and an agent config that uploads
    to it: (server, ticket, config, spool)."""
    support = SupportServer.create(tmp_path)
    ticket = support.ticket()
    config = write_config(tmp_path / "agent", mysql, schedule=schedule, server={
        "url": support.url, "ticket": ticket["id"], "token": ticket["upload_token"], "backoff_max": "1s"})
    return support, ticket, config, tmp_path / "agent" / "spool"


@pytest.mark.server
def test_backlog_uploads_in_order_after_the_server_comes_back(server, tmp_path):
    support, ticket, config, spool = _uploading_agent(server, tmp_path, "1s")
    proc = agent(config, tmp_path / "agent").start()
    try:
        wait_for(lambda: len(journal(spool)) >= 4, 30, message="a backlog while the server is away")
        away = status(config, proc.home)
        assert away["backlog"]["bundles"] >= 4
        assert "refused the connection" in (away["uploads"]["last_error"] or "")
        support.start()
        time.sleep(1.0)
        wait_for(lambda: not status(config, proc.home)["backlog"]["bundles"], 60, step=0.3,
                 message="the backlog uploaded")
    finally:
        proc.stop()
        support.stop()
    entries = [e for e in journal(spool) if e["uploaded"]]
    later = [e for e in journal(spool) if not e["uploaded"]]
    assert len(entries) >= 4 and all(e["seq"] > entries[-1]["seq"] for e in later)
    received = support.bundles(ticket["id"])
    # Bundle names have one-second precision; the agent's log names the server's bundle ids.
    seq_of = {bundle: int(seq) for seq, bundle in re.findall(r"uploaded (\d{8})/\S+ to bundle (\S+)",
                                                             proc.log())}
    seqs = [seq_of[b["id"]] for b in received]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) == len(entries)
    assert {b["status"] for b in received} <= {"accepted", "received"}, received
    # The first bundles were plain in the spool and sealed on the way; once the ticket's
    # recipients were pinned, captures were sealed as they were written.
    assert entries[0]["file"].endswith(".tar.zst")
    for entry in entries:
        read_bundle(spool / "bundles" / entry["file"], support.identity)
    assert not [p for p in spool.rglob("*.age") if not p.name.endswith(".tar.zst.age")]


@pytest.mark.server
def test_a_bundle_over_the_servers_size_limit_is_set_aside_and_the_next_ones_go(server, tmp_path):
    support, ticket, config, spool = _uploading_agent(server, tmp_path, "1h")
    env = {**os.environ, "MYDIAG_HOME": str(tmp_path / "home")}
    support.limit_uploads(2000)  # smaller than any bundle
    support.start()
    try:
        first = mydiag("agent", "once", "--config", str(config), timeout=120, env=env)
    finally:
        support.stop()
    assert first.returncode == 0, first.stderr
    [entry] = journal(spool)
    assert entry["rejected"] and "limit per upload" in entry["rejected"] and not entry["uploaded"]
    assert "set aside" in first.stderr
    support.limit_uploads(4 << 30)
    support.start()
    try:
        second = mydiag("agent", "once", "--config", str(config), timeout=120, env=env)
        report = status(config, tmp_path / "home")
    finally:
        support.stop()
    assert second.returncode == 0, second.stderr
    entries = journal(spool)
    assert len(entries) == 2 and entries[1]["uploaded"] and entries[0]["rejected"]
    assert [b["status"] for b in support.bundles(ticket["id"])] == ["accepted"]
    assert report["backlog"]["bundles"] == 0
    assert [a["file"] for a in report["backlog"]["set_aside"]] == [entries[0]["file"]]
    assert (spool / "bundles" / entries[0]["file"]).exists()  # kept, never evicted
