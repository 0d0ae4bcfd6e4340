"""S3 store benchmark (issue 18), on loopback: one sealed bundle of SIZE (default 256 MiB).

1. `mydiag upload` (tus, 16 MiB PATCHes) to a real `mydiag-server` whose blobs live on
   s3rver (multipart parts of 8 MiB, the tail object between PATCHes, completion and
   server-side copy to the bundle's key), against
2. the same upload to a server on the local store (DATA/blobs), and against
3. the peer: boto3's `upload_file` of the same file straight to s3rver (what `aws s3 cp`
   does: 8 MiB parts, 10 threads), no server in between.

Every server run ends when the agent has the verdict (the bundle unsealed and checked from
the store); each run is a new ticket; RUNS runs of each, alternating; medians. The servers'
peak RSS (VmHWM) is read after the runs.

Run: .venv/bin/python bench/s3_bench.py [--size-mib 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from upload_bench import big_bundle, ours  # noqa: E402

from tests.s3kit import S3rver  # noqa: E402
from tests.serverkit import Server, make_server, server_cli  # noqa: E402

MIB = 1 << 20


def s3_server(base: Path, s3: S3rver) -> Server:
    data = base / "data"
    creds = s3.credentials_file(base)
    init = json.loads(server_cli(
        "init", "--data", str(data), "--json", "--blob-store", "s3", "--s3-endpoint", s3.endpoint,
        "--s3-bucket", s3.bucket, "--s3-prefix", "bench/", "--s3-credentials-file", str(creds)).stdout)
    return Server(data, None, init["admin_token"], init["recipients"][0])


def peer(s3: S3rver, path: Path) -> float:
    from boto3.s3.transfer import TransferConfig

    client = s3.client()
    start = time.monotonic()
    client.upload_file(str(path), s3.bucket, f"peer/{time.monotonic_ns()}", Config=TransferConfig())
    return time.monotonic() - start


def peak_rss_mib(server: Server) -> float:
    status = Path(f"/proc/{server.processes[-1].pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    base = Path(tempfile.mkdtemp(prefix="s3-bench-"))
    s3 = S3rver(base / "s3rver", "bench").start()
    local = make_server(base / "local", None)
    remote = s3_server(base / "s3", s3)
    try:
        local.start()
        remote.start()
        files = {"local": big_bundle(base / "b-local", size, local.recipient),
                 "s3": big_bundle(base / "b-s3", size, remote.recipient)}
        sealed_bytes = files["s3"].stat().st_size
        times = {"s3 store": [], "local store": [], "peer boto3 upload_file": []}
        for run in range(args.runs):
            times["s3 store"].append(ours(remote, files["s3"]))
            times["local store"].append(ours(local, files["local"]))
            times["peer boto3 upload_file"].append(peer(s3, files["s3"]))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        result = {"bundle_bytes": sealed_bytes, "runs": args.runs, "results": {}}
        for name, values in times.items():
            median = statistics.median(values)
            result["results"][name] = {"seconds": [round(v, 2) for v in values], "median_s": round(median, 2),
                                       "MiB_per_s": round(sealed_bytes / MIB / median, 1)}
        result["peak_rss_mib"] = {"s3 store server": round(peak_rss_mib(remote), 1),
                                  "local store server": round(peak_rss_mib(local), 1)}
        print(json.dumps(result, indent=2))
    finally:
        local.stop()
        remote.stop()
        s3.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
