"""Builds the single-file agent `dist/mydiag.pyz` and leaves its tree in `build/pyz/`.

    python scripts/build_pyz.py --out dist/mydiag.pyz [--tree build/pyz]
        [--arch x86_64,aarch64] [--python 3.9,3.10,3.11,3.12,3.13]
    python scripts/build_pyz.py --lock      # re-resolve packaging/pyz-lock.txt (network)

Why a standard-library zipapp with a bootstrap of our own (packaging/pyz_main.py), not shiv or
pex: both extract *everything* on first start into a cache of their own under $HOME (~/.shiv,
~/.cache/pex), which a locked-down host's policy and our "no write outside the state directory"
rule forbid, and neither has an unzipped form that runs without extracting, which the .deb and
.rpm ship under /usr/lib/mydiag. Here pure Python imports straight from the zip; only the
compiled distributions for the running Python and machine (and `report`, whose templates Jinja2
reads from the file system) are extracted, once, into <state dir>/pyz/<content hash>/.

The tree (the zip holds the same files, `__main__.py` at its root):

    __main__.py                 a small stub (packaging/pyz_stub.py) that runs the bootstrap,
                                from a zip with its bytecode cached in the state directory
    _mydiag_boot.py             the bootstrap (packaging/pyz_main.py): picks the set for
                                sys.version_info and platform.machine(), puts it on
                                sys.path, runs agent.cli
    agent/ bundle/ collectors/ privacy/ recording/ report/     the project's own code
    _lib/index.json             per target (`cp311-x86_64`...): its path entries, what to
                                extract from a zip, and the hash naming the extracted folder
    _lib/py/                    pure-Python distributions every target uses at one version
    _lib/py-cp39-cp310/ ...     pure-Python distributions at a version only these Pythons use
    _lib/whl/<wheel name>/      each compiled wheel unpacked (an abi3 wheel once for all the
                                Pythons it serves); in the zip, one stored member
                                `_lib/whl/<wheel name>.zip` holding that folder, since every
                                member of the zip costs each start (zipimport reads the whole
                                central directory in Python: 18 ms for 2,900 members)

Installed unzipped (/usr/lib/mydiag), the bootstrap puts the tree's own folders on sys.path
and extracts nothing; run `python3 -m compileall -q /usr/lib/mydiag` at install time for
bytecode (the bootstrap never writes __pycache__ into the tree).

Inputs are the work tree's package files and the wheels packaging/pyz-lock.txt names (file
name and sha256 per target), downloaded once with `pip download` into
~/.cache/mydiag-dist/wheels (MYDIAG_DIST_CACHE moves ~/.cache/mydiag-dist) and checked against
the lock. The zip is reproducible: entries sorted, one timestamp (SOURCE_DATE_EPOCH, else the
last commit's time), fixed modes, no bytecode, deflate level 6 (level 9 is 1% smaller and 4x slower).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "packaging" / "pyz-lock.txt"
BOOTSTRAP = ROOT / "packaging" / "pyz_main.py"
#: The zip's __main__.py, which Python compiles on every start: kept small (pyz_stub.py).
STUB = ROOT / "packaging" / "pyz_stub.py"
#: The project's own packages the agent needs (never `server`).
PACKAGES = ("agent", "bundle", "collectors", "privacy", "recording", "report")
#: Package data beside the code (pyproject.toml's package-data for these packages).
DATA = {"report": ("templates/*.html", "static/*.css")}
#: Packages that read files next to their code through __file__: extracted from a zip with the
#: compiled set, since a path inside a zip is no folder.
EXTRACTED_PACKAGES = ("report",)
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
ARCHES = ("x86_64", "aarch64")
#: The glibc baseline of the wheels (manylinux2014): RHEL/CentOS 7 and everything newer.
PLATFORMS = ("manylinux2014_{arch}", "manylinux_2_17_{arch}", "manylinux_2_12_{arch}",
             "manylinux2010_{arch}")
#: Files of a wheel left out, by distribution: zstandard's CFFI backend is PyPy's (CPython
#: imports backend_c unless PYTHON_ZSTANDARD_IMPORT_POLICY says otherwise), and it is half of
#: the whole file (12 MB of machine code per Python and machine).
PRUNE = {"zstandard": ("zstandard/_cffi.*", "zstandard/backend_cffi.py")}
#: The layout version the bootstrap reads in _lib/index.json.
INDEX_FORMAT = 1


class BuildError(Exception):
    """A one-line reason the build cannot go on."""


@dataclass(frozen=True)
class Pin:
    tag: str  # cp311
    arch: str
    name: str
    version: str
    filename: str
    sha256: str

    @property
    def pure(self) -> bool:
        return self.filename.endswith("-none-any.whl")


def cache_dir() -> Path:
    base = Path(os.environ.get("MYDIAG_DIST_CACHE", "~/.cache/mydiag-dist")).expanduser()
    return base / "wheels"


def cp_tag(python: str) -> str:
    return "cp" + python.replace(".", "")


# -- the lock ----------------------------------------------------------------------------------
def read_lock(path: Path = LOCK) -> Tuple[Dict[str, str], List[Pin]]:
    """({cp tag: the full Python version resolved for}, every pinned wheel)."""
    versions: Dict[str, str] = {}
    pins: List[Pin] = []
    for line in path.read_text().splitlines():
        found = re.match(r"#\s*python\s+(cp\d+)\s+(\S+)$", line)
        if found:
            versions[found.group(1)] = found.group(2)
        if not line.strip() or line.startswith("#"):
            continue
        tag, arch, name, version, filename, sha = line.split()
        pins.append(Pin(tag, arch, name, version, filename, sha))
    return versions, pins


def pyenv_python(python: str) -> Path:
    root = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
    for candidate in sorted(root.glob(f"versions/{python}.*/bin/python{python}")):
        return candidate
    raise BuildError(f"--lock needs Python {python} (pyenv: {root}/versions/{python}.*)")


def platform_args(arch: str) -> List[str]:
    args: List[str] = []
    for platform in PLATFORMS:
        args += ["--platform", platform.format(arch=arch)]
    return args


def resolve(python: str, arch: str, requirements: Sequence[str]) -> Tuple[str, List[Pin]]:
    """What pip resolves for that Python (run by that Python, so markers hold) on `arch`."""
    interpreter = pyenv_python(python)
    full = subprocess.run([str(interpreter), "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tag = cp_tag(python)
    with tempfile.TemporaryDirectory(prefix="mydiag-lock-") as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run(
            [str(interpreter), "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
             "--only-binary=:all:", *platform_args(arch), "--python-version", full, "--implementation", "cp",
             "--abi", tag, "--abi", "abi3", "--abi", "none", "--target", str(Path(tmp) / "t"),
             "--report", str(report), *requirements], capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"pip could not resolve for Python {python} {arch}: "
                             f"{done.stderr.strip()[-800:]}")
        installs = json.loads(report.read_text())["install"]
    pins = []
    for item in installs:
        url = item["download_info"]["url"]
        sha = item["download_info"]["archive_info"]["hashes"]["sha256"]
        meta = item["metadata"]
        pins.append(Pin(tag, arch, canonical(meta["name"]), meta["version"], url.rsplit("/", 1)[-1], sha))
    return full, pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements() -> List[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    if not block:
        raise BuildError("pyproject.toml: no [project] dependencies")
    return re.findall(r'^\s*"([^"]+)",', block.group(1), re.M)


def write_lock() -> None:
    requirements = project_requirements()
    lines = ["# The agent's runtime wheels in mydiag.pyz, per Python and machine (scripts/build_pyz.py).",
             "# Regenerate with `python scripts/build_pyz.py --lock` (needs the pyenv Pythons and PyPI);",
             "# builds download exactly these files and check their sha256.",
             "# columns: python-tag machine distribution version wheel-file sha256"]
    rows: List[Pin] = []
    for python in PYTHONS:
        for arch in ARCHES:
            full, pins = resolve(python, arch, requirements)
            if arch == ARCHES[0]:
                lines.append(f"# python {cp_tag(python)} {full}")
            rows += pins
            print(f"resolved Python {full} {arch}: {len(pins)} wheels")
    for pin in sorted(rows, key=lambda p: (int(p.tag[2:]), p.arch, p.name)):
        lines.append(f"{pin.tag} {pin.arch} {pin.name} {pin.version} {pin.filename} {pin.sha256}")
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"wrote {LOCK.relative_to(ROOT)}: {len(rows)} rows")


# -- the wheels --------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(pins: Sequence[Pin], versions: Dict[str, str]) -> Dict[str, Path]:
    """Every pinned wheel in the cache, checked against the lock's sha256: {file name: path}."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    missing: Dict[Tuple[str, str], List[Pin]] = defaultdict(list)
    for pin in pins:
        if not (cache / pin.filename).is_file():
            missing[(pin.tag, pin.arch)].append(pin)
    for (tag, arch), wanted in sorted(missing.items()):
        full = versions.get(tag)
        if not full:
            raise BuildError(f"packaging/pyz-lock.txt names no Python version for {tag}")
        names = sorted({f"{p.name}=={p.version}" for p in wanted if not (cache / p.filename).is_file()})
        if not names:
            continue
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             *platform_args(arch), "--python-version", full, "--implementation", "cp", "--abi", tag,
             "--abi", "abi3", "--abi", "none", "--dest", str(cache), *names],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"pip download for {tag} {arch} failed: {done.stderr.strip()[-800:]}")
    found: Dict[str, Path] = {}
    for pin in pins:
        path = cache / pin.filename
        if not path.is_file():
            raise BuildError(f"{pin.filename} (locked for {pin.tag} {pin.arch}) was not downloaded: "
                             "pip chose another file; run `--lock` again")
        if pin.filename not in found:
            actual = sha256_file(path)
            if actual != pin.sha256:
                path.unlink()
                raise BuildError(f"{pin.filename}: sha256 {actual} is not the locked {pin.sha256} "
                                 "(removed from the cache; run again)")
            found[pin.filename] = path
    return found


