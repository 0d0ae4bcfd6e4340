"""The `make dist` pieces, each built once per test session, and a Debian 12 root to install into.

`dist_pyz` runs scripts/build_pyz.py, `dist_man` scripts/gen_manpages.py,
`dist_completion` scripts/gen_completion.py, and `dist_deb` / `dist_rpm` the package
builds over those (xz level 1: the same files, packed faster); all into the session's own
temporary folders, never into the work tree's dist/ or build/.

`debian_root(dest)` lays a fresh Debian 12 (bookworm, minbase, python3) at `dest`, from a
tarball of a debootstrap made once and kept in ~/.cache/mydiag-dist (MYDIAG_DIST_CACHE
overrides); with no cache it runs debootstrap from the Debian mirror this machine's apt
uses (about 90 s) and keeps the result. `Chroot` runs commands in such a root with /proc
mounted in a mount namespace of the command's own, so no mount outlives the command,
whatever happens to the test.

Every tool here is installed by scripts/system-deps.sh, so a missing one fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MYDIAG_DIST_CACHE", "~/.cache/mydiag-dist")).expanduser()
ROOT_TARBALL = "debian12-minbase-python3.tar.zst"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Every package build in the tests is stamped with this time, so two builds can be compared.
EPOCH = "1700000000"


def need(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail(f"{tool} is not installed: run `bash scripts/system-deps.sh`", pytrace=False)
    return found


def run_script(name: str, *args: str, timeout: float = 900,
               env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """scripts/NAME as `make dist` runs it; a failure fails the test with the script's message."""
    script = ROOT / "scripts" / name
    if not script.is_file():
        pytest.fail(f"scripts/{name} is missing (issue 17: `make dist` needs it)", pytrace=False)
    done = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **(env or {})})
    if done.returncode != 0:
        pytest.fail(f"scripts/{name} {' '.join(args)} failed ({done.returncode}):\n"
                    f"{done.stderr[-3000:]}{done.stdout[-1000:]}", pytrace=False)
    return done


@pytest.fixture(scope="session")
def dist_pyz(tmp_path_factory) -> Tuple[Path, Path]:
    """(the pyz, its unzipped tree): scripts/build_pyz.py run once for the whole test run.

    Under xdist the workers share one build (the first builds it under a lock in the run's
    own temp folder, keyed by the run's id; the others wait and read it): a build takes
    half a minute of both cores. Tests only read it (test_pyz's own rebuild checks the
    byte-for-byte sameness)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    if not run:
        return _build_pyz(tmp_path_factory.mktemp("pyz"))
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent  # the run's, above each worker's own
    folder = shared / f"pyz-{run}"
    with open(shared / f"pyz-{run}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            _build_pyz(folder)
            (folder / "built").touch()
    return folder / "mydiag.pyz", folder / "tree"


def _build_pyz(folder: Path) -> Tuple[Path, Path]:
    pyz = folder / "mydiag.pyz"
    tree = folder / "tree"
    run_script("build_pyz.py", "--out", str(pyz), "--tree", str(tree))
    if not pyz.is_file() or not (tree / "__main__.py").is_file():
        pytest.fail(f"scripts/build_pyz.py made no {pyz} with its tree {tree}", pytrace=False)
    return pyz, tree


@pytest.fixture(scope="session")
def dist_man(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("man")
    run_script("gen_manpages.py", "--out", str(folder))
    return folder


@pytest.fixture(scope="session")
def dist_completion(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("completion")
    run_script("gen_completion.py", "--out", str(folder))
    return folder


def package_args(dist_pyz, dist_man: Path, dist_completion: Path, out: Path, tree: bool = True) -> List[str]:
    """The build scripts' options; tree=False makes them unzip the pyz instead of copying its tree."""
    pyz, folder = dist_pyz
    return ["--pyz", str(pyz), *(["--tree", str(folder)] if tree else []), "--man", str(dist_man),
            "--completion", str(dist_completion), "--out", str(out), "--xz-level", "1"]


@pytest.fixture(scope="session")
def dist_deb(tmp_path_factory, dist_pyz, dist_man, dist_completion) -> Path:
    out = tmp_path_factory.mktemp("deb")
    need("dpkg-deb")
    run_script("build_deb.py", *package_args(dist_pyz, dist_man, dist_completion, out), "--arch", "amd64")
    found = sorted(out.glob("mydiag_*_amd64.deb"))
    assert len(found) == 1, f"build_deb.py made {found}"
    return found[0]


