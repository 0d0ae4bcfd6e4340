"""Web pages benchmark (issue 13): p95 of the engineers' pages with 10,000 tickets and
50,000 bundles in the database, on SQLite and on PostgreSQL.

For each database a real `mydiag-server run` on loopback (tests/serverkit.py), on SQLite
or on a PostgreSQL database of its own on the machine's server (created for the run and
dropped at the end). Before the server starts, rows go straight into its database
through the server's own storage layer (executemany, the way tests/web/test_ticket_list.py
seeds: the API would take many minutes): TICKETS tickets with a `ticket.create` audit
entry each, BUNDLES bundles (one in 50 quarantined with a reason, hosts db0–db2, a
`bundle.receive` audit entry each), of which BIG belong to one ticket (the ticket page
with many bundles). One real bundle, collected by `mydiag collect` from a private MariaDB
(tests/servers.py) or given with --bundle, is put in the blob store and added to a
normal ticket and to the big one; the server's own report code (server/intake/reports.render:
report.engine, then report/html.py's fragment into the blob store) renders it; then one
accepted bundle in ten gets a copy of that `reports` row (so the table has thousands of
rows, every one pointing at a real fragment).

An engineer signs in over HTTP (the sign-in form, its CSRF cookie, the session cookie);
then each page is fetched over one keep-alive connection: 20 warm-up requests, then
REQUESTS timed ones (wall time from sending the request to the last byte of the body).
The server process's RSS is read from /proc after it starts, after each page (VmRSS),
and its peak (VmHWM) after the sign-in and at the end: argon2id's 64 MiB of memory cost
for the one password check is most of that peak, not the pages. A static file from the
same server is the floor: what the server costs for a request that reads no database and
renders nothing. There is no peer help desk on this machine, so the goal (p95 ≤ 150 ms)
is absolute.

Run: .venv/bin/python bench/pages_bench.py [--tickets 10000] [--bundles 50000] [--big 1000]
     [--requests 200] [--backends sqlite,postgresql] [--bundle PLAIN.tar.zst] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402
from tests.serverkit import Server, _pg_admin, _pg_base, agent_cli, make_server  # noqa: E402

GOAL_MS = 150.0
WARMUP = 20


# -- a real bundle -------------------------------------------------------------------------

def collect_bundle(base: Path) -> Path:
    """A standard-profile bundle of a private MariaDB (3 samples), as a customer makes one."""
    instance = servers.create(base / "mariadb", ["--performance-schema=ON"])
    try:
        folder = base / "collect"
        folder.mkdir(parents=True)
        cnf = folder / "my.cnf"
        cnf.write_text(f"[client]\nhost = 127.0.0.1\nport = {instance.port}\nuser = root\npassword = \"\"\n")
        cnf.chmod(0o600)
        done = agent_cli("collect", "--json", "--yes", "--defaults-file", str(cnf), "--output",
                         str(folder / "out"), "--profile", "standard", "--samples", "3", "--interval", "0.5",
                         env={"MYDIAG_HOME": str(folder / "home")})
        if done.returncode not in (0, 3):
            raise SystemExit(f"mydiag collect failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return Path(json.loads(done.stdout)["bundle"])
    finally:
        instance.stop()


# -- seeding -------------------------------------------------------------------------------

def ticket_id(n: int) -> str:
    return f"tk-{n:010d}"


def seed(server: Server, plain: Path, tickets: int, bundles: int, big: int) -> Dict[str, Any]:
    """Fill the server's database (see the module's docstring); the ids the pages use."""
    from bundle.reader import read_manifest
    from server.intake import reports
    from server.storage.state import State

    state = State.open(server.data, server.database)
    started = time.monotonic()
    try:
        sha256 = hashlib.sha256(plain.read_bytes()).hexdigest()
        state.data.tmp.mkdir(parents=True, exist_ok=True)
        copy = state.data.tmp / f"bench-{secrets.token_hex(4)}"
        shutil.copyfile(plain, copy)
        state.store.put_file(copy, sha256)
        host = read_manifest(plain).host
        now = time.time()
        start = now - tickets * 60.0
        big_ticket = ticket_id(tickets // 2)
        normal_ticket = ticket_id(tickets // 2 + 1)
        ticket_rows = [(ticket_id(n), f"cust{n % 97}", f"ticket {n}: replication lag on db{n % 3}", "[]",
                        start + n * 60.0, "admin:bench") for n in range(tickets)]
        bundle_rows: List[Tuple[Any, ...]] = []
        others = [n for n in range(tickets) if ticket_id(n) != big_ticket]
        for k in range(bundles - 2):
            owner = tickets // 2 if k < big else others[(k - big) % len(others)]
            quarantined = k % 50 == 49
            received = start + owner * 60.0 + 1.0 + k * 0.001
            bundle_rows.append((f"bd-{k:016x}", ticket_id(owner), f"{k:064x}", 1_500_000 + k,
                                f"mydiag-db{k % 3}-{k}.tar.zst.age",
                                "quarantined" if quarantined else "accepted",
                                "the signature does not match the enrolled key" if quarantined else None,
                                None, f"db{k % 3}", "2026-12-01T10:00:00Z", "2026-12-01T10:01:00Z",
                                received, received))
        real = {"normal": ("bd-real0000000001", normal_ticket), "big": ("bd-real0000000002", big_ticket)}
        for bundle_id, owner in real.values():
            bundle_rows.append((bundle_id, owner, sha256, plain.stat().st_size, plain.name, "accepted", None,
                                None, host, "2026-12-01T10:00:00Z", "2026-12-01T10:01:00Z", now, now))
        audit_rows = [(t[4], "admin:bench", "ticket.create", t[0], None, json.dumps({"customer": t[1]}))
                      for t in ticket_rows]
        audit_rows += [(b[11], "upload:bench", "bundle.receive", b[1], b[0], json.dumps({"host": b[8]}))
                       for b in bundle_rows]
        audit_rows.sort(key=lambda r: r[0])
        with state.db.tx() as tx:
            cursor = tx._cursor
            cursor.executemany(tx._sql("INSERT INTO tickets (id, customer, title, recipients, created, "
                                       "created_by) VALUES (?, ?, ?, ?, ?, ?)"), ticket_rows)
            cursor.executemany(tx._sql(
                "INSERT INTO bundles (id, ticket_id, sha256, size, filename, status, reason, signer, host, "
                "started, finished, received, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                bundle_rows)
            cursor.executemany(tx._sql("INSERT INTO audit (at, actor, action, ticket_id, subject, detail) "
                                       "VALUES (?, ?, ?, ?, ?, ?)"), audit_rows)
        rendering = time.monotonic()
        row = reports.render(state, real["normal"][0])
        if row["state"] != reports.RENDERED:
            raise SystemExit(f"the real bundle's report did not render: {row['error']}")
        rendered_s = time.monotonic() - rendering
        stored = (row["state"], row["headline"], row["report_json"], row["html_key"], None, now)
        copies = [(b[0], *stored) for b in bundle_rows[:-2:10] if b[5] == "accepted"]
        copies.append((real["big"][0], *stored))
        with state.db.tx() as tx:
            tx._cursor.executemany(tx._sql(
                "INSERT INTO reports (bundle_id, state, headline, report_json, html_key, error, rendered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)"), copies)
            counted = {name: int(tx.one(f"SELECT COUNT(*) AS n FROM {name}")["n"])
                       for name in ("tickets", "bundles", "reports", "audit")}
        if state.db.dialect == "postgresql":
            with state.db.tx() as tx:
                tx.run("ANALYZE")
        fragment = reports.fragment(state, row) or ""
    finally:
        state.close()
    return {"big_ticket": big_ticket, "normal_ticket": normal_ticket, "real": real, "counts": counted,
            "seed_s": round(time.monotonic() - started, 1), "render_s": round(rendered_s, 2),
            "fragment_bytes": len(fragment.encode()), "report_json_bytes": len(row["report_json"] or "")}


# -- the engineer over HTTP ----------------------------------------------------------------

class KeepAlive:
    """One persistent HTTP/1.1 connection that keeps cookies."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.jar: Dict[str, str] = {}

    def request(self, method: str, path: str, form: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items())} if self.jar else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        reply = self.conn.getresponse()
        data = reply.read()
        for key, value in reply.getheaders():
            if key.lower() == "set-cookie":
                morsel = next(iter(SimpleCookie(value).values()))
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self.jar.pop(morsel.key, None)
                else:
                    self.jar[morsel.key] = morsel.value
        return reply.status, data

    def sign_in(self, name: str, password: str) -> None:
        status, body = self.request("GET", "/signin")
        text = body.decode()
        marker = 'name="csrf" value="'
        at = text.index(marker) + len(marker)
        status, body = self.request("POST", "/signin", {"csrf": text[at:text.index('"', at)], "name": name,
                                                       "password": password, "next": "/"})
        if status != 303 or "mydiag_session" not in self.jar:
            raise SystemExit(f"sign-in failed: {status} {body[:200]!r}")

    def close(self) -> None:
        self.conn.close()