def unpack_wheel(wheel: Path, dest: Path, prune: Sequence[str] = ()) -> None:
    """A wheel's importable files under `dest` (its .data purelib/platlib folded in; no
    bytecode, no RECORD: its hashes would describe the wheel, not this tree)."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            if parts[0].endswith(".dist-info") and parts[-1] in ("RECORD", "INSTALLER", "REQUESTED"):
                continue
            if "__pycache__" in parts or name.endswith((".pyc", ".pyo")) or ".." in parts:
                continue
            if any(fnmatch.fnmatchcase("/".join(parts), pattern) for pattern in prune):
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))


# -- the tree ----------------------------------------------------------------------------------
def project_files() -> Iterator[Tuple[Path, str]]:
    for package in PACKAGES:
        base = ROOT / package
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path, path.relative_to(ROOT).as_posix()
        for pattern in DATA.get(package, ()):
            for path in sorted(base.glob(pattern)):
                yield path, path.relative_to(ROOT).as_posix()


def tree_files(tree: Path) -> List[str]:
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())


def folder_hash(tree: Path, folders: Sequence[str]) -> str:
    """sha256 over the names and contents of every file under `folders`: the extracted copy's name."""
    digest = hashlib.sha256()
    for folder in folders:
        for rel in tree_files(tree / folder):
            digest.update(f"{folder}/{rel}\0".encode())
            digest.update(hashlib.sha256((tree / folder / rel).read_bytes()).digest())
    return digest.hexdigest()


