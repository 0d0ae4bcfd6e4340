"""Start-up of the single-file agent next to the installed tree and the venv, in one run.

    .venv/bin/python bench/startup_bench.py [--pyz dist/mydiag.pyz --tree build/pyz] [-n 10]

Without --pyz it builds one (scripts/build_pyz.py, every Python and machine) into the run's
temporary folder. Three forms of the same agent, on the same Python (the venv's own base
interpreter, so only the form differs):

- pyz: `python3 -I mydiag.pyz` (-I: no site-packages, no user site, as on a bare host); the
  first run with an empty MYDIAG_HOME is reported apart (cold: extraction of the compiled set,
  every module compiled), the other runs are warm.
- ./pyz: the same file run as a program (`./mydiag.pyz`): its sh launcher starts the python3
  on PATH (here the same interpreter) as `python3 -I -S`, so no .pth file of the host's
  site-packages runs first.
- tree: a copy of the unzipped tree compiled with `python3 -m compileall` as a package's
  install step does, run as its /usr/bin/mydiag does, standing in for
  /usr/lib/mydiag (`python3 -s -S TREE`: no site module, so no .pth file of the host's
  site-packages runs before the agent).
- venv: `.venv/bin/mydiag` (the editable install's script).

Commands: `--version`; `collect --profile quick` against a private MariaDB this script
starts (tests/servers.py) with its defaults (5 samples 1 s apart: most of it is the sampling
window); and `collect --profile quick --samples 1`, where start-up is a larger share. Each is
run N times per form, the forms interleaved so that load on the machine hits all alike;
medians and the ratio to the venv's median are printed. The goal is a ratio of at most 1.2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402

GOAL = 1.2


def timed(argv: List[str], env: Dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyz", type=Path)
    parser.add_argument("--tree", type=Path)
    parser.add_argument("-n", type=int, default=10, help="repetitions per form and command (default 10)")
    args = parser.parse_args()
    python = getattr(sys, "_base_executable", sys.executable)
    venv_mydiag = ROOT / ".venv" / "bin" / "mydiag"
    with tempfile.TemporaryDirectory(prefix="mydiag-startup-") as tmp:
        run = Path(tmp)
        pyz, tree = args.pyz, args.tree
        if pyz is None:
            pyz, tree = run / "mydiag.pyz", run / "tree"
            subprocess.run([sys.executable, str(ROOT / "scripts" / "build_pyz.py"), "--out", str(pyz),
                            "--tree", str(tree)], check=True, stdout=subprocess.DEVNULL)
        size = pyz.stat().st_size
        installed = run / "installed"
        shutil.copytree(tree or ROOT / "build" / "pyz", installed)
        subprocess.run([python, "-m", "compileall", "-q", str(installed)], check=True)
        instance = servers.create(run / "db")
        try:
            defaults = run / "my.cnf"
            defaults.write_text(f"[client]\nhost = 127.0.0.1\nport = {instance.port}\nuser = root\n")
            defaults.chmod(0o600)
            out = run / "out"
            out.mkdir()
            interpreters = {"pyz": [python, "-I"], "./pyz": [python, "-I", "-S"],
                            "tree": [python, "-s", "-S"], "venv": [str(ROOT / ".venv" / "bin" / "python")]}
            forms = {"pyz": [*interpreters["pyz"], str(pyz)], "./pyz": [str(pyz)],
                     "tree": [*interpreters["tree"], str(installed)], "venv": [str(venv_mydiag)]}
            collect = ["collect", "--profile", "quick", "--defaults-file", str(defaults),
                       "--output", str(out)]
            # The interpreter alone, started as each form starts it: the venv's Python reads no
            # .pth file of the base installation's site-packages, python3 -I / -s does.
            commands = {"(python itself, -c pass)": ["-c", "pass"], "--version": ["--version"],
                        "collect --profile quick": collect,
                        "collect --profile quick --samples 1": [*collect, "--samples", "1"]}
            # `./mydiag.pyz` starts the python3 on PATH: this one, not a pyenv shim (a shell script).
            shim = run / "bin"
            shim.mkdir()
            (shim / "python3").symlink_to(python)
            env = {**os.environ, "MYDIAG_HOME": str(run / "home"),
                   "PATH": f"{shim}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
            cold = timed([*forms["pyz"], "--version"], env, run)
            times: Dict[str, Dict[str, List[float]]] = {c: {f: [] for f in forms} for c in commands}
            for command, words in commands.items():
                for _ in range(max(3, args.n // 2) if command.startswith("collect") else args.n):
                    for form, argv in forms.items():
                        if words[0] == "-c":
                            argv = interpreters[form]
                        times[command][form].append(timed([*argv, *words], env, run))
                for bundle in list(out.iterdir()):
                    bundle.unlink()
        finally:
            instance.stop()
    version = subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"start-up, {version}, medians of {args.n} (--version) / {max(3, args.n // 2)} (collect) runs; "
          f"pyz {size / 1e6:.1f} MB")
    print(f"{'command':40} {'pyz':>8} {'./pyz':>8} {'tree':>8} {'venv':>8} {'pyz/venv':>9} {'./pyz/venv':>11}"
          f" {'tree/venv':>10}")
    worst = {}
    for command, by_form in times.items():
        median = {f: statistics.median(v) for f, v in by_form.items()}
        ratios = {f: median[f] / median["venv"] for f in ("pyz", "./pyz", "tree")}
        if not command.startswith("("):
            for form, ratio in ratios.items():
                worst[form] = max(worst.get(form, 0.0), ratio)
        print(f"{command:40} {median['pyz']:8.3f} {median['./pyz']:8.3f} {median['tree']:8.3f} "
              f"{median['venv']:8.3f} {ratios['pyz']:9.2f} {ratios['./pyz']:11.2f} {ratios['tree']:10.2f}")
    print(f"{'--version, pyz first run (cold cache)':40} {cold:8.3f}")
    for form, ratio in worst.items():
        verdict = "met" if ratio <= GOAL else "NOT met"
        print(f"goal for {form}: at most {GOAL}x the venv: {verdict} (worst {ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
