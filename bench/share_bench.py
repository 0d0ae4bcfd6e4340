"""`mydiag share`: how long a package takes, and the leak scan against `grep -F -i -f`.

    .venv/bin/python bench/share_bench.py [--runs 5] [--keep DIR]

Starts a private MariaDB (tests/servers.py) with the end-to-end scenario of
tests/sharekit.py (customer-like names made now, 4,000 customers, 16,000 partitioned
invoices, a view, statistics-driven plans), collects a bundle with `mydiag collect
--for-share`, then for each statement in the bundle:

- the wall time of `mydiag share BUNDLE --digest D` building its package (median of
  --runs, each into a new folder; the process's start-up included, as a user meets it);
- the leak scan over that package's files: report/share/leaks.Scanner (compiling the
  needles and scanning) against its peer, `grep -F -i -f NEEDLES FILES` over the same
  files in the same run, NEEDLES holding every encoded form the scanner compares (one a
  line), medians of --runs. grep matches substrings only, without the scanner's SQL token
  rules, so its answer is a superset; the figure compared is the time. The ratio printed
  is scanner / grep.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Set

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report.model import Bundle  # noqa: E402
from report.share import leaks, package, source  # noqa: E402
from tests import servers, sharekit  # noqa: E402

MYDIAG = [sys.executable, "-m", "agent.cli"]


def _collect(instance: servers.Instance, out: Path) -> Path:
    done = subprocess.run(MYDIAG + ["collect", "--json", "--host", "127.0.0.1", "--port", str(instance.port),
                                    "--user", "root", "--output", str(out), "--samples", "1", "--interval",
                                    "0", "--profile", "quick", "--for-share"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = json.loads(done.stdout)
    return Path(summary["bundle"])


def _share(path: Path, digest: str, work: Path, number: int, runs: Iterator[int],
           env: Dict[str, str]) -> None:
    out = work / f"pkg-{number}-{next(runs)}"
    done = subprocess.run(MYDIAG + ["share", str(path), "--digest", digest, "--output", str(out),
                                    "--map", str(work / f"map-{number}.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode not in (0, 22):
        raise SystemExit(f"mydiag share failed ({done.returncode}): {done.stderr.strip()}")


def _scan(needles: List[leaks.Needle], vocabulary: Set[str], files: Dict[str, bytes]) -> None:
    leaks.Scanner(needles, vocabulary).scan(files)


def _timed(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="keep the work folder here")
    args = parser.parse_args()
    if shutil.which("grep") is None:
        print("grep is not installed", file=sys.stderr)
        return 1
    work = Path(args.keep or tempfile.mkdtemp(prefix="share-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MYDIAG_HOME": str(work / "home")}
    instance = servers.create(work / "server", sharekit.SERVER_ARGS)
    try:
        scenario = sharekit.scenario()
        sharekit.build(instance, scenario)
        path = _collect(instance, work / "bundle")
    finally:
        instance.stop()
    bundle = Bundle.open(path)
    data = source.load(bundle)
    people = leaks.bundle_needles(bundle)
    print(f"bundle: {path.name}, {len(data.statements)} statements, {len(data.objects)} objects")
    print(f"{'statement':<18}{'share (s)':>11}{'files':>7}{'bytes':>9}{'needles':>9}{'forms':>7}"
          f"{'scan (ms)':>11}{'grep (ms)':>11}{'ratio':>8}")
    for number, stmt in enumerate(data.statements):
        if not stmt.sql:
            continue
        runs = iter(range(args.runs))
        wall = _timed(functools.partial(_share, path, stmt.digest, work, number, runs, env), args.runs)
        folder = work / f"pkg-{number}-0"
        files: Dict[str, bytes] = {p.name: p.read_bytes() for p in folder.iterdir()}
        built = package.build(data, (work / "home" / "share.key").read_bytes(), digest=stmt.digest)
        needles = list(built.needles) + people
        scanner = leaks.Scanner(needles, built.vocabulary)
        encoded: List[str] = []
        for needle in scanner.needles:
            encoded += [text for _, text in leaks.forms(needle.text)] + leaks.base64_forms(needle.text)
        needle_file = work / f"needles-{number}.txt"
        needle_file.write_text("\n".join(dict.fromkeys(encoded)) + "\n", encoding="utf-8")
        paths = [str(folder / name) for name in sorted(files)]
        ours = functools.partial(_scan, needles, built.vocabulary, files)
        peer = functools.partial(subprocess.run, ["grep", "-F", "-i", "-c", "-f", str(needle_file), *paths],
                                 capture_output=True)
        scan_s, grep_s = _timed(ours, args.runs), _timed(peer, args.runs)
        print(f"{stmt.digest[:16]:<18}{wall:>11.2f}{len(files):>7}{sum(map(len, files.values())):>9}"
              f"{len(scanner.needles):>9}{len(set(encoded)):>7}{scan_s * 1000:>11.1f}{grep_s * 1000:>11.1f}"
              f"{scan_s / grep_s:>8.2f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