def stage(tree: Path, pins: Sequence[Pin], wheels: Dict[str, Path], version: str) -> Dict[str, dict]:
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    shutil.copyfile(STUB, tree / "__main__.py")
    shutil.copyfile(BOOTSTRAP, tree / "_mydiag_boot.py")
    for source, rel in project_files():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tree / rel)

    targets = sorted({(p.tag, p.arch) for p in pins}, key=lambda t: (int(t[0][2:]), t[1]))
    pure_users: Dict[str, set] = defaultdict(set)
    for pin in pins:
        if pin.pure:
            pure_users[pin.filename].add((pin.tag, pin.arch))
    shared = {name for name, users in pure_users.items() if users == set(targets)}
    unpacked = set()
    index: Dict[str, dict] = {}
    for tag, arch in targets:
        own = sorted({p for p in pins if (p.tag, p.arch) == (tag, arch)}, key=lambda p: p.name)
        pure_dirs: List[str] = []
        compiled_dirs: List[str] = []
        for pin in own:
            if pin.pure and pin.filename in shared:
                folder = "_lib/py"
            elif pin.pure:
                # One folder per set of Pythons using that version (3.11 to 3.13 share theirs).
                folder = "_lib/py-" + "-".join(sorted({t for t, _ in pure_users[pin.filename]},
                                                      key=lambda t: int(t[2:])))
            else:
                folder = f"_lib/whl/{pin.filename[:-len('.whl')]}"
                compiled_dirs.append(folder)
            if folder != "_lib/py" and folder not in compiled_dirs and folder not in pure_dirs:
                pure_dirs.append(folder)
            if (folder, pin.filename) not in unpacked:
                unpack_wheel(wheels[pin.filename], tree / folder, PRUNE.get(pin.name, ()))
                unpacked.add((folder, pin.filename))
        pure_dirs.append("_lib/py")
        extract = [*compiled_dirs, *EXTRACTED_PACKAGES]
        index[f"{tag}-{arch}"] = {
            "pure": pure_dirs,
            "compiled": compiled_dirs,
            # From a zip: these folders' contents go into one folder of the state directory (the
            # compiled ones flattened, the packages under their own names).
            "extract": extract,
            "hash": folder_hash(tree, extract)[:32],
        }
    document = {"format": INDEX_FORMAT, "version": version, "targets": index}
    (tree / "_lib").mkdir(exist_ok=True)
    (tree / "_lib" / "index.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    for path in tree.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return index


# -- the zip -----------------------------------------------------------------------------------
def build_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True,
                          text=True)
    if done.returncode == 0 and done.stdout.strip():
        return int(done.stdout.strip())
    raise BuildError("set SOURCE_DATE_EPOCH (no git history to take the build time from)")


