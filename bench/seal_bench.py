"""Sealing benchmark (issue 4): `mydiag seal`/`unseal` against the Go `age` tool.

Two 1 GiB inputs, made at run time under /tmp and deleted afterwards: incompressible
random bytes, and a realistic bundle (a tar.zst of status samples and server text, the
shape `mydiag collect` writes). Each tool seals each input, and unseals one reference
file that age sealed, as separate processes, rotating which tool goes first (the first
run also checks that each tool's sealed file opens with `age -d`). "age+sync" is age
followed by `sync FILE`, as durable as mydiag's output, which is fsynced before it is
renamed into place. The figures are the median of --runs runs: wall clock, and CPU
time (user + system), which a shared machine disturbs less. Peak RSS is the maximum
resident set GNU time reports for each process, so the interpreter, its imports and
every buffer count. Every unsealed output is checked against the input's sha256.

    .venv/bin/python bench/seal_bench.py [--size-mib 1024] [--runs 3] [--json FILE]

Needs `age`, `age-keygen` and GNU `time` (scripts/system-deps.sh --bench installs them).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import zstandard

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GOAL_RATIO = 0.7
GOAL_RSS_MIB = 64


#: GNU time reports the peak RSS of a process it forked itself. Measuring our own child
#: with wait4 would not do: Linux carries the parent's RSS high-water mark over fork and
#: exec into the child's ru_maxrss, so this (large) benchmark process would inflate it.
TIME = shutil.which("time") or ("/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None)


def run_measured(cmd: List[str], nice: int = 0) -> Tuple[float, float, float]:
    """Run `cmd`; (wall seconds, CPU seconds, peak RSS in MiB of that process)."""
    if TIME is None:
        raise SystemExit("GNU time is missing (apt-get install time): it measures the peak RSS")
    prefix = ["nice", "-n", str(nice)] if nice else []
    # Nothing left to write back from the run before (age leaves its output dirty in the
    # page cache): otherwise whichever tool comes next pays for that write-back.
    subprocess.run(["sync"], check=True)
    with tempfile.NamedTemporaryFile(dir="/tmp") as report, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        done = subprocess.run([*prefix, TIME, "-f", "%U %S %M", "-o", report.name, *cmd], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=errors)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed: {errors.read().decode(errors='replace')}")
        user, system, peak_kib = Path(report.name).read_text().split()[-3:]
    return elapsed, float(user) + float(system), int(peak_kib) / 1024


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def make_random(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(4 * MIB, left))
            out.write(block)
            left -= len(block)


class _Counter(io.RawIOBase):
    def __init__(self, sink) -> None:
        self.sink, self.count = sink, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.count += len(data)
        return self.sink.write(data)


def make_bundle(path: Path, size: int) -> None:
    """A tar.zst of JSON Lines samples and text, at least `size` bytes compressed.

    An 8 MiB pool of varied lines is written again and again from random offsets; the
    pool is far larger than zstd's window, so it compresses like fresh collector output.
    """
    rng = random.Random(4)
    lines = []
    pool_size = 0
    while pool_size < 8 * MIB:
        if rng.random() < 0.8:
            line = json.dumps({
                "ts": f"2026-01-02T03:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
                "Threads_running": rng.randrange(200), "Questions": rng.randrange(10**9),
                "Innodb_rows_read": rng.randrange(10**11), "Bytes_sent": rng.randrange(10**12),
                "Com_select": rng.randrange(10**8), "Handler_read_rnd_next": rng.randrange(10**10),
            }) + "\n"
        else:
            line = (f"---TRANSACTION {rng.randrange(10**9)}, ACTIVE {rng.randrange(900)} sec "
                    f"fetching rows, thread id {rng.randrange(10**6)}, query id "
                    f"{rng.randrange(10**9)} 10.0.{rng.randrange(255)}.{rng.randrange(255)} app "
                    f"SELECT * FROM orders WHERE id = ?\n")
        lines.append(line.encode())
        pool_size += len(line)
    pool = b"".join(lines)
    with open(path, "wb") as raw:
        counter = _Counter(raw)
        # Level 1 keeps generation quick; the sealing tools see compressed bytes either way.
        compressor = zstandard.ZstdCompressor(level=1, threads=-1)
        with compressor.stream_writer(counter, closefd=False) as zout, tarfile.open(
            fileobj=zout, mode="w|", format=tarfile.PAX_FORMAT
        ) as tar:
            member = 0
            while counter.count < size:
                offset = rng.randrange(len(pool))
                data = pool[offset:] + pool[:offset]
                info = tarfile.TarInfo(f"mysql/status-samples-{member:04d}.jsonl")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                member += 1


def bench(args: argparse.Namespace) -> Dict:
    for tool in ("age", "age-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"`{tool}` is missing: scripts/system-deps.sh --bench installs it")
    work = Path(tempfile.mkdtemp(prefix="mydiag-seal-bench-", dir="/tmp"))
    try:
        keyfile = work / "key.txt"
        subprocess.run(["age-keygen", "-o", str(keyfile)], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", str(keyfile)], check=True,
                                   capture_output=True, text=True).stdout.strip()
        size = args.size_mib * MIB
        mydiag = [sys.executable, "-m", "agent.cli"]
        tools = {
            "age": (
                lambda src, dst: ["age", "-r", recipient, "-o", str(dst), str(src)],
                lambda src, dst: ["age", "-d", "-i", str(keyfile), "-o", str(dst), str(src)],
            ),
            # The same, made as durable as mydiag makes its output (fsync before done):
            # `sync FILE` is one fsync(2) of that file.
            "age+sync": (
                lambda src, dst: ["sh", "-c", 'age -r "$0" -o "$1" "$2" && sync "$1"',
                                  recipient, str(dst), str(src)],
                lambda src, dst: ["sh", "-c", 'age -d -i "$0" -o "$1" "$2" && sync "$1"',
                                  str(keyfile), str(dst), str(src)],
            ),
            "mydiag": (
                lambda src, dst: mydiag + ["seal", str(src), "--recipient", recipient,
                                           "--output", str(dst)],
                lambda src, dst: mydiag + ["unseal", str(src), "--identity", str(keyfile),
                                           "--output", str(dst)],
            ),
        }
        results: Dict = {"inputs": {}}
        inputs = (("incompressible", make_random), ("realistic bundle", make_bundle))
        for label, make in (i for i in inputs if args.only in (None, i[0].split()[0])):
            source = work / "input"
            started = time.perf_counter()
            make(source, size)
            made = time.perf_counter() - started
            actual = source.stat().st_size
            expected = sha256(source)
            print(f"{label}: {actual / MIB:.0f} MiB made in {made:.1f}s", flush=True)
            runs: Dict[str, Dict[str, List[Tuple[float, float, float]]]] = {
                t: {"seal": [], "unseal": []} for t in tools
            }
            # Every tool unseals the same file, sealed once by age and left in the page
            # cache: mydiag's own output is dropped from the cache as it is written (see
            # bundle/age.py), which would otherwise make it read from the disk.
            reference = work / "reference.age"
            subprocess.run(["age", "-r", recipient, "-o", str(reference), str(source)], check=True)
            for number in range(args.runs):
                order = list(tools)[number % len(tools):] + list(tools)[:number % len(tools)]
                for tool in order:
                    seal, unseal = tools[tool]
                    sealed, opened = work / f"{tool}.age", work / f"{tool}.out"
                    runs[tool]["seal"].append(run_measured(seal(source, sealed), args.nice))
                    if number == 0:
                        interop = work / "interop.out"
                        subprocess.run(["age", "-d", "-i", str(keyfile), "-o", str(interop),
                                        str(sealed)], check=True)
                        if sha256(interop) != expected:
                            raise SystemExit(f"{tool}: its sealed file does not open to the input")
                        interop.unlink()
                    sealed.unlink()
                    runs[tool]["unseal"].append(run_measured(unseal(reference, opened), args.nice))
                    if sha256(opened) != expected:
                        raise SystemExit(f"{tool}: unsealed output differs from the input")
                    opened.unlink()
                    seal_run, unseal_run = runs[tool]["seal"][-1], runs[tool]["unseal"][-1]
                    print(f"  run {number + 1} {tool}: seal {seal_run[0]:.2f}s "
                          f"(cpu {seal_run[1]:.2f}s), unseal {unseal_run[0]:.2f}s "
                          f"(cpu {unseal_run[1]:.2f}s), load {os.getloadavg()[0]:.1f}",
                          flush=True)
            source.unlink()
            reference.unlink()
            summary = {}
            for tool in tools:
                summary[tool] = {}
                for op in ("seal", "unseal"):
                    seconds = statistics.median(t for t, _, _ in runs[tool][op])
                    summary[tool][op] = {
                        "seconds": round(seconds, 3),
                        "mib_per_s": round(actual / MIB / seconds, 1),
                        "cpu_seconds": round(statistics.median(c for _, c, _ in runs[tool][op]), 2),
                        "peak_rss_mib": round(max(r for _, _, r in runs[tool][op]), 1),
                        "runs": [round(t, 3) for t, _, _ in runs[tool][op]],
                    }
            results["inputs"][label] = {"bytes": actual, "tools": summary}
        results["machine"] = {
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "age": subprocess.run(["age", "--version"], capture_output=True, text=True).stdout.strip(),
            "runs": args.runs, "nice": args.nice,
        }
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(results: Dict) -> str:
    rows = [
        "| input | operation | age MiB/s | age+sync MiB/s | mydiag MiB/s | mydiag/age "
        "| mydiag/(age+sync) | CPU s age / mydiag | peak RSS age / mydiag |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, data in results["inputs"].items():
        tools = data["tools"]
        for op in ("seal", "unseal"):
            a, s, m = tools["age"][op], tools["age+sync"][op], tools["mydiag"][op]
            rows.append(
                f"| {label} ({data['bytes'] / MIB:.0f} MiB) | {op} | {a['mib_per_s']} | "
                f"{s['mib_per_s']} | {m['mib_per_s']} | {m['mib_per_s'] / a['mib_per_s']:.2f}x | "
                f"{m['mib_per_s'] / s['mib_per_s']:.2f}x | "
                f"{a['cpu_seconds']} / {m['cpu_seconds']} | "
                f"{a['peak_rss_mib']} / {m['peak_rss_mib']} MiB |"
            )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--only", choices=("incompressible", "realistic"),
                        help="run one input only")
    parser.add_argument("--nice", type=int, default=0,
                        help="run the measured commands at this niceness (negative needs root): "
                        "on a machine shared with other work, both tools then get the CPU first")
    args = parser.parse_args()
    autogroup = Path("/proc/self/autogroup")
    before = None
    if args.nice:
        # With the kernel's autogroup scheduling, niceness only ranks processes inside one
        # session; this session's own weight among the others is set here, and restored.
        try:
            before = autogroup.read_text().split()[-1]
            autogroup.write_text(str(args.nice))
        except (OSError, IndexError) as exc:
            before = None
            print(f"note: autogroup niceness not set ({exc})", file=sys.stderr)
    try:
        results = bench(args)
    finally:
        if before is not None:
            autogroup.write_text(before)
    print(table(results))
    worst_ratio = min(
        d["tools"]["mydiag"][op]["mib_per_s"] / d["tools"]["age"][op]["mib_per_s"]
        for d in results["inputs"].values() for op in ("seal", "unseal")
    )
    worst_rss = max(
        d["tools"]["mydiag"][op]["peak_rss_mib"]
        for d in results["inputs"].values() for op in ("seal", "unseal")
    )
    print(f"goal: >= {GOAL_RATIO}x age's throughput (worst {worst_ratio:.2f}x), "
          f"peak RSS <= {GOAL_RSS_MIB} MiB (worst {worst_rss} MiB)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if worst_ratio >= GOAL_RATIO and worst_rss <= GOAL_RSS_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
