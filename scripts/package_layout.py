"""The files the .deb and the .rpm install, staged once the same way for both.

build_deb.py and build_rpm.py import this (they run as files from scripts/, so this
directory is on their sys.path); it is not a package, and nothing here is named
`packaging` (that would shadow the PyPI library of that name).

What a package installs, and why there:

    /usr/lib/mydiag/                     the agent's tree (the pyz unzipped: `__main__.py`
                                         at its root, every dependency inside), so nothing is
                                         extracted at run time and the host's python3 runs it;
                                         only the wheels for the package's machine are kept
    /usr/bin/mydiag                      `exec /usr/bin/python3 -s -S /usr/lib/mydiag "$@"`
                                         (-s: a user's ~/.local site-packages cannot shadow
                                         the agent's own copies of its dependencies)
    <unit dir>/mydiag-agent.service      packaging/mydiag-agent.service with ExecStart
                                         pointing at /usr/bin/mydiag; never enabled or started
                                         by the package
    /etc/mydiag/agent.toml               a configuration file (deb conffile, rpm
                                         %config(noreplace)): docs/agent.example.toml with
                                         every setting commented out, so an agent started with
                                         it does nothing until the administrator edits it
    /usr/share/man/man1/mydiag*.1.gz     the agent's man pages (gzip -n: no name, no time)
    /usr/share/bash-completion/completions/mydiag
    /usr/share/doc/mydiag/copyright

The support server's man pages and completion (`mydiag-server*`) are not the agent's and
stay out. Every file gets the same mtime (SOURCE_DATE_EPOCH), a normalized mode (0755
for directories and anything executable, 0644 otherwise; agent.toml 0600 because it may
come to hold the upload token) and root ownership, so the same inputs give the same
package.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bundle.version import FORMAT_VERSION, __version__  # noqa: E402

NAME = "mydiag"
SUMMARY = "Asynchronous MySQL support: safe diagnostics bundles, sealed to a ticket"
DESCRIPTION = """\
mydiag collects MySQL/MariaDB status, configuration and OS metrics without hurting
production, removes secrets, seals the result so that only the support side can read
it, and uploads it to a support ticket. `mydiag agent run` (the systemd unit
mydiag-agent.service, not enabled by this package) takes scheduled snapshots and
pt-stalk-style captures when a trigger fires, and keeps them in a bounded spool until
they are uploaded."""
LICENSE = "Apache-2.0"
MAINTAINER = "mydiag maintainers <packaging@mydiag.invalid>"
PYTHON_MINIMUM = "3.9"

LIB_DIR = "usr/lib/mydiag"
BIN = "usr/bin/mydiag"
CONFIG = "etc/mydiag/agent.toml"
MAN_DIR = "usr/share/man/man1"
COMPLETION = "usr/share/bash-completion/completions/mydiag"
COPYRIGHT = "usr/share/doc/mydiag/copyright"
UNIT_NAME = "mydiag-agent.service"
#: The pyz tree's index of targets and its folder of compiled wheels (scripts/build_pyz.py).
INDEX = "_lib/index.json"
WHEELS = "_lib/whl/"
#: Where each package format keeps systemd units shipped by packages.
UNIT_DIRS = {"deb": "lib/systemd/system", "rpm": "usr/lib/systemd/system"}
#: Debian's and RPM's names for the two architectures the agent's wheels cover.
ARCHES = {"deb": {"amd64": "x86_64", "arm64": "aarch64"}, "rpm": {"x86_64": "x86_64", "aarch64": "aarch64"}}

UNIT_SOURCE = ROOT / "packaging" / UNIT_NAME
EXAMPLE_CONFIG = ROOT / "docs" / "agent.example.toml"
INSTALLED_EXEC = "/usr/bin/mydiag"
WRAPPER = f"""\
#!/bin/sh
# mydiag {__version__} (bundle format {FORMAT_VERSION}), installed by the {NAME} package.
exec /usr/bin/python3 -s -S /{LIB_DIR} "$@"
"""
CONFIG_HEAD = """\
# /etc/mydiag/agent.toml: the mydiag agent's configuration (docs/agent.md).
#
# Installed by the mydiag package with every setting commented out: an agent started
# with this file as it is takes no snapshot and uploads nothing. Uncomment and edit what
# you need, check it with `mydiag agent status`, then enable the service yourself:
#   systemctl enable --now mydiag-agent
# Upgrades of the package never replace this file once you have changed it. If it comes to
# hold the upload token (server.token), it must stay readable by root alone (mode 0600).
#
"""


class BuildError(Exception):
    """One line for the person running the build."""


@dataclass
class Inputs:
    pyz: Path
    man: Path
    completion: Path
    tree: Optional[Path] = None


def input_options(parser: argparse.ArgumentParser, what: str) -> None:
    """The options build_deb.py and build_rpm.py share (the Makefile's `dist` passes them)."""
    parser.add_argument("--pyz", required=True, type=Path,
                        help="the single-file agent (scripts/build_pyz.py)")
    parser.add_argument("--tree", type=Path, help="the agent's unzipped tree instead of unzipping --pyz")
    parser.add_argument("--man", required=True, type=Path, help="the man pages (scripts/gen_manpages.py)")
    parser.add_argument("--completion", required=True, type=Path,
                        help="the bash completion (scripts/gen_completion.py)")
    parser.add_argument("--out", required=True, type=Path, help=f"where the {what} goes")
    parser.add_argument("--xz-level", type=int, default=6, choices=range(10), metavar="0-9",
                        help="xz compression level (default 6; the tests use 1 to build faster)")


def inputs_of(args: argparse.Namespace) -> Inputs:
    return Inputs(args.pyz, args.man, args.completion, args.tree)


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH, else the time of the last commit (the same tree builds the same)."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw:
        if not raw.isdigit():
            raise BuildError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not {raw!r}")
        return int(raw)
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                          capture_output=True, text=True)
    if done.returncode == 0 and done.stdout.strip().isdigit():
        return int(done.stdout.strip())
    return 315532800  # 1980-01-01, the earliest time a zip file can hold


