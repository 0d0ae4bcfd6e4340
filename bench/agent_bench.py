"""The idle agent next to pt-stalk: CPU, memory, statements, and trigger detection latency.

    .venv/bin/python bench/agent_bench.py [--seconds 300] [--threshold 20] [--json FILE]

One private MariaDB (tests.servers, performance_schema ON). `mydiag agent run` and
`pt-stalk` watch it at the same time, with the same trigger (Threads_running above
`--threshold` on 1 check, checked every 1 s), each as its own MySQL user. Nothing else
runs on the server during the idle window.

How each number is measured:
- CPU, % of one core: (utime + stime) of the agent process over the window, from
  /proc/PID/stat; for pt-stalk the same plus cutime + cstime, the CPU of the mysqladmin,
  date, sleep … processes it starts and reaps every second.
- RSS: the agent's VmRSS sampled every second (mean and peak) and its VmHWM at the end
  of the idle window, and once more after its first capture; for pt-stalk the summed
  VmRSS of its process tree at each sample (mean and peak).
- statements per minute: the change of SUM(COUNT_STAR) for the tool's user in
  performance_schema.events_statements_summary_by_user_by_event_name over the window,
  SQL statements (statement/sql/*) and protocol commands (statement/com/*: Connect,
  Quit …) apart; connections from performance_schema.users.
- detection latency: after the window, `--threshold` + 10 connections start
  `SELECT SLEEP(30)` at a known instant; the latency is the time until the tool's capture
  starts: the first entry under the agent's spool work/ or bundles/ folder, and the first
  file under pt-stalk's --dest, polled every 10 ms.

Passwords are generated per run and live only in 0600 option files in the run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402

from tests import servers  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
USERS = ("bench_agent", "bench_ptstalk")


def cpu_seconds(pid: int, children: bool) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # fields[11..14] are utime stime cutime cstime (after pid and comm).
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid: int) -> List[int]:
    """pid and all its descendants, from /proc."""
    parents: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


class Counters:
    def __init__(self, instance: servers.Instance) -> None:
        self.conn = instance.connect()

    def read(self, user: str) -> Dict[str, int]:
        with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(
                "SELECT IFNULL(SUM(IF(EVENT_NAME LIKE 'statement/sql/%%', COUNT_STAR, 0)), 0) AS sql_n,"
                " IFNULL(SUM(IF(EVENT_NAME LIKE 'statement/sql/%%', 0, COUNT_STAR)), 0) AS com_n"
                " FROM performance_schema.events_statements_summary_by_user_by_event_name"
                " WHERE USER = %s", (user,))
            row = cur.fetchone()
            cur.execute("SELECT TOTAL_CONNECTIONS FROM performance_schema.users WHERE USER = %s", (user,))
            conns = cur.fetchone()
        return {"sql": int(row["sql_n"]), "com": int(row["com_n"]),
                "connections": int(conns["TOTAL_CONNECTIONS"]) if conns else 0}


def prepare(instance: servers.Instance, run: Path) -> Dict[str, Path]:
    files = {}
    with instance.connect() as conn, conn.cursor() as cur:
        for user in USERS:
            password = secrets.token_urlsafe(18)
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'127.0.0.1'")
            path = run / f"{user}.cnf"
            path.touch(mode=0o600)
            path.write_text(f"[client]\nhost = 127.0.0.1\nport = {instance.port}\nuser = {user}\n"
                            f"password = \"{password}\"\n")
            files[user] = path
    return files


def start_agent(run: Path, cnf: Path, threshold: int) -> subprocess.Popen:
    spool = run / "agent-spool"
    config = run / "agent.toml"
    config.write_text(
        f'[mysql]\ndefaults_file = "{cnf}"\n\n[spool]\ndir = "{spool}"\nmin_free_pct = 1\n\n'
        f'[[trigger]]\nname = "busy"\nwhen = "Threads_running > {threshold}"\nfor = 1\n'
        'check_every = "1s"\ncooldown = "1h"\ncapture = "quick"\n')
    config.chmod(0o600)
    with open(run / "agent.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "agent", "run", "--config", str(config)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MYDIAG_HOME": str(run / "agent-home")})


def start_pt_stalk(run: Path, cnf: Path, threshold: int, port: int) -> subprocess.Popen:
    dest = run / "pt-stalk-dest"
    dest.mkdir()
    argv = ["pt-stalk", "--function", "status", "--variable", "Threads_running",
            "--threshold", str(threshold), "--cycles", "1", "--interval", "1",
            "--iterations", "1", "--run-time", "5", "--dest", str(dest),
            "--pid", str(run / "pt-stalk.pid"), "--log", str(run / "pt-stalk.log"),
            "--defaults-file", str(cnf), "--host", "127.0.0.1", "--port", str(port),
            "--user", "bench_ptstalk"]
    with open(run / "pt-stalk.out", "wb") as log:
        return subprocess.Popen(argv, cwd=run, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def has_entries(*folders: Path) -> bool:
    for folder in folders:
        try:
            if any(os.scandir(folder)):
                return True
        except FileNotFoundError:
            continue
    return False


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="the idle window (default 300)")
    parser.add_argument("--threshold", type=int, default=20, help="Threads_running above this fires")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("pt-stalk", "mysqladmin") if not shutil.which(tool)]
    if missing:
        print(f"agent_bench: missing {', '.join(missing)}: apt-get install -y percona-toolkit "
              "mariadb-client", file=sys.stderr)
        return 1
    run = Path(tempfile.mkdtemp(prefix="mydiag-agent-bench-"))
    instance = servers.create(run / "db", ["--performance-schema=ON", "--max-connections=500"])
    processes: List[subprocess.Popen] = []
    try:
        files = prepare(instance, run)
        counters = Counters(instance)
        agent = start_agent(run, files["bench_agent"], args.threshold)
        pt = start_pt_stalk(run, files["bench_ptstalk"], args.threshold, instance.port)
        processes += [agent, pt]
        time.sleep(5.0)  # both started, connected and checking
        for proc, name in ((agent, "mydiag agent"), (pt, "pt-stalk")):
            if proc.poll() is not None:
                print(f"agent_bench: {name} exited early ({proc.returncode}); see {run}", file=sys.stderr)
                return 1
        load_before = os.getloadavg()
        before = {u: counters.read(u) for u in USERS}
        cpu0 = {"agent": cpu_seconds(agent.pid, False), "pt": cpu_seconds(pt.pid, True)}
        began = time.monotonic()
        agent_rss: List[int] = []
        pt_rss: List[int] = []
        while time.monotonic() - began < args.seconds:
            agent_rss.append(rss_kib(agent.pid))
            pt_rss.append(sum(rss_kib(p) for p in tree(pt.pid)))
            time.sleep(1.0)
        wall = time.monotonic() - began
        cpu1 = {"agent": cpu_seconds(agent.pid, False), "pt": cpu_seconds(pt.pid, True)}
        after = {u: counters.read(u) for u in USERS}
        hwm = rss_kib(agent.pid, "VmHWM")
        load_after = os.getloadavg()

        # Detection latency: a known moment of load, then the first sign of each capture.
        sleepers: List[pymysql.Connection] = []
        load_at = time.monotonic()

        def sleep_one() -> None:
            conn = instance.connect()
            sleepers.append(conn)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT SLEEP(30)")
            except pymysql.err.MySQLError:
                pass

        workers = [threading.Thread(target=sleep_one, daemon=True) for _ in range(args.threshold + 10)]
        for worker in workers:
            worker.start()
        seen: Dict[str, float] = {}
        spool = run / "agent-spool"
        while len(seen) < 2 and time.monotonic() - load_at < 25:
            if "agent" not in seen and has_entries(spool / "work", spool / "bundles"):
                seen["agent"] = time.monotonic() - load_at
            if "pt" not in seen and has_entries(run / "pt-stalk-dest"):
                seen["pt"] = time.monotonic() - load_at
            time.sleep(0.01)
        # The agent's memory once a capture has run (the collectors are imported then).
        deadline = time.monotonic() + 30
        while not has_entries(spool / "bundles") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        after_capture = rss_kib(agent.pid)
        with instance.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'")
            for (victim,) in cur.fetchall():
                cur.execute(f"KILL {int(victim)}")
    finally:
        for proc in processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        instance.stop()

    minutes = wall / 60.0

    def per_minute(user: str, kind: str) -> float:
        return round((after[user][kind] - before[user][kind]) / minutes, 1)

    result = {
        "seconds": round(wall, 1), "threshold": args.threshold, "interval": 1,
        "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "agent": {
            "cpu_pct_of_one_core": round(100.0 * (cpu1["agent"] - cpu0["agent"]) / wall, 3),
            "rss_mib_mean": round(sum(agent_rss) / len(agent_rss) / 1024, 1),
            "rss_mib_peak": round(max(agent_rss) / 1024, 1), "vmhwm_mib": round(hwm / 1024, 1),
            "rss_mib_after_capture": round(after_capture / 1024, 1),
            "sql_per_min": per_minute("bench_agent", "sql"),
            "com_per_min": per_minute("bench_agent", "com"),
            "connections": after["bench_agent"]["connections"] - before["bench_agent"]["connections"],
            "detection_latency_s": round(seen["agent"], 3) if "agent" in seen else None,
        },
        "pt_stalk": {
            "cpu_pct_of_one_core": round(100.0 * (cpu1["pt"] - cpu0["pt"]) / wall, 3),
            "rss_mib_mean": round(sum(pt_rss) / len(pt_rss) / 1024, 1),
            "rss_mib_peak": round(max(pt_rss) / 1024, 1),
            "sql_per_min": per_minute("bench_ptstalk", "sql"),
            "com_per_min": per_minute("bench_ptstalk", "com"),
            "connections": after["bench_ptstalk"]["connections"] - before["bench_ptstalk"]["connections"],
            "detection_latency_s": round(seen["pt"], 3) if "pt" in seen else None,
        },
    }
    print(json.dumps(result, indent=2))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.keep:
        print(f"run folder kept: {run}", file=sys.stderr)
    else:
        shutil.rmtree(run, ignore_errors=True)
    return 0


def table(result: Dict) -> str:
    a, p = result["agent"], result["pt_stalk"]
    rows = [
        ("CPU, % of one core (idle)", a["cpu_pct_of_one_core"], p["cpu_pct_of_one_core"]),
        ("RSS MiB, mean / peak", f"{a['rss_mib_mean']} / {a['rss_mib_peak']}",
         f"{p['rss_mib_mean']} / {p['rss_mib_peak']}"),
        ("RSS MiB after one capture", a["rss_mib_after_capture"], "-"),
        ("SQL statements per minute", a["sql_per_min"], p["sql_per_min"]),
        ("protocol commands per minute (Connect, Quit …)", a["com_per_min"], p["com_per_min"]),
        ("new connections in the window", a["connections"], p["connections"]),
        ("detection latency, s", a["detection_latency_s"], p["detection_latency_s"]),
    ]
    rows.append(("host load average (1 min), start / end", *["{} / {}".format(
        *result["loadavg_1m_before_after"])] * 2))
    lines = [f"| {result['seconds']:.0f} s, 1 s checks, Threads_running > {result['threshold']} "
             "| mydiag agent | pt-stalk |", "| --- | --- | --- |"]
    lines += [f"| {name} | {x} | {y} |" for name, x, y in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