def new_engineer(server: Server) -> Tuple[str, str]:
    name = "bench"
    server.cli("engineer", "add", name)
    password = secrets.token_urlsafe(18)
    extra = ["--database", server.database] if server.database else []
    done = subprocess.run([sys.executable, "-m", "server.cli", "engineer", "password", name, "--stdin",
                           "--data", str(server.data), *extra], input=password + "\n", cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"engineer password failed: {done.stderr.strip()}")
    return name, password


def proc_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def time_page(client: KeepAlive, path: str, requests: int, must_hold: Optional[str]) -> Dict[str, Any]:
    for _ in range(WARMUP):
        status, body = client.request("GET", path)
        if status != 200:
            raise SystemExit(f"{path}: {status} {body[:300]!r}")
    if must_hold and must_hold.encode() not in body:
        raise SystemExit(f"{path}: the page does not hold {must_hold!r}")
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        status, body = client.request("GET", path)
        samples.append((time.perf_counter() - began) * 1000.0)
        if status != 200:
            raise SystemExit(f"{path}: {status}")
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p95_ms": samples[max(0, -(-95 * len(samples) // 100) - 1)],
            "max_ms": samples[-1], "bytes": len(body)}


def run_backend(kind: str, plain: Path, args: argparse.Namespace, base: Path) -> Dict[str, Any]:
    database: Optional[str] = None
    pg_name = None
    if kind == "postgresql":
        pg_base = _pg_base()
        pg_name = f"mydiag_bench_{secrets.token_hex(6)}"
        with _pg_admin(pg_base) as admin:
            admin.execute(f"CREATE DATABASE {pg_name}")
        database = f"{pg_base}/{pg_name}"
    server = make_server(base / kind, database)
    try:
        name, password = new_engineer(server)
        seeded = seed(server, plain, args.tickets, args.bundles, args.big)
        process = server.start()
        started_rss = proc_kib(process.pid, "VmRSS") / 1024.0
        client = KeepAlive(server.port)
        client.sign_in(name, password)
        signin_peak = proc_kib(process.pid, "VmHWM") / 1024.0
        normal_id, normal_ticket = seeded["real"]["normal"]
        big_id, big_ticket = seeded["real"]["big"]
        middle = max(1, -(-args.tickets // 50) // 2)
        last = max(1, -(-args.tickets // 50))
        pages = [
            ("static file (floor)", "/static/site.css", None),
            ("ticket list, first page", "/", f"{args.tickets} tickets"),
            (f"ticket list, page {middle}", f"/?page={middle}", f"page {middle} of"),
            (f"ticket list, page {last} (last)", f"/?page={last}", f"page {last} of"),
            (f"ticket page, {args.big + 1} bundles", f"/tickets/{big_ticket}", big_id),
            ("report page (ticket of 5 bundles)", f"/tickets/{normal_ticket}/bundles/{normal_id}/report",
             "Report for"),
            (f"report page (ticket of {args.big + 1} bundles)",
             f"/tickets/{big_ticket}/bundles/{big_id}/report", "Report for"),
        ]
        rows = []
        for label, path, must_hold in pages:
            timed = time_page(client, path, args.requests, must_hold)
            timed.update(page=label, path=path, rss_mib=proc_kib(process.pid, "VmRSS") / 1024.0)
            rows.append(timed)
            print(f"  {kind}: {label}: p50 {timed['p50_ms']:.1f} ms, p95 {timed['p95_ms']:.1f} ms, "
                  f"max {timed['max_ms']:.1f} ms", flush=True)
        client.close()
        peak = proc_kib(process.pid, "VmHWM") / 1024.0
        return {"backend": kind, "seed": seeded, "pages": rows, "peak_rss_mib": peak,
                "started_rss_mib": started_rss, "signin_peak_mib": signin_peak, "load_after": os.getloadavg()}
    finally:
        server.stop()
        if pg_name:
            with _pg_admin(_pg_base()) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")


def table(results: List[Dict[str, Any]]) -> str:
    lines = ["| database | page | p50 ms | p95 ms | max ms | bytes | server RSS MiB | goal p95 ≤ 150 ms |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for result in results:
        for row in result["pages"]:
            floor = row["path"].startswith("/static/")
            verdict = "(floor)" if floor else ("met" if row["p95_ms"] <= GOAL_MS else "**not met**")
            lines.append(f"| {result['backend']} | {row['page']} | {row['p50_ms']:.1f} | "
                         f"{row['p95_ms']:.1f} | {row['max_ms']:.1f} | {row['bytes']:,} | "
                         f"{row['rss_mib']:.1f} | {verdict} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--bundles", type=int, default=50_000)
    parser.add_argument("--big", type=int, default=1_000, help="bundles of the one big ticket")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--bundle", type=Path, help="a plain bundle to use instead of collecting one")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="mydiag-pages-bench-"))
    try:
        load_before = os.getloadavg()
        if args.bundle:
            plain, origin = args.bundle, f"given: {args.bundle.name}"
        else:
            plain, origin = collect_bundle(base), "collected by `mydiag collect --profile standard` from a " \
                                                   "private MariaDB (3 samples)"
        print(f"bundle: {plain.name} ({plain.stat().st_size:,} bytes), {origin}", flush=True)
        results = [run_backend(kind, plain, args, base) for kind in args.backends.split(",") if kind]
        print()
        print(f"{args.tickets:,} tickets, {args.bundles:,} bundles ({args.big + 1:,} on one ticket), "
              f"{args.requests} requests per page after {WARMUP} warm-up, one keep-alive connection; "
              f"load average before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}")
        for result in results:
            seeded = result["seed"]
            load = result["load_after"]
            print(f"{result['backend']}: rows {seeded['counts']}, seeded in {seeded['seed_s']} s; report "
                  f"rendered in {seeded['render_s']} s (fragment {seeded['fragment_bytes']:,} bytes); "
                  f"server RSS {result['started_rss_mib']:.1f} MiB at start, peak "
                  f"{result['signin_peak_mib']:.1f} MiB after the sign-in (argon2id), "
                  f"{result['peak_rss_mib']:.1f} MiB at the end; load average after "
                  f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
        print()
        print(table(results))
        if args.json:
            args.json.write_text(json.dumps({"bundle": origin, "results": results}, indent=2, default=str))
        missed = [r for res in results for r in res["pages"]
                  if not r["path"].startswith("/static/") and r["p95_ms"] > GOAL_MS]
        return 1 if missed else 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