def _write_members(archive: zipfile.ZipFile, members: Dict[str, bytes], stamp: tuple) -> None:
    """Sorted entries, each folder as its own entry, one time stamp, fixed modes; inner zips stored
    (they are deflated inside: deflate would gain nothing)."""
    folders = {"/".join(n.split("/")[:i]) + "/" for n in members for i in range(1, n.count("/") + 1)}
    for name in sorted([*folders, *members]):
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.create_system = 3
        if name.endswith("/"):
            info.external_attr = (0o40755 << 16) | 0x10
            archive.writestr(info, b"")
            continue
        info.external_attr = 0o100644 << 16
        stored = name.endswith(".zip")
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        archive.writestr(info, members[name], compresslevel=None if stored else 6)


def write_zip(tree: Path, out: Path, epoch: int) -> None:
    stamp = time.gmtime(max(epoch, 315532800))[:6]  # zip times start in 1980
    members: Dict[str, bytes] = {}
    wheels: Dict[str, Dict[str, bytes]] = defaultdict(dict)
    for name in tree_files(tree):
        parts = name.split("/")
        if parts[:2] == ["_lib", "whl"]:
            wheels["/".join(parts[:3])]["/".join(parts[3:])] = (tree / name).read_bytes()
        else:
            members[name] = (tree / name).read_bytes()
    for folder, files in wheels.items():
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as archive:
            _write_members(archive, files, stamp)
        members[folder + ".zip"] = inner.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.part")
    with open(partial, "wb") as raw:
        raw.write(LAUNCHER)
        with zipfile.ZipFile(raw, "w") as archive:
            _write_members(archive, members, stamp)
    partial.chmod(0o755)
    partial.replace(out)


#: The bytes before the zip (Python skips whatever precedes a zip's own records). Run as a
#: program (`./mydiag.pyz`), sh starts the python3 on PATH isolated and without the site
#: module, so no .pth file of the host's site-packages runs before the agent (on a host with
#: heavy ones that is most of the start-up); `python3 mydiag.pyz` reads it as a zip.
LAUNCHER = b"""#!/bin/sh
# mydiag.pyz: the mydiag agent in one file (docs/install.md). Run ./mydiag.pyz or python3 mydiag.pyz.
exec python3 -I -S "$0" "$@"
"""


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "mydiag.pyz")
    parser.add_argument("--tree", type=Path, default=ROOT / "build" / "pyz",
                        help="where the unzipped tree is staged and left (default build/pyz)")
    parser.add_argument("--arch", default=",".join(ARCHES), help="machines to include (x86_64,aarch64)")
    parser.add_argument("--python", default=",".join(PYTHONS), help="Python versions (3.9,...,3.13)")
    parser.add_argument("--lock", action="store_true", help="re-resolve packaging/pyz-lock.txt and stop")
    args = parser.parse_args(list(argv) or None)
    try:
        if args.lock:
            write_lock()
            return 0
        sys.path.insert(0, str(ROOT))
        from bundle.version import __version__

        arches = [a.strip() for a in args.arch.split(",") if a.strip()]
        pythons = [p.strip() for p in args.python.split(",") if p.strip()]
        for arch in arches:
            if arch not in ARCHES:
                raise BuildError(f"--arch {arch}: one of {', '.join(ARCHES)}")
        for python in pythons:
            if python not in PYTHONS:
                raise BuildError(f"--python {python}: one of {', '.join(PYTHONS)}")
        versions, pins = read_lock()
        chosen = [p for p in pins if p.arch in arches and p.tag in {cp_tag(v) for v in pythons}]
        for python in pythons:
            for arch in arches:
                if not any(p.tag == cp_tag(python) and p.arch == arch for p in chosen):
                    raise BuildError(f"packaging/pyz-lock.txt has nothing for Python {python} {arch}")
        wheels = fetch(chosen, versions)
        index = stage(args.tree, chosen, wheels, __version__)
        write_zip(args.tree, args.out, build_epoch())
    except BuildError as exc:
        print(f"build_pyz: {exc}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size
    print(f"{args.out}: {size / 1e6:.1f} MB ({size} bytes), {len(index)} targets, sha256 "
          f"{sha256_file(args.out)}; tree in {args.tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
