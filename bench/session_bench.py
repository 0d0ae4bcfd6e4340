"""Remote sessions benchmark (issue 7), on loopback: a real `mydiag-server run
--ssh-listen`, real `mydiag session grant` processes holding the tunnel, the stock
OpenSSH client, and, for the baseline, a private OpenSSH sshd (its own host key and
config, `UsePAM no`, keys in a temporary AuthorizedKeysFile, on a free 127.0.0.1 port).

1. Revoke-to-cut: the engineer sits in an interactive session (shell mode) and has just
   seen the output of a command; `mydiag session revoke ID` is started; the time until
   the engineer's ssh process has exited (the revoke command's own start-up included).
   Also the server-side revoke (POST …/revoke by the support side). RUNS each.
2. Throughput: 100 MiB of log-like text (made once) read with `cat` through a shell-mode
   session (`ssh -p GW alice@127.0.0.1 SESSION -- cat FILE`, recorded on both sides)
   and through plain OpenSSH to the private sshd (`ssh -p SSHD root@127.0.0.1 cat FILE`),
   alternating, RUNS each; the median wall time, and the CPU seconds spent on the path
   (server side: gateway process + grant process and its children, or sshd's children;
   plus the ssh client) for each.
3. Recording size per hour of typical use: an engineer in a shell-mode session with a
   terminal (`ssh -tt`) types commands at 6 keystrokes per second (each keystroke is its
   own "i" event, its echo an "o" event), each command prints what diagnosis commands
   typically print (ps, df, free, a log tail, /proc files: 1-5 KiB), then reads for 8 s;
   for SECONDS seconds. The .cast and .chain bytes divided by the session's duration,
   times 3600. That assumes an hour is made of the same cycle; a session that streams
   large outputs (a `tail -f` of a busy log) grows with that output instead.

Run: .venv/bin/python bench/session_bench.py [--runs 5] [--size-mib 100] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402
from tests.sessionkit import Gateway, Grant, make_gateway, wait_until  # noqa: E402

SSH = "/usr/bin/ssh"
SSHD = "/usr/sbin/sshd"


def cpu_of(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (all its threads), and of its waited-for children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> List[int]:
    found = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found += tree(int(entry))
    return found


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Sshd:
    def __init__(self, base: Path, public_key: Path) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        host_key = base / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        (base / "authorized_keys").write_text(public_key.read_text())
        (base / "authorized_keys").chmod(0o600)
        config = base / "sshd_config"
        config.write_text(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nUsePAM no\n"
                          f"AuthorizedKeysFile {base / 'authorized_keys'}\nStrictModes no\n"
                          f"PermitRootLogin prohibit-password\nPidFile {base / 'sshd.pid'}\n")
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
        wait_until(lambda: _connects(self.port), timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _connects(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def ssh_options(key: Path, known_hosts: Path) -> List[str]:
    return ["-i", str(key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "LogLevel=ERROR"]


def make_text(path: Path, size: int) -> None:
    """Log-like lines (timestamps, levels, words, numbers): what a session mostly carries."""
    rng = random.Random(7)
    words = ("InnoDB", "buffer", "pool", "flush", "thread", "query", "replica", "lag", "binlog", "page",
             "checkpoint", "lock", "wait", "row", "table", "index", "commit", "rollback", "purge", "io")
    with open(path, "w") as handle:
        written = 0
        n = 0
        while written < size:
            line = (f"2026-11-27T00:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z {n} [Note] "
                    + " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
                    + f" value={rng.randint(0, 10**9)}\n")
            handle.write(line)
            written += len(line)
            n += 1
    with open(path, "r+") as handle:
        handle.truncate(size)


# -- 1. revoke-to-cut ---------------------------------------------------------------


def revoke_runs(gateway: Gateway, ticket: Dict, base: Path, runs: int) -> Dict[str, List[float]]:
    results: Dict[str, List[float]] = {"customer (mydiag session revoke)": [],
                                       "support side (API revoke)": []}
    for n in range(runs):
        for how in results:
            grant = Grant(gateway, ticket, base / f"revoke-{n}-{len(results[how])}-{how[:4]}").ready()
            engineer = gateway.ssh_popen("alice", grant.id)
            engineer.stdin.write(b"echo ready-$((6*7))\n")
            engineer.stdin.flush()
            seen = b""
            while b"ready-42" not in seen:
                chunk = engineer.stdout.read1(4096)
                if not chunk:
                    raise RuntimeError("the session closed before the command ran")
                seen += chunk
            began = time.monotonic()
            if how.startswith("customer"):
                revoke = subprocess.Popen([sys.executable, "-m", "agent.cli", "session", "revoke", grant.id],
                                          env=grant.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            else:
                gateway.server.api("POST", f"/api/v1/tickets/{ticket['id']}/sessions/{grant.id}/revoke")
                revoke = None
            wait_until(engineer.poll, timeout=10, step=0.002)
            results[how].append(time.monotonic() - began)
            if revoke is not None:
                revoke.wait(30)
            grant.process.wait(30)
    return results


# -- 2. throughput ------------------------------------------------------------------


def throughput_runs(gateway: Gateway, grant: Grant, sshd: Sshd, key: Path, base: Path, text: Path,
                    runs: int) -> Dict[str, Dict[str, List[float]]]:
    known = base / "known_hosts"
    size = text.stat().st_size
    server_pid = gateway.process.pid
    grant_pid = grant.process.pid
    out: Dict[str, Dict[str, List[float]]] = {
        "session": {"wall": [], "cpu_server_side": [], "cpu_client": []},
        "openssh": {"wall": [], "cpu_server_side": [], "cpu_client": []}}
    for _ in range(runs):
        for what in ("openssh", "session"):
            if what == "session":
                command = gateway.ssh_args("alice", grant.id, "cat", str(text))
                before = cpu_of(server_pid) + sum(cpu_of(p, children=True) for p in tree(grant_pid))
            else:
                command = [SSH, "-p", str(sshd.port), *ssh_options(key, known), "root@127.0.0.1", "cat",
                           str(text)]
                before = cpu_of(sshd.process.pid, children=True)
            client_before = client_cpu()
            began = time.monotonic()
            done = subprocess.run(command, capture_output=True, timeout=600)
            wall = time.monotonic() - began
            if done.returncode != 0 or len(done.stdout) != size:
                raise RuntimeError(f"{what}: exit {done.returncode}, {len(done.stdout)} bytes: "
                                   f"{done.stderr[-300:]}")
            time.sleep(0.5)  # the server side finishes its bookkeeping (the recording's close) first
            if what == "session":
                after = cpu_of(server_pid) + sum(cpu_of(p, children=True) for p in tree(grant_pid))
            else:
                after = cpu_of(sshd.process.pid, children=True)
            out[what]["wall"].append(wall)
            out[what]["cpu_server_side"].append(after - before)
            out[what]["cpu_client"].append(client_cpu() - client_before)
    return out


# -- 3. recording size --------------------------------------------------------------


COMMANDS = ["uptime", "df -h", "free -m", "ps aux --sort=-%cpu | head -20", "tail -n 40 {log}",
            "head -30 /proc/meminfo", "ls -la /etc | head -40", "cat /proc/loadavg", "tail -n 20 {log}",
            "ps -eo pid,rss,etime,cmd --sort=-rss | head -15"]


def recording_run(gateway: Gateway, ticket: Dict, base: Path, seconds: float, log: Path) -> Dict[str, float]:
    grant = Grant(gateway, ticket, base / "typical", duration="30m").ready()
    engineer = gateway.ssh_popen("alice", grant.id, tty=True)
    began = time.monotonic()
    typed = 0
    commands = 0
    while time.monotonic() - began < seconds:
        line = COMMANDS[commands % len(COMMANDS)].format(log=log) + "\r"
        for char in line:
            engineer.stdin.write(char.encode())
            engineer.stdin.flush()
            typed += 1
            time.sleep(1 / 6)
        commands += 1
        time.sleep(8)
    engineer.stdin.write(b"exit\r")
    engineer.stdin.flush()
    engineer.wait(30)
    duration = time.monotonic() - began
    grant.stop()
    cast = sum(p.stat().st_size for p in grant.folder.glob("*.cast"))
    chain = sum(p.stat().st_size for p in grant.folder.glob("*.chain"))
    events = sum(len(p.read_bytes().splitlines()) - 1 for p in grant.folder.glob("*.cast"))
    return {"seconds": round(duration, 1), "commands": commands, "keystrokes": typed, "events": events,
            "cast_bytes": cast, "chain_bytes": chain,
            "bytes_per_hour": round((cast + chain) / duration * 3600)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the typical-use session")
    parser.add_argument("--skip", action="append", default=[], choices=("revoke", "throughput", "recording"))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mydiag-session-bench-"))
    load = os.getloadavg()
    results: Dict[str, object] = {"load_before": [round(x, 2) for x in load]}
    gateway = make_gateway(base / "gateway")
    gateway.engineer("alice")
    ticket = gateway.server.ticket()
    sshd = None
    try:
        if "revoke" not in args.skip:
            runs = revoke_runs(gateway, ticket, base, args.runs)
            results["revoke_to_cut_s"] = {k: {"median": round(statistics.median(v), 3),
                                              "max": round(max(v), 3), "runs": [round(x, 3) for x in v]}
                                          for k, v in runs.items()}
            print(json.dumps(results["revoke_to_cut_s"], indent=1), flush=True)
        if "throughput" not in args.skip:
            text = base / "text.log"
            make_text(text, args.size_mib << 20)
            sshd = Sshd(base / "sshd", Path(f"{gateway.keys['alice']}.pub"))
            grant = Grant(gateway, ticket, base / "throughput", duration="2h").ready()
            runs = throughput_runs(gateway, grant, sshd, gateway.keys["alice"], base, text, args.runs)
            grant.stop()
            summary = {}
            for what, series in runs.items():
                wall = statistics.median(series["wall"])
                summary[what] = {"median_wall_s": round(wall, 3), "mib_per_s": round(args.size_mib / wall, 1),
                                 "cpu_server_side_s": round(statistics.median(series["cpu_server_side"]), 2),
                                 "cpu_client_s": round(statistics.median(series["cpu_client"]), 2),
                                 "walls": [round(x, 3) for x in series["wall"]]}
            summary["session_vs_openssh"] = round(summary["openssh"]["median_wall_s"]
                                                  / summary["session"]["median_wall_s"], 2)
            results["throughput"] = summary
            print(json.dumps(summary, indent=1), flush=True)
        if "recording" not in args.skip:
            log = base / "mysqld.log"
            make_text(log, 1 << 20)
            results["recording"] = recording_run(gateway, ticket, base, args.seconds, log)
            print(json.dumps(results["recording"], indent=1), flush=True)
    finally:
        if sshd is not None:
            sshd.stop()
        gateway.server.stop()
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=1))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