def packaged_unit() -> str:
    """packaging/mydiag-agent.service, started from the package's /usr/bin/mydiag."""
    text = UNIT_SOURCE.read_text()
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("ExecStart=")]
    if len(starts) != 1 or " agent run " not in lines[starts[0]]:
        raise BuildError(f"{UNIT_SOURCE}: expected one `ExecStart=... agent run ...` line")
    command = lines[starts[0]][len("ExecStart="):].split(" ", 1)
    lines[starts[0]] = f"ExecStart={INSTALLED_EXEC} {command[1]}"
    return "".join(lines).replace("# Written by `mydiag agent install-service`",
                                  "# Installed by the mydiag package (not enabled by it)")


def packaged_config() -> str:
    """docs/agent.example.toml with every setting commented out, under a header."""
    out = [CONFIG_HEAD]
    for line in EXAMPLE_CONFIG.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(f"# {line}\n")
        else:
            out.append(f"{line}\n")
    return "".join(out)


def _machine_index(index: dict, where: Path, machine: str) -> Tuple[dict, Set[str]]:
    """(the index with only `machine`'s targets, the _lib/whl folders those targets use).

    _lib/index.json (scripts/build_pyz.py) names, per target (`cp311-x86_64`), the folders
    it puts on sys.path. The targets of other machines leave the index and their compiled
    wheels leave the tree, so a host of another machine is told by the bootstrap that this
    install does not support it (exit 24) instead of failing at an import."""
    targets = index.get("targets", {})
    kept = {key: value for key, value in targets.items() if key.endswith(f"-{machine}")}
    if not kept:
        raise BuildError(f"{where}: built for {', '.join(sorted(targets))}, nothing for {machine}")
    wanted = {entry.split("/", 2)[2] for target in kept.values() for group in ("compiled", "extract", "pure")
              for entry in target.get(group, []) if entry.startswith(WHEELS)}
    return {**index, "targets": kept}, wanted


def _write_index(tree: Path, index: dict) -> None:
    (tree / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")


def _extract(archive: zipfile.ZipFile, into: Path, source: str, skip: Set[str] = frozenset()) -> None:
    """The members of `archive` but `skip` under `into`, refusing one that would land outside it."""
    for info in archive.infolist():
        if info.filename in skip:
            continue
        target = into / info.filename
        if not target.resolve().is_relative_to(into.resolve()):
            raise BuildError(f"{source}: member {info.filename!r} points outside the tree")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if (info.external_attr >> 16) & 0o111:
            target.chmod(0o755)


def _unzip(pyz: Path, into: Path, machine: str) -> None:
    """The pyz as the directory `python3 DIR` runs: its members, each compiled wheel's
    stored `_lib/whl/<wheel>.zip` unpacked to `_lib/whl/<wheel>/` (the tree's form; see
    scripts/build_pyz.py), and only the wheels `machine` uses."""
    try:
        archive = zipfile.ZipFile(pyz)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"{pyz}: not a zip application ({exc})") from None
    with archive:
        names = archive.namelist()
        if "__main__.py" not in names or INDEX not in names:
            raise BuildError(f"{pyz}: has no __main__.py and {INDEX} (build it with scripts/build_pyz.py)")
        index, wanted = _machine_index(json.loads(archive.read(INDEX)), pyz, machine)
        wheels = [n for n in names if re.fullmatch(re.escape(WHEELS) + r"[^/]+\.zip", n)]
        missing = wanted - {n[len(WHEELS):-len(".zip")] for n in wheels}
        if missing:
            raise BuildError(f"{pyz}: {INDEX} names wheels it does not hold: {', '.join(sorted(missing))}")
        _extract(archive, into, str(pyz), set(wheels))
        for name in wheels:
            folder = name[len(WHEELS):-len(".zip")]
            if folder in wanted:
                with zipfile.ZipFile(io.BytesIO(archive.read(name))) as inner:
                    _extract(inner, into / WHEELS / folder, f"{pyz}:{name}")
    _write_index(into, index)


