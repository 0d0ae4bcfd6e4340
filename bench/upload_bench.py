"""Upload benchmark (issue 5), on loopback against a real `mydiag-server`.

1. Throughput: one sealed bundle of SIZE (default 1 GiB) sent by `mydiag upload` (tus,
   16 MiB PATCHes, the file's SHA-256 computed alongside) and by `mydiag upload
   --chunk-checksum` (a SHA-1 Upload-Checksum on each PATCH too), against `curl -T` of
   the same file as one tus PATCH to the same server (the upload is created first with a
   POST, untimed; curl sends no checksum, like the default form). All
   end in the same completion: the server hashes the file and verifies the bundle
   (unseal, signature, every digest) before it answers the last PATCH, so every timing
   includes it. Each run goes to a new ticket;
   the median of RUNS runs each, alternating.
2. A cut at 50% (with --chunk-checksum, the form that re-sends the most): a proxy closes
   the connection once half the file went through; bytes re-sent = bytes through the
   proxy minus the file size.
3. 200 concurrent small uploads (different sealed bundles, 200 threads of our client),
   on SQLite and on PostgreSQL: errors, p50/p99 latency per upload.

Run: .venv/bin/python bench/upload_bench.py [--size-mib 1024] [--runs 3] [--pg URL]
     [--concurrent-only] [--rounds N] [--tickets K]
     (part 3 only; N rounds, SQLite and PostgreSQL alternating, the uploads spread over K
     tickets, with PostgreSQL's commits, rollbacks and rows written per upload)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zstandard  # noqa: E402

from agent.remote.transport import Client  # noqa: E402
from agent.remote.upload import Backoff, upload_file  # noqa: E402
from bundle import age  # noqa: E402
from bundle.manifest import FileEntry, Manifest, iso, utc_now  # noqa: E402
from bundle.writer import BundleWriter  # noqa: E402
from tests.serverkit import Proxy, Server, make_server  # noqa: E402

PY = sys.executable


def big_bundle(folder: Path, size: int, recipient: str) -> Path:
    """A valid bundle of about `size` bytes of incompressible members, sealed.

    Written here with tarfile and zstd level 1 rather than the BundleWriter: the writer's
    redaction and secret lint are for collected text, and take minutes on a GiB of noise.
    """
    folder.mkdir(parents=True, exist_ok=True)
    piece = 64 << 20
    blobs = [os.urandom(min(piece, size)) for _ in range(max(1, size // piece))]
    now = iso(utc_now())
    files = [FileEntry(f"os/blob-{i:03d}.bin", len(b), hashlib.sha256(b).hexdigest())
             for i, b in enumerate(blobs)]
    manifest = Manifest(host="bench", profile="standard", started=now, finished=now, files=files)
    body = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()
    plain = folder / "mydiag-bench-big.tar.zst"
    with open(plain, "wb") as raw, zstandard.ZstdCompressor(level=1).stream_writer(raw) as zout, \
            tarfile.open(fileobj=zout, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("manifest.json", body)] + [(f.path, b) for f, b in zip(files, blobs)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sealed = age.seal_file(plain, plain.with_name(plain.name + ".age"), [recipient])
    plain.unlink()
    return sealed


def small_bundles(folder: Path, count: int, recipient: str) -> list:
    out = []
    for index in range(count):
        writer = BundleWriter(folder)
        writer.add("mysql/status.json", json.dumps({"n": index, "pad": secrets.token_hex(512)}).encode())
        now = iso(utc_now())
        plain = writer.finish(Manifest(host=f"h{index}", profile="standard", started=now, finished=now),
                              f"mydiag-small-{index:03d}.tar.zst")
        out.append(age.seal_file(plain, plain.with_name(plain.name + ".age"), [recipient]))
        plain.unlink()
    return out


def ours(support: Server, path: Path, *extra: str) -> float:
    ticket = support.ticket()
    token = path.parent / "token"
    token.write_text(ticket["upload_token"])
    start = time.monotonic()
    done = subprocess.run([PY, "-m", "agent.cli", "upload", str(path), "--server", support.url,
                           "--ticket", ticket["id"], "--token-file", str(token), "--keep", "--json", *extra],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "MYDIAG_HOME": str(path.parent / "home")})
    elapsed = time.monotonic() - start
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "accepted", done.stderr
    return elapsed


def curl(support: Server, path: Path) -> float:
    ticket = support.ticket()
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", support.port)
    conn.request("POST", f"/api/v1/tickets/{ticket['id']}/uploads", headers={
        "Authorization": f"Bearer {ticket['upload_token']}", "Tus-Resumable": "1.0.0",
        "Upload-Length": str(path.stat().st_size)})
    reply = conn.getresponse()
    reply.read()
    location = reply.getheader("Location")
    conn.close()
    header_file = path.parent / "curl-auth"
    header_file.write_text(f"Authorization: Bearer {ticket['upload_token']}\n")
    start = time.monotonic()
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{header_json}", "-X", "PATCH",
         "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
         "-H", "Content-Type: application/offset+octet-stream", "-H", f"@{header_file}",
         "-T", str(path), location], capture_output=True, text=True)
    elapsed = time.monotonic() - start
    code, _, headers = done.stdout.partition(" ")
    assert code == "204" and "accepted" in headers, done.stdout[:300] + done.stderr
    return elapsed


def cut_at_half(support: Server, path: Path) -> dict:
    ticket = support.ticket()
    proxy = Proxy(support.port)
    size = path.stat().st_size
    proxy.cut_after(size // 2)
    token = path.parent / "token"
    token.write_text(ticket["upload_token"])
    done = subprocess.run([PY, "-m", "agent.cli", "upload", str(path), "--server", proxy.url,
                           "--ticket", ticket["id"], "--token-file", str(token), "--keep", "--json",
                           "--chunk-checksum"],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "MYDIAG_HOME": str(path.parent / "home-cut")})
    proxy.close()
    assert done.returncode == 0, done.stderr
    return {"file_bytes": size, "through_proxy": proxy.sent, "resent": proxy.sent - size}


def concurrent(support: Server, files: list, tickets: int = 1) -> dict:
    """The files uploaded at once, spread over `tickets` tickets (1: all to one ticket, which
    admits max_open_uploads (8) unfinished uploads at a time and answers the rest 429, so the
    latency is mostly the agents' backoff; len(files): one ticket per host, as a fleet)."""
    made = [support.ticket() for _ in range(tickets)]
    barrier = threading.Barrier(len(files))
    ticket_of = {path: made[i % tickets] for i, path in enumerate(files)}

    def one(path: Path) -> tuple:
        ticket = ticket_of[path]
        client = Client(support.url, ticket["upload_token"], timeout=120)
        barrier.wait()
        start = time.monotonic()
        try:
            outcome = upload_file(path, client, ticket["id"], remove=False, backoff=Backoff(10))
            ok = outcome.status == "accepted"
        except Exception as exc:  # noqa: BLE001 - counted as an error
            print(f"  error: {type(exc).__name__}: {exc}", file=sys.stderr)
            ok = False
        finally:
            client.close()
        return ok, time.monotonic() - start

    with ThreadPoolExecutor(len(files)) as pool:
        results = list(pool.map(one, files))
    latencies = sorted(r[1] for r in results)
    return {"uploads": len(files), "errors": sum(1 for r in results if not r[0]),
            "p50_s": round(latencies[len(latencies) // 2], 3),
            "p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3)}


def _pg_counts(admin_url: str, database: str) -> dict:
    """The database's committed and rolled-back transactions and the statements' rows touched."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute("SELECT xact_commit, xact_rollback, tup_inserted + tup_updated + tup_deleted"
                            " FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
    return {"commits": row[0], "rollbacks": row[1], "rows_written": row[2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432")
    parser.add_argument("--tickets", type=int, default=1,
                        help="tickets the concurrent uploads go to (default 1; --small for one each)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of the concurrent uploads, SQLite and PostgreSQL alternating")
    parser.add_argument("--concurrent-only", action="store_true",
                        help="only the concurrent small uploads (part 3)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mydiag-upload-bench-"))
    results: dict = {"size_bytes": args.size_mib << 20}
    servers = []
    pg_db = None
    try:
        support = make_server(base / "sqlite", None)
        support.start()
        servers.append(support)
        if not args.concurrent_only:
            results.update(throughput(support, base / "work", args))
        results["load_before_concurrent"] = [round(x, 2) for x in os.getloadavg()]
        import psycopg

        pg_db = f"mydiag_bench_{secrets.token_hex(4)}"
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {pg_db}")
        pg = make_server(base / "pg", f"{args.pg}/{pg_db}")
        pg.start()
        servers.append(pg)
        # The two databases alternate, round by round, so that the load on these shared cores
        # falls on both alike; each round is a new set of bundles (and a new ticket).
        for round_ in range(args.rounds):
            files = small_bundles(base / f"small-{round_}", args.small, support.recipient)
            results.setdefault("concurrent_sqlite", []).append(concurrent(support, files, args.tickets))
            files = small_bundles(base / f"small-pg-{round_}", args.small, pg.recipient)
            before = _pg_counts(f"{args.pg}/postgres", pg_db)
            figures = concurrent(pg, files, args.tickets)
            time.sleep(1.5)  # backends report their counters about once a second
            after = _pg_counts(f"{args.pg}/postgres", pg_db)
            figures.update({f"{k}_per_upload": round((after[k] - before[k]) / args.small, 1) for k in after})
            results.setdefault("concurrent_postgresql", []).append(figures)
        for name in ("concurrent_sqlite", "concurrent_postgresql"):
            results[f"{name}_median_p50_s"] = statistics.median(r["p50_s"] for r in results[name])
        results["postgresql_over_sqlite_p50"] = round(
            results["concurrent_postgresql_median_p50_s"] / results["concurrent_sqlite_median_p50_s"], 2)
        results["load_after_concurrent"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        for srv in servers:
            srv.stop()
        if pg_db:
            import psycopg

            with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


def throughput(support: Server, work: Path, args: argparse.Namespace) -> dict:
    """Parts 1 and 2: the big upload against curl, and the cut at 50%."""
    print(f"making a {args.size_mib} MiB sealed bundle ...", file=sys.stderr)
    big = big_bundle(work, args.size_mib << 20, support.recipient)
    results: dict = {"sealed_bytes": big.stat().st_size}
    mine, checked, theirs = [], [], []
    results["load_before"] = [round(x, 2) for x in os.getloadavg()]
    for run in range(args.runs):
        theirs.append(curl(support, big))
        mine.append(ours(support, big))
        checked.append(ours(support, big, "--chunk-checksum"))
        print(f"run {run + 1}: curl {theirs[-1]:.2f}s, mydiag {mine[-1]:.2f}s, "
              f"mydiag --chunk-checksum {checked[-1]:.2f}s", file=sys.stderr)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    size_mb = big.stat().st_size / 1e6
    results["curl_s"] = [round(t, 2) for t in theirs]
    results["mydiag_s"] = [round(t, 2) for t in mine]
    results["mydiag_chunk_checksum_s"] = [round(t, 2) for t in checked]
    results["curl_MBps"] = round(size_mb / statistics.median(theirs), 1)
    results["mydiag_MBps"] = round(size_mb / statistics.median(mine), 1)
    results["mydiag_chunk_checksum_MBps"] = round(size_mb / statistics.median(checked), 1)
    results["ratio"] = round(statistics.median(theirs) / statistics.median(mine), 3)
    results["ratio_chunk_checksum"] = round(statistics.median(theirs) / statistics.median(checked), 3)
    results["cut_at_50pct"] = cut_at_half(support, big)
    big.unlink()
    return results


if __name__ == "__main__":
    sys.exit(main())
