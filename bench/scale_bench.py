"""Scale-out benchmark (issue 18): one server process against three behind HAProxy, on
PostgreSQL and s3rver, under 1,000 agents uploading small bundles while 50 engineers open pages.

Each deployment is fresh: a new PostgreSQL database, a new s3rver folder, `mydiag-server
init --blob-store s3`, then 1 or 3 `mydiag-server run` processes (tests/serverkit.py) and, for
3, Debian's HAProxy in front (tests/haproxykit.py). The agents are real sealed bundles (one
BundleWriter bundle each, made once and sealed to each deployment's recipient), sent by the
agent's own tus code in-process (agent.remote.upload.upload_file over one keep-alive
connection per agent), `--concurrency` of them at a time (a thread each), ten agents per
ticket. An upload's latency runs from its first request to the verdict (the agent asks
until the background verification says `accepted`). Meanwhile `--engineers` threads, each
with a session signed in before the clock starts, open the ticket list and a ticket page
`--pages` times each.

Figures: throughput = bundles verified per second (accepted verdicts / wall time from the
first upload to the last verdict); p50/p99 of uploads and of pages; errors (any upload not
accepted, any page not 200); and per process, the CPU seconds it used and bundles per CPU
second, so that scaling on more cores can be computed. Every process gets the same
PostgreSQL pool (`MYDIAG_PG_POOL`, default 24 here: three of them stay within the server's
max_connections).

Run: .venv/bin/python bench/scale_bench.py [--agents 1000] [--concurrency 64] [--engineers 50]
     [--pages 10] [--pg postgresql://root@127.0.0.1:5432] [--only 1|3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from agent.remote.transport import Client  # noqa: E402
from agent.remote.upload import Backoff, upload_file  # noqa: E402
from bundle import age  # noqa: E402
from bundle.manifest import Manifest, iso, utc_now  # noqa: E402
from bundle.writer import BundleWriter  # noqa: E402
from tests.haproxykit import balancer  # noqa: E402
from tests.s3kit import S3rver  # noqa: E402
from tests.serverkit import Server, server_cli  # noqa: E402
from tests.servers import free_port  # noqa: E402
from tests.web.conftest import Client as PageClient  # noqa: E402
from tests.web.conftest import new_engineer  # noqa: E402

AGENTS_PER_TICKET = 10


def plain_bundles(folder: Path, count: int) -> List[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for index in range(count):
        writer = BundleWriter(folder)
        writer.add("mysql/status.json", json.dumps({"n": index, "pad": secrets.token_hex(512)}).encode())
        now = iso(utc_now())
        out.append(writer.finish(Manifest(host=f"agent{index:04d}", profile="standard", started=now,
                                          finished=now), f"mydiag-agent{index:04d}.tar.zst"))
    return out


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 3) if ordered else 0.0


def deploy(base: Path, pg: str, processes: int) -> tuple:
    import psycopg

    name = f"mydiag_scale_{secrets.token_hex(4)}"
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{pg}/{name}"
    s3 = S3rver(base / "s3rver-data", "mydiag-bench").start()
    data = base / "data"
    init = json.loads(server_cli(
        "init", "--data", str(data), "--json", "--database", url, "--blob-store", "s3",
        "--s3-endpoint", s3.endpoint, "--s3-bucket", s3.bucket, "--s3-prefix", "srv/",
        "--s3-region", "us-east-1", "--s3-credentials-file", str(s3.credentials_file(base))).stdout)
    server = Server(data, url, init["admin_token"], init["recipients"][0])
    ports = [free_port() for _ in range(processes)]
    for port in ports:
        server.start(port)
    front = balancer(base, ports) if processes > 1 else None
    if front is not None:
        server.port = front.http_port
    return server, s3, front, name


def run(args: argparse.Namespace, plains: List[Path], processes: int) -> Dict:
    base = Path(tempfile.mkdtemp(prefix=f"mydiag-scale-{processes}-"))
    server, s3, front, db_name = deploy(base, args.pg, processes)
    try:
        tickets = [server.ticket(customer=f"c{i % 7}", title=f"fleet {i}")
                   for i in range((len(plains) + AGENTS_PER_TICKET - 1) // AGENTS_PER_TICKET)]
        (base / "sealed").mkdir()
        sealed = [age.seal_file(p, base / "sealed" / (p.name + ".age"), [server.recipient]) for p in plains]
        engineer, password = new_engineer(server, "bench-eng")
        sessions = []
        for _ in range(args.engineers):
            client = PageClient(server.port)
            assert client.sign_in(engineer, password).status == 303
            sessions.append(client)
        procs = [psutil.Process(p.pid) for p in server.processes]
        cpu_before = [p.cpu_times() for p in procs]
        upload_lat: List[float] = []
        page_lat: List[float] = []
        errors: List[str] = []
        lock = threading.Lock()

        def agent(index: int) -> None:
            ticket = tickets[index // AGENTS_PER_TICKET]
            client = Client(server.url, ticket["upload_token"], timeout=120)
            start = time.monotonic()
            try:
                outcome = upload_file(sealed[index], client, ticket["id"], remove=False, backoff=Backoff(12))
                ok = outcome.status == "accepted"
                why = outcome.status
            except Exception as exc:  # noqa: BLE001 - counted and named
                ok, why = False, f"{type(exc).__name__}: {exc}"
            finally:
                client.close()
            with lock:
                upload_lat.append(time.monotonic() - start)
                if not ok:
                    errors.append(f"upload {index}: {why}")

        def engineer_pages(client: PageClient) -> None:
            for turn in range(args.pages):
                path = "/" if turn % 2 == 0 else f"/tickets/{tickets[turn % len(tickets)]['id']}"
                start = time.monotonic()
                try:
                    status = client.get(path).status
                except OSError as exc:
                    status = f"{type(exc).__name__}"
                with lock:
                    page_lat.append(time.monotonic() - start)
                    if status != 200:
                        errors.append(f"page {path}: {status}")

        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as agents, ThreadPoolExecutor(args.engineers) as pages:
            page_jobs = [pages.submit(engineer_pages, c) for c in sessions]
            list(agents.map(agent, range(len(plains))))
            for job in page_jobs:
                job.result()
        wall = time.monotonic() - started
        cpu = [round(sum(a) - sum(b), 2) for a, b in
               ((p.cpu_times()[:2], before[:2]) for p, before in zip(procs, cpu_before))]
        accepted = sum(1 for b in _all_bundles(server, tickets) if b["status"] == "accepted")
        throughput = accepted / wall
        return {
            "processes": processes, "agents": len(plains), "accepted": accepted, "wall_s": round(wall, 2),
            "bundles_per_s": round(throughput, 2),
            "upload_p50_s": pct(upload_lat, 0.5), "upload_p99_s": pct(upload_lat, 0.99),
            "pages": len(page_lat), "page_p50_ms": round(pct(page_lat, 0.5) * 1000, 1),
            "page_p99_ms": round(pct(page_lat, 0.99) * 1000, 1),
            "errors": len(errors), "error_sample": errors[:5],
            "cpu_s_per_process": cpu, "bundles_per_s_per_process": round(throughput / processes, 2),
            "bundles_per_cpu_s": round(accepted / max(0.01, sum(cpu)), 2),
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        if front is not None:
            front.stop()
        server.stop()
        s3.stop()
        import psycopg

        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        shutil.rmtree(base, ignore_errors=True)


def _all_bundles(server: Server, tickets: List[Dict]) -> List[Dict]:
    found = []
    for ticket in tickets:
        found += server.settled(ticket["id"], timeout=120)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--engineers", type=int, default=50)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432")
    parser.add_argument("--only", type=int, choices=(1, 3))
    args = parser.parse_args()
    os.environ.setdefault("MYDIAG_PG_POOL", "24")
    work = Path(tempfile.mkdtemp(prefix="mydiag-scale-bundles-"))
    try:
        print(f"making {args.agents} bundles ...", file=sys.stderr)
        plains = plain_bundles(work, args.agents)
        results = {"load_before": [round(x, 2) for x in os.getloadavg()],
                   "pg_pool_per_process": int(os.environ["MYDIAG_PG_POOL"]), "runs": []}
        for processes in ([args.only] if args.only else [1, 3]):
            print(f"{processes} process(es) ...", file=sys.stderr)
            results["runs"].append(run(args, plains, processes))
            print(json.dumps(results["runs"][-1]), file=sys.stderr)
        if len(results["runs"]) == 2:
            one, three = results["runs"]
            results["ratio_3_to_1"] = round(three["bundles_per_s"] / one["bundles_per_s"], 3)
            results["goal_ratio_at_least_0_9"] = results["ratio_3_to_1"] >= 0.9
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