def _copy_tree(tree: Path, into: Path, machine: str) -> None:
    if not (tree / "__main__.py").is_file() or not (tree / INDEX).is_file():
        raise BuildError(f"{tree}: has no __main__.py and {INDEX} (build it with scripts/build_pyz.py)")
    index, wanted = _machine_index(json.loads((tree / INDEX).read_text()), tree, machine)
    wheels = tree / WHEELS

    def ignore(folder: str, names: List[str]) -> Set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        if Path(folder) == wheels:
            skipped |= {n for n in names if n not in wanted}
        return skipped

    shutil.copytree(tree, into, symlinks=False, ignore=ignore)
    _write_index(into, index)


def _tree(inputs: Inputs, into: Path, machine: str) -> None:
    """The agent's tree for `machine`: from --tree, else unzipped from the pyz."""
    if inputs.tree is not None:
        _copy_tree(inputs.tree, into, machine)
        return
    if not inputs.pyz.is_file():
        raise BuildError(f"{inputs.pyz}: no such file (build it with `make dist` or scripts/build_pyz.py)")
    into.mkdir(parents=True)
    _unzip(inputs.pyz, into, machine)


def _man_pages(folder: Path) -> List[Path]:
    pages = sorted(p for p in folder.glob("mydiag*.1")
                   if p.name == "mydiag.1" or not p.name.startswith("mydiag-server"))
    if not any(p.name == "mydiag.1" for p in pages):
        raise BuildError(f"{folder}: no mydiag.1 (build the man pages with scripts/gen_manpages.py)")
    return pages


def gzip_n(data: bytes) -> bytes:
    """gzip -9n: no file name and no time stamp in the header, so the bytes depend on `data` only."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def stage(inputs: Inputs, root: Path, kind: str, machine: str) -> Dict[str, str]:
    """Lay the installed files out under `root` for `kind` ("deb" or "rpm") on `machine`
    (x86_64, aarch64).

    Returns the installed paths that are not under /usr/lib/mydiag, each with its role
    (the spec's %files and the tests read it)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    _tree(inputs, root / LIB_DIR, machine)
    placed: Dict[str, str] = {}

    def put(rel: str, data: bytes, mode: int, role: str) -> None:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
        placed[rel] = role

    put(BIN, WRAPPER.encode(), 0o755, "program")
    put(f"{UNIT_DIRS[kind]}/{UNIT_NAME}", packaged_unit().encode(), 0o644, "unit")
    put(CONFIG, packaged_config().encode(), 0o600, "config")
    for page in _man_pages(inputs.man):
        put(f"{MAN_DIR}/{page.name}.gz", gzip_n(page.read_bytes()), 0o644, "man")
    script = inputs.completion / "mydiag"
    if not script.is_file():
        raise BuildError(f"{script}: no such file (build it with scripts/gen_completion.py)")
    put(COMPLETION, script.read_bytes(), 0o644, "completion")
    put(COPYRIGHT, _copyright().encode(), 0o644, "doc")
    return placed


def _copyright() -> str:
    return (f"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            f"Upstream-Name: {NAME}\n\n"
            f"Files: *\nLicense: {LICENSE}\n\n"
            f"Files: usr/lib/mydiag/*\n"
            f"Comment: the agent and the Python libraries it needs, each with its own licence\n"
            f" in its *.dist-info folder under /usr/lib/mydiag.\n\n"
            f"License: {LICENSE}\n"
            f" On Debian systems, the full text of the Apache License 2.0 is in\n"
            f" /usr/share/common-licenses/Apache-2.0.\n")


def normalize(root: Path, epoch: int) -> None:
    """The same modes and times whatever the umask and clock of the build."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_symlink():
            raise BuildError(f"{path}: symbolic links are not expected in the package tree")
        mode = path.stat().st_mode
        if path.is_dir():
            path.chmod(0o755)
        elif path.relative_to(root).as_posix() == CONFIG:
            path.chmod(0o600)
        else:
            path.chmod(0o755 if mode & 0o111 else 0o644)
        os.utime(path, (epoch, epoch))
    root.chmod(0o755)
    os.utime(root, (epoch, epoch))


def installed_kib(root: Path) -> int:
    """Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, one per directory."""
    total = 0
    for path in root.rglob("*"):
        total += -(-path.stat().st_size // 1024) if path.is_file() else 1
    return total