@pytest.fixture(scope="session")
def dist_rpm(tmp_path_factory, dist_pyz, dist_man, dist_completion) -> Path:
    out = tmp_path_factory.mktemp("rpm")
    need("rpmbuild")
    run_script("build_rpm.py", *package_args(dist_pyz, dist_man, dist_completion, out), "--arch", "x86_64")
    found = sorted(out.glob("mydiag-*-1.x86_64.rpm"))
    assert len(found) == 1, f"build_rpm.py made {found}"
    return found[0]


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (the only one reachable), else Debian's own."""
    for source in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for block in source.read_text(errors="replace").split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if not (uris and suites and "bookworm" in suites.group(1).split()):
                continue
            if uris.group(1).rstrip("/").endswith("/debian"):
                return uris.group(1)
    listed = Path("/etc/apt/sources.list")
    if listed.is_file():
        found = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+bookworm\s", listed.read_text(), re.M)
        if found:
            return found.group(1)
    return DEFAULT_MIRROR


def _make_tarball(tarball: Path) -> None:
    need("debootstrap")
    with tempfile.TemporaryDirectory(prefix="mydiag-debootstrap-") as tmp:
        root = Path(tmp) / "root"
        done = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3", "bookworm",
                               str(root), apt_mirror()], capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-2000:] if log.is_file() else done.stderr[-2000:]
            pytest.fail(f"debootstrap of Debian 12 failed ({done.returncode}): {detail}", pytrace=False)
        # The downloaded .debs are not part of the system and double the tarball.
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        tarball.parent.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.part")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--zstd", "-cf", str(partial), "."],
                       check=True, timeout=600)
        partial.replace(tarball)


def debian_root(dest: Path) -> Path:
    """A fresh Debian 12 root at `dest` (the cached debootstrap, made first if need be)."""
    need("zstd")
    tarball = CACHE / ROOT_TARBALL
    if not tarball.is_file():
        _make_tarball(tarball)
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "--zstd", "-xf", str(tarball)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not (dest / "usr/bin/python3").exists():
        # A damaged cache (an interrupted copy, a full disk) is made again, once.
        tarball.unlink(missing_ok=True)
        shutil.rmtree(dest)
        _make_tarball(tarball)
        return debian_root(dest)
    return dest


@dataclass
class Chroot:
    """Commands run in `root` under chroot, in a mount namespace where /proc is mounted."""

    root: Path

    def run(self, *argv: str, env: Optional[Dict[str, str]] = None, timeout: float = 300,
            check: bool = True, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
        """`argv` inside the root."""
        return self._namespaced('exec chroot "$root" "$@"', argv, env, timeout, check, stdin)

    def host(self, *argv: str, env: Optional[Dict[str, str]] = None, timeout: float = 300,
             check: bool = True) -> subprocess.CompletedProcess:
        """This machine's `argv` (rpm --root ROOT …), with the root's /proc mounted meanwhile."""
        return self._namespaced('exec "$@"', argv, env, timeout, check, None)

    def _namespaced(self, then: str, argv: Sequence[str], env: Optional[Dict[str, str]], timeout: float,
                    check: bool, stdin: Optional[str]) -> subprocess.CompletedProcess:
        need("unshare")
        environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                       "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", **(env or {})}
        inner = f'root="$1" && shift && mount -t proc proc "$root/proc" && {then}'
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "sh",
                               str(self.root), *argv], capture_output=True, text=True, timeout=timeout,
                              env=environment, input=stdin)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} (in the Debian root) exited {done.returncode}:\n"
                                 f"{done.stderr[-3000:]}{done.stdout[-2000:]}")
        return done

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def install(self, deb: Path, *options: str) -> subprocess.CompletedProcess:
        """dpkg -i of a .deb from outside the root (copied into /tmp there)."""
        shutil.copyfile(deb, self.path(f"/tmp/{deb.name}"))
        return self.run("dpkg", *options, "-i", f"/tmp/{deb.name}")

    def dpkg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("dpkg", *args, check=check)


def listing(paths: Sequence[Path], root: Path) -> List[str]:
    return sorted("/" + p.relative_to(root).as_posix() for p in paths)
