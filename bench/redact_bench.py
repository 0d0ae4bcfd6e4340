"""Redaction throughput on a big slow log: mydiag's pipeline against `sos clean`.

Generates a synthetic MariaDB slow log (default 1 GiB) under /tmp: realistic entries
(point selects, joins, IN lists, multi-row inserts, multi-line statements, user@host
with addresses in a few subnets) and, every few hundred entries, a secret in one of the
places a slow log carries them (CREATE USER … IDENTIFIED BY, SET PASSWORD, CHANGE MASTER
… MASTER_PASSWORD, a comment with a token, a literal). Every secret starts with a marker
made for this run, so one search of the output proves none survived.

Then, one after another on the same file and in the same run, each in its own process
(wall time from start to exit, peak RSS of that process from wait4):

- mydiag: `privacy.redact.redact_stream(statements=True)`: the always-on rules plus the
  slow log's statements reduced to fingerprints, what `mydiag collect` does to a log;
- `sos clean --batch --domains example.com` on a directory holding the same file (sos
  needs an sos-report-shaped target: a `sos_logs` folder marks one; it moves the folder
  under --tmp-dir and rewrites the file in place). sos clean obfuscates IP and MAC
  addresses, host names of the given domains and keywords; it does not look for
  passwords (sos leaves those to each plugin's postproc when the report is taken).

mydiag also runs on a file 1/16 the size, to show that its memory does not grow with the
input. Everything under the temporary folder is deleted at the end (--keep keeps it).

    .venv/bin/python bench/redact_bench.py [--size-mib 1024] [--skip-sos] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20

_USERS = ["app", "shop", "report", "batch", "api", "billing", "etl"]
_SCHEMAS = ["shop", "billing", "crm", "analytics", "inventory"]
_COUNTRIES = ["DE", "FR", "US", "BR", "IN"]
_QUERIES = [
    "SELECT o.id, o.total, o.status FROM orders o WHERE o.customer_id = {n} AND o.status IN "
    "('open', 'paid', 'shipped') ORDER BY o.created_at DESC LIMIT 20;",
    "SELECT c.id, c.email, SUM(o.total) AS spent FROM customers c\n  JOIN orders o ON o.customer_id = "
    "c.id\n  WHERE c.country = '{cc}' AND o.created_at > '2024-01-{d:02d}'\n  GROUP BY c.id, c.email "
    "ORDER BY spent DESC LIMIT 100;",
    "UPDATE inventory SET qty = qty - {m}, updated_at = NOW() WHERE sku = 'SKU-{n}' AND qty >= {m};",
    "INSERT INTO events (user_id, kind, payload, created_at) VALUES ({n}, 'click', "
    "'{{\"page\": \"/p/{m}\", \"ref\": \"campaign-{d}\"}}', NOW()), ({m}, 'view', '{{}}', NOW());",
    "SELECT * FROM sessions WHERE token_hash = 0x{h} AND expires_at > NOW();",
    "DELETE FROM cart_items WHERE cart_id = {n} AND added_at < DATE_SUB(NOW(), INTERVAL {d} DAY);",
    "SELECT id FROM products WHERE id IN ({n}, {m}, {d}, {n2}, {m2}) /* api:v2 listing */;",
    "SELECT COUNT(*) FROM audit_log WHERE actor = 'user{n}@example.com' AND at BETWEEN "
    "'2024-02-01 00:00:00' AND '2024-02-{d:02d} 23:59:59';",
]
_SECRET_TEMPLATES = [
    "CREATE USER 'svc{n}'@'10.2.%' IDENTIFIED BY '{s}';",
    "SET PASSWORD FOR 'app'@'%' = PASSWORD('{s}');",
    "CHANGE MASTER TO MASTER_HOST='10.1.0.{d}', MASTER_USER='repl', MASTER_PASSWORD='{s}';",
    "SELECT 1 /* deploy token={s} */;",
    "INSERT INTO api_keys (owner, secret) VALUES ({n}, '{s}');",
]


def generate(path: Path, size: int, marker: str, seed: int = 7) -> int:
    """Write about `size` bytes of slow log; return how many secrets were planted."""
    rng = random.Random(seed)
    planted = 0
    written = 0
    header = ("/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-log (Debian 12). started with:\n"
              "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n"
              "Time                 Id Command    Argument\n")
    with open(path, "w", buffering=MIB) as out:
        out.write(header)
        written += len(header)
        entry = 0
        stamp = 1_704_448_800
        while written < size:
            entry += 1
            stamp += rng.randint(0, 2)
            user = rng.choice(_USERS)
            ip = f"10.{rng.randint(0, 3)}.{rng.randint(0, 15)}.{rng.randint(1, 254)}"
            host = f"web-{rng.randint(1, 40):02d}.example.com"
            n, m, d = rng.randint(1, 9_999_999), rng.randint(1, 999), rng.randint(1, 28)
            if entry % 500 == 0:
                secret = marker + secrets.token_urlsafe(12)
                sql = rng.choice(_SECRET_TEMPLATES).format(s=secret, n=n, d=d)
                planted += 1
            else:
                sql = rng.choice(_QUERIES).format(
                    n=n, m=m, d=d, n2=n + 7, m2=m + 11, cc=rng.choice(_COUNTRIES),
                    h=f"{rng.getrandbits(128):032x}")
            text = (
                f"# Time: 240105 10:{(stamp // 60) % 60:02d}:{stamp % 60:02d}\n"
                f"# User@Host: {user}[{user}] @ {host} [{ip}]\n"
                f"# Thread_id: {rng.randint(10, 90000)}  Schema: {rng.choice(_SCHEMAS)}  QC_hit: No\n"
                f"# Query_time: {rng.random() * 3:.6f}  Lock_time: {rng.random() / 1000:.6f}  "
                f"Rows_sent: {rng.randint(0, 100)}  Rows_examined: {rng.randint(0, 500000)}\n"
                f"# Rows_affected: {rng.randint(0, 5)}  Bytes_sent: {rng.randint(50, 90000)}\n"
                f"SET timestamp={stamp};\n{sql}\n"
            )
            out.write(text)
            written += len(text)
    return planted


def _measure(command: List[str], env: Dict[str, str], cwd: Path) -> Dict[str, float]:
    """Run `command`; wall and CPU seconds and the peak RSS (MiB) of its process, from wait4.

    CPU seconds (user + system) say more than wall time on a machine shared with other
    work: they are what the run cost, whatever else was running."""
    start = time.monotonic()
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    errors = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"redact_bench: {command[0]} exited {child.returncode}: {errors[-500:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


_MYDIAG = (
    "import sys\n"
    "from privacy.redact import redact_stream\n"
    "with open(sys.argv[1], 'rb') as src, open(sys.argv[2], 'wb') as dst:\n"
    "    counts = redact_stream(src, dst, statements=True)\n"
    "print(sum(counts.values()), file=sys.stderr)\n"
)


def run_mydiag(source: Path, target: Path) -> Dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = _measure([sys.executable, "-c", _MYDIAG, str(source), str(target)], env, ROOT)
    _rates(result, source.stat().st_size)
    return result


def _rates(result: Dict[str, float], size: int) -> None:
    result["mib_per_s"] = round(size / MIB / result["wall_s"], 2)
    result["mib_per_cpu_s"] = round(size / MIB / result["cpu_s"], 2)


def run_sos(source: Path, work: Path) -> Dict[str, float]:
    report = work / "sosreport-bench"
    (report / "sos_logs").mkdir(parents=True)
    (report / "var" / "log" / "mysql").mkdir(parents=True)
    shutil.move(str(source), report / "var" / "log" / "mysql" / "slow.log")
    size = (report / "var" / "log" / "mysql" / "slow.log").stat().st_size
    tmp = work / "sos-tmp"
    tmp.mkdir()
    sos = shutil.which("sos")
    if not sos:
        raise SystemExit("redact_bench: `sos` not found: apt-get install -y sosreport")
    result = _measure([sos, "clean", "--batch", "--tmp-dir", str(tmp), "--domains", "example.com",
                       str(report)], dict(os.environ), work)
    _rates(result, size)
    return result


def survived(path: Path, marker: str) -> int:
    """How many times the run's secret marker appears in `path` (0 means none survived)."""
    needle = marker.encode()
    hits = 0
    tail = b""
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(8 * MIB), b""):
            block = tail + chunk
            hits += block.count(needle)
            tail = block[-(len(needle) - 1):]
            hits -= tail.count(needle)
    return hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="slow log size (default 1024)")
    parser.add_argument("--skip-sos", action="store_true", help="measure mydiag only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mydiag-redact-bench-", dir="/tmp"))
    marker = "Zq" + secrets.token_hex(4) + "x"
    results: Dict[str, object] = {"size_mib": args.size_mib,
                                  "load_average": [round(x, 2) for x in os.getloadavg()]}
    try:
        small = work / "small-slow.log"
        generate(small, args.size_mib * MIB // 16, marker)
        big = work / "slow.log"
        started = time.monotonic()
        results["planted_secrets"] = generate(big, args.size_mib * MIB, marker)
        results["generate_s"] = round(time.monotonic() - started, 1)
        results["input_bytes"] = big.stat().st_size
        results["mydiag_small"] = run_mydiag(small, work / "small-out.log")
        results["mydiag"] = run_mydiag(big, work / "out.log")
        results["mydiag_output_bytes"] = (work / "out.log").stat().st_size
        results["mydiag_secrets_left"] = survived(work / "out.log", marker)
        (work / "out.log").unlink()
        if not args.skip_sos:
            results["sos_clean"] = run_sos(big, work)
            results["sos_secrets_left"] = survived(
                work / "sos-tmp" / "sosreport-bench" / "var" / "log" / "mysql" / "slow.log", marker)
            results["sos_version"] = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", "sosreport"], capture_output=True,
                text=True).stdout.strip()
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
