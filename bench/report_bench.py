"""The report against the advisors DBAs use: MySQLTuner (Debian's) and pt-variable-advisor.

    .venv/bin/python bench/report_bench.py [--tables 20000] [--skip-large] [--keep DIR]

Starts the two servers of tests/reportscenarios.py in turn: `troubled` (23 configured
problems under a matching workload, a broken replica beside it) and `well_configured` (sized
for this host, durable, a password on every account, a light indexed workload). On each,
under its workload, runs one after another, each as its own MySQL user with ALL privileges
and its password in a 0600 option file (MySQLTuner: from the environment): `mydiag collect`
(the end-to-end tests' window: 5 samples 2.6 s apart, just over the 10 s the redo rate rule
accepts) then `mydiag report --json`, `mysqltuner`, `pt-variable-advisor`. The troubled
server's broken replica is only visible in the replica's own status, so each tool also runs
once against the replica, and "broken replica" is judged on that run. Prints per tool the wall time,
the statements it issued (the growth of SUM(COUNT_STAR) for its user in
performance_schema.events_statements_summary_by_user_by_event_name; the load's user and
root are other users), which configured problems it reported, and on the well-configured
server its false alarms (mydiag: findings of warning or worse; MySQLTuner: `[!!]` lines;
pt-variable-advisor: WARN lines).

What counts as "reported": for mydiag, a finding of one of the rule ids mapped to the
problem below; for the peers, a line of their advice (MySQLTuner's `[!!]` lines and its
"Variables to adjust" and "General recommendations"; pt-variable-advisor's WARN and NOTE
lines) that names the problem's variable or words (the patterns below). A peer that names
the right variable with harmful advice (MySQLTuner: raise join_buffer_size) still counts
as reporting it; the table says which way it advised where that matters.

Then the rendering figures: `mydiag report --html` on the troubled bundle (a standard
bundle) and, unless --skip-large, on a full bundle of a server with --tables tables
(bench/collect_bench.py's cached datadir): the median wall time of 5 runs and the peak RSS
(ru_maxrss of the child, from wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pymysql  # noqa: E402

from tests import reportscenarios as rs  # noqa: E402

MYDIAG = [sys.executable, "-m", "agent.cli"]

#: problem → (mydiag rule ids, a pattern for the peers' advice lines). The rule ids are those of
#: tests/integration/test_report_real_servers.py's EXPECTED; a problem counts for mydiag when
#: any of them fired. "broken replica" is judged on each tool's run against the replica.
PROBLEMS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "tiny buffer pool under load": (("IBP-01", "IBP-02", "IBP-03"), r"innodb_buffer_pool_size|buffer pool"),
    "query cache on": (("QC-01", "QC-02"), r"query_cache|query cache"),
    "thread cache 0 with connection churn": (("CONN-01", "CONN-07"), r"thread_cache"),
    "binlog sync off": (("BIN-01",), r"sync_binlog"),
    "binlog format not ROW": (("BIN-02",), r"binlog_format"),
    "redo log too small": (("REDO-01", "REDO-02", "REDO-03"), r"innodb_log_file_size|redo log|log file size"),
    "flush at commit off": (("REDO-05",), r"innodb_flush_log_at_trx_commit"),
    "broken replica": (("REPL-01",), r"(slave|replica|replication)\b.*(not running|stopped|error|fail|broken)"
                                     r"|SQL thread|IO thread|Last_SQL"),
    "account without password": (("SEC-01",), r"without (a )?password|empty password|blank password"),
    "anonymous account": (("SEC-02",), r"anonymous"),
    "root from any host": (("SEC-03",), r"hostname restriction|root.*'%'|from any host"),
    "tables without primary key": (("SCH-01",), r"primary key"),
    "MyISAM tables": (("SCH-02",), r"myisam (tables?|engine)|tables? .*myisam|(myisam|aria).*to innodb"),
    "temp tables to disk": (("TMP-01", "PFS-03"), r"temporary table|tmp_table_size"),
    "tiny table cache": (("TBL-01", "TBL-02"), r"table_open_cache|table cache|table_definition_cache"),
    "max_connections reached": (("CONN-04", "CONN-05"), r"max_connections|connection usage"),
    "aborted connects": (("CONN-02", "LOG-05"), r"aborted"),
    "join buffer too large": (("TMP-07",), r"join_buffer"),
    "sort merge passes": (("TMP-03",), r"sort_buffer|sort merge|sorts requiring"),
    "full joins": (("TMP-04",), r"without indexes|full join"),
    "binlog cache to disk": (("BIN-03",), r"binlog_cache"),
    "doublewrite off": (("REDO-07",), r"doublewrite"),
    "local_infile on": (("SEC-06",), r"local_infile"),
}


#: Debian's MySQLTuner 1.9.9 divides by zero on MariaDB 10.11's default (0, automatic)
#: innodb_buffer_pool_chunk_size and stops before its recommendations: an explicit chunk size
#: that divides each buffer pool (6 MiB, 16 MiB on the replica, 512 MiB) lets it finish.
PEER_ARGS = {"troubled": ["--innodb-buffer-pool-chunk-size=1M"],
             "well_configured": ["--innodb-buffer-pool-chunk-size=128M"]}


class Counter:
    """Statements per MySQL user from performance_schema (root over the socket)."""

    def __init__(self, instance) -> None:
        self.conn = pymysql.connect(unix_socket=instance.socket, user="root",
                                    password=getattr(instance, "_root_password", ""), autocommit=True)

    def statements(self, user: str) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(COUNT_STAR), 0) FROM"
                        " performance_schema.events_statements_summary_by_user_by_event_name"
                        " WHERE USER = %s", (user,))
            return int(cur.fetchone()[0])


def _user(scenario: rs.Scenario, folder: Path, name: str) -> Tuple[str, Path]:
    password = secrets.token_urlsafe(12)
    with scenario.primary.connect(password=scenario.password) as conn, conn.cursor() as cur:
        # Loopback only (no '%' account of the bench's own for the peers to flag): 'localhost'
        # where host names are resolved (and the troubled server's anonymous ''@'localhost'
        # would take a name@'%' login), 127.0.0.1 under skip_name_resolve.
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT ALL ON *.* TO '{name}'@'{host}'")
    path = folder / f"{name}.cnf"
    path.write_text(f"[client]\nhost = 127.0.0.1\nport = {scenario.primary.port}\nuser = {name}\n"
                    f"password = \"{password}\"\n")
    path.chmod(0o600)
    return password, path


def _timed(command: List[str], env: Dict[str, str] = None) -> Tuple[float, subprocess.CompletedProcess]:
    begun = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    return time.monotonic() - begun, done


def advice_lines(tool: str, output: str) -> List[str]:
    """The lines where a peer gives advice (see the module docstring)."""
    lines = output.splitlines()
    if tool == "pt-variable-advisor":
        return [line for line in lines if re.match(r"#\s*(WARN|NOTE)\b", line)]
    picked, section = [], False
    for line in lines:
        if "Variables to adjust" in line or "General recommendations" in line:
            section = True
            continue
        if line.startswith(">>") or line.startswith("-------- "):
            section = False
        if "[!!]" in line or (section and line.strip()):
            picked.append(line)
    return picked


def alarm_lines(tool: str, output: str) -> List[str]:
    """The peer's alarms (MySQLTuner's `[!!]` lines, pt-variable-advisor's WARN lines), paths
    left out."""
    lines = output.splitlines()
    if tool == "pt-variable-advisor":
        picked = [line for line in lines if re.match(r"#\s*WARN\b", line)]
    else:
        picked = [line for line in lines if "[!!]" in line]
    return [re.sub(r"/\S+", "…", line).strip() for line in picked]


def alarms(tool: str, output: str) -> int:
    return len(alarm_lines(tool, output))


def _mydiag(connection: List[str], folder: Path, name: str) -> Tuple[float, Path, List[Dict[str, object]]]:
    """`mydiag collect` (the tests' window: rs.SAMPLES samples rs.INTERVAL s apart) then
    `mydiag report --json`; (seconds of both, the bundle, the findings)."""
    out = folder / name
    out.mkdir()
    command = MYDIAG + ["collect", *connection, "--output", str(out), "--samples", str(rs.SAMPLES),
                        "--interval", str(rs.INTERVAL)]
    for _attempt in range(3):
        collect_s, done = _timed(command, {"MYDIAG_HOME": str(folder / "home")})
        # Another process on this shared machine with a password on its command line: the
        # privacy check refuses the bundle (exit 17); that process is gone a moment later.
        if done.returncode != rs.SECRET_LEFT:
            break
        print(f"  {name}: collect refused a secret-looking line, again: {done.stderr.strip()[-200:]}",
              flush=True)
    if done.returncode not in (0, 3):
        raise SystemExit(f"mydiag collect failed ({done.returncode}): {done.stderr[-500:]}")
    bundle = sorted(out.glob("*.tar.zst"))[-1]
    report_s, done = _timed(MYDIAG + ["report", str(bundle), "--json"])
    if done.returncode != 0:
        raise SystemExit(f"mydiag report failed ({done.returncode}): {done.stderr[-500:]}")
    return collect_s + report_s, bundle, json.loads(done.stdout)


def _peers(host: str, port: int, user: str, password: str, advisor_file: Path, folder: Path,
           name: str) -> Dict[str, Tuple[float, subprocess.CompletedProcess]]:
    """MySQLTuner (its password from the environment, not the command line) and
    pt-variable-advisor; each output kept in `folder` as `<name>-<tool>.out`."""
    runs = {}
    runs["MySQLTuner"] = _timed(["mysqltuner", "--host", host, "--port", str(port), "--user", user,
                                 "--passenv", "BENCH_TUNER_PASSWORD", "--nocolor", "--forcemem",
                                 str(_ram_mib())], {"BENCH_TUNER_PASSWORD": password})
    runs["pt-variable-advisor"] = _timed(["pt-variable-advisor", f"F={advisor_file}"])
    for tool, (_seconds, done) in runs.items():
        (folder / f"{name}-{tool}.out").write_text(f"# rc {done.returncode}\n{done.stdout}\n"
                                                   f"# stderr\n{done.stderr}")
    return runs


def run_tools(kind: str, base: Path) -> Dict[str, Dict[str, object]]:
    results: Dict[str, Dict[str, object]] = {}
    with rs.started(kind, base / kind, PEER_ARGS[kind]) as scenario:
        scenario.primary._root_password = scenario.password  # type: ignore[attr-defined]
        counter = Counter(scenario.primary)
        folder = base / kind
        _pw, mine = _user(scenario, folder, "bench_mydiag")
        tuner_pw, tuner = _user(scenario, folder, "bench_tuner")
        _pw, advisor = _user(scenario, folder, "bench_pva")
        with rs.Load(scenario, healthy=(kind != "troubled")):
            before = counter.statements("bench_mydiag")
            load = os.getloadavg()[0]
            seconds, bundle, findings = _mydiag(["--defaults-file", str(mine)], folder, "bundle")
            results["mydiag"] = {
                "seconds": seconds, "statements": counter.statements("bench_mydiag") - before,
                "rules": sorted({str(f["rule"]) for f in findings}),
                "alarms": sum(1 for f in findings if f["severity"] in ("warning", "error", "critical")),
                "alarm_rules": sorted({str(f["rule"]) for f in findings
                                       if f["severity"] in ("warning", "error", "critical")}),
                "bundle": str(bundle), "loadavg": max(load, os.getloadavg()[0]),
            }
            before = {tool: counter.statements(user) for tool, user in
                      (("MySQLTuner", "bench_tuner"), ("pt-variable-advisor", "bench_pva"))}
            # One peer after the other, so that each counts only its own statements.
            tuner_run = _peers("127.0.0.1", scenario.primary.port, "bench_tuner", tuner_pw, advisor,
                               folder, "primary")
            for tool, user in (("MySQLTuner", "bench_tuner"), ("pt-variable-advisor", "bench_pva")):
                seconds, done = tuner_run[tool]
                results[tool] = {
                    "seconds": seconds, "statements": counter.statements(user) - before[tool],
                    "advice": advice_lines(tool, done.stdout), "alarms": alarms(tool, done.stdout),
                    "alarm_lines": alarm_lines(tool, done.stdout), "rc": done.returncode}
        if scenario.replica is not None:
            _replica_runs(scenario, folder, results)
    return results


def _replica_runs(scenario: rs.Scenario, folder: Path, results: Dict[str, Dict[str, object]]) -> None:
    """Each tool once more against the broken replica (only its own status shows the stopped
    SQL thread): whether it reports it."""
    password = secrets.token_urlsafe(12)
    replica = scenario.replica
    replica.sql(*[statement for host in ("localhost", "127.0.0.1") for statement in (
        f"CREATE USER 'bench_replica'@'{host}' IDENTIFIED BY '{password}'",
        f"GRANT ALL ON *.* TO 'bench_replica'@'{host}'")])
    option_file = folder / "bench_replica.cnf"
    option_file.write_text(f"[client]\nhost = 127.0.0.1\nport = {replica.port}\nuser = bench_replica\n"
                           f"password = \"{password}\"\n")
    option_file.chmod(0o600)
    _seconds, _bundle, findings = _mydiag(["--defaults-file", str(option_file)], folder, "replica-bundle")
    results["mydiag"]["replica_rules"] = sorted({str(f["rule"]) for f in findings})
    runs = _peers("127.0.0.1", replica.port, "bench_replica", password, option_file, folder, "replica")
    for tool, (_seconds, done) in runs.items():
        results[tool]["replica_advice"] = advice_lines(tool, done.stdout)
        results[tool]["replica_rc"] = done.returncode


def _ram_mib() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


#: Advice that names the problem's variable but points the harmful way (see the issue): these
#: lines count as "wrong way", not as reporting the problem.
WRONG_WAY: Dict[str, str] = {
    # The 25%-of-the-buffer-pool rule: on the troubled server it says to shrink the 4 MiB log.
    "redo log too small": r"innodb_log_file_size should be \(=|should be equal to 25%",
    "join buffer too large": r"join_buffer_size \(>|raising the 'join_buffer_size'",
    "query cache on": r"query_cache_(size|limit) \(>",
}
#: Lines that only point to reading, in either direction.
NEUTRAL = r"read this:"


def verdict(tool: str, result: Dict[str, object], problem: str) -> str:
    """"yes", "—", "wrong way" (only harmful advice about it) or "both ways"."""
    rules, pattern = PROBLEMS[problem]
    replica = problem == "broken replica"
    if tool == "mydiag":
        fired = set(result.get("replica_rules" if replica else "rules", ()))  # type: ignore[arg-type]
        return "yes" if set(rules) & fired else "—"
    lines = result.get("replica_advice" if replica else "advice", ())
    # File paths left out: MySQLTuner names the error log's path (".../replica/error.log").
    named = [re.sub(r"/\S+", "", line) for line in lines]  # type: ignore[union-attr]
    named = [line for line in named if re.search(pattern, line, re.I) and not re.search(NEUTRAL, line)]
    wrong = [line for line in named if problem in WRONG_WAY and re.search(WRONG_WAY[problem], line)]
    right = [line for line in named if line not in wrong]
    if right and wrong:
        return "both ways"
    return "wrong way" if wrong else ("yes" if right else "—")


def reported(tool: str, result: Dict[str, object], problem: str) -> bool:
    return verdict(tool, result, problem) in ("yes", "both ways")


def render_figures(bundle: Path, runs: int = 5) -> Tuple[float, float]:
    """Median seconds and peak RSS (MiB) of `mydiag report --html` on `bundle`."""
    times, peaks = [], []
    html = Path(tempfile.mkdtemp()) / "report.html"
    for _ in range(runs):
        begun = time.monotonic()
        process = subprocess.Popen(MYDIAG + ["report", str(bundle), "--html", str(html)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(process.pid, 0)
        times.append(time.monotonic() - begun)
        peaks.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"mydiag report --html failed on {bundle}")
    return statistics.median(times), max(peaks)


def large_bundle(base: Path, tables: int) -> Path:
    import collect_bench  # bench/collect_bench.py: the cached 20,000-table datadir

    (base / "large").mkdir()
    instance = collect_bench.start_server(base / "large", tables)
    try:
        out = base / "large-bundle"
        out.mkdir()
        done = subprocess.run(MYDIAG + ["collect", "--host", "127.0.0.1", "--port", str(instance.port),
                                        "--user", "root", "--profile", "full", "--output", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "MYDIAG_HOME": str(base / "large-home")})
        if done.returncode not in (0, 3):
            raise SystemExit(f"collect on {tables} tables failed: {done.stderr[-500:]}")
        return sorted(out.glob("*.tar.zst"))[-1]
    finally:
        instance.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=20000)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    for tool in ("mysqltuner", "pt-variable-advisor"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run scripts/system-deps.sh --bench")
    base = Path(tempfile.mkdtemp(prefix="mydiag-report-bench-"))
    print(f"load average {os.getloadavg()[0]:.2f}; working in {base}", flush=True)
    troubled = run_tools("troubled", base)
    good = run_tools("well_configured", base)
    tools = ("mydiag", "MySQLTuner", "pt-variable-advisor")
    print("\n| | " + " | ".join(tools) + " |\n|---|" + "---|" * len(tools))
    print("| wall time, troubled (s) | " + " | ".join(f"{troubled[t]['seconds']:.1f}" for t in tools) + " |")
    print("| statements, troubled | " + " | ".join(str(troubled[t]["statements"]) for t in tools) + " |")
    found = {t: [p for p in PROBLEMS if reported(t, troubled[t], p)] for t in tools}
    print(f"| configured problems reported (of {len(PROBLEMS)}) | "
          + " | ".join(str(len(found[t])) for t in tools) + " |")
    print("| wall time, well-configured (s) | "
          + " | ".join(f"{good[t]['seconds']:.1f}" for t in tools) + " |")
    print("| false alarms, well-configured | " + " | ".join(str(good[t]["alarms"]) for t in tools) + " |")
    print("\n| problem | " + " | ".join(tools) + " |\n|---|" + "---|" * len(tools))
    for problem in PROBLEMS:
        print(f"| {problem} | " + " | ".join(verdict(t, troubled[t], problem) for t in tools) + " |")
    print(f"\nmydiag findings on the well-configured server: {good['mydiag']['rules']}; of warning or "
          f"worse: {good['mydiag']['alarm_rules']}")
    print(f"load average during mydiag's collection: troubled {troubled['mydiag']['loadavg']:.1f}, "
          f"well-configured {good['mydiag']['loadavg']:.1f} on {os.cpu_count()} CPUs (OS-09..OS-12 read "
          "the whole host)")
    for tool in tools[1:]:
        print(f"\n{tool} alarms on the well-configured server:")
        for line in good[tool]["alarm_lines"]:  # type: ignore[union-attr]
            print(f"  {line}")
        harmful = [line.strip() for result in (troubled[tool], good[tool]) for line in result["advice"]
                   if any(re.search(p, line) for p in WRONG_WAY.values())]  # type: ignore[union-attr]
        if harmful:
            print(f"{tool} advice that points the harmful way (both servers):")
            for line in dict.fromkeys(harmful):
                print(f"  {line}")
    print()
    for tool in tools[1:]:
        print(f"{tool} exit codes: troubled {troubled[tool]['rc']}, replica "
              f"{troubled[tool].get('replica_rc')}, well-configured {good[tool]['rc']}")
    seconds, peak = render_figures(Path(str(troubled["mydiag"]["bundle"])))
    print(f"\nrendering a standard bundle (--html): median {seconds:.2f} s, peak RSS {peak:.0f} MiB "
          "(goal ≤ 0.3 s, ≤ 120 MiB)")
    if not args.skip_large:
        bundle = large_bundle(base, args.tables)
        seconds, peak = render_figures(bundle)
        print(f"rendering a full bundle of {args.tables} tables ({bundle.stat().st_size >> 10} KiB): "
              f"median {seconds:.2f} s, peak RSS {peak:.0f} MiB (goal ≤ 1.5 s, ≤ 120 MiB)")
    if args.keep:
        shutil.copytree(base, args.keep, dirs_exist_ok=True)
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
