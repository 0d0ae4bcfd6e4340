"""Build dist/mydiag_<version>_<arch>.deb: the agent under /usr/lib/mydiag (package_layout.py).

    python scripts/build_deb.py --pyz dist/mydiag.pyz --man build/man \\
        --completion build/completion --out dist [--arch amd64|arm64]

No debhelper: the control file, conffiles and maintainer scripts are packaging/deb/, and
`dpkg-deb --root-owner-group --build` packs the staged tree. One package per
architecture: the agent's tree holds compiled wheels (cryptography, zstandard, psutil, …)
for x86_64 and aarch64 only, so `Architecture: all` would install, and then fail, on
armhf, i386, ppc64el or s390x; and each package leaves out the other machine's wheels
(half the tree). The default is this machine's architecture.

Reproducible: every file's mtime is SOURCE_DATE_EPOCH (else the last commit's time),
modes are normalized, owners are root (--root-owner-group), dpkg-deb sorts the members
and stamps the ar archive with SOURCE_DATE_EPOCH, and xz runs on one thread; the same
inputs give the same .deb byte for byte.

Exit codes: 0 built, 1 the build failed (a message says why), 2 usage.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from package_layout import (
    ARCHES,
    DESCRIPTION,
    MAINTAINER,
    NAME,
    PYTHON_MINIMUM,
    ROOT,
    SUMMARY,
    BuildError,
    Inputs,
    __version__,
    input_options,
    inputs_of,
    installed_kib,
    normalize,
    source_date_epoch,
    stage,
)

TEMPLATES = ROOT / "packaging" / "deb"
SCRIPTS = ("postinst", "prerm", "postrm")


def host_arch() -> str:
    done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "amd64"


def control(version: str, arch: str, installed: int) -> str:
    body = "\n".join(f" {line}" if line.strip() else " ." for line in DESCRIPTION.splitlines())
    values = {"NAME": NAME, "VERSION": version, "ARCH": arch, "MAINTAINER": MAINTAINER,
              "INSTALLED_SIZE": str(installed), "PYTHON_MINIMUM": PYTHON_MINIMUM,
              "DESCRIPTION": f"{SUMMARY}\n{body}"}
    text = (TEMPLATES / "control").read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    if re.search(r"@[A-Z_]+@", text):
        raise BuildError(f"{TEMPLATES / 'control'}: a placeholder is left over")
    return text


def build(inputs: Inputs, out: Path, arch: str, version: str, xz_level: int = 6) -> Path:
    if arch not in ARCHES["deb"]:
        raise BuildError(f"--arch {arch}: the agent's wheels cover {', '.join(ARCHES['deb'])} only")
    epoch = source_date_epoch()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{NAME}_{version}_{arch}.deb"
    with tempfile.TemporaryDirectory(prefix="mydiag-deb-") as tmp:
        root = Path(tmp) / "root"
        stage(inputs, root, "deb", ARCHES["deb"][arch])
        meta = root / "DEBIAN"
        meta.mkdir()
        (meta / "control").write_text(control(version, arch, installed_kib(root)))
        shutil.copyfile(TEMPLATES / "conffiles", meta / "conffiles")
        for name in SCRIPTS:
            shutil.copyfile(TEMPLATES / name, meta / name)
            (meta / name).chmod(0o755)
        normalize(root, epoch)
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        partial = target.with_name(target.name + ".part")
        done = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", f"-z{xz_level}", "--threads-max=1",
                               "--build", str(root), str(partial)], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise BuildError(f"dpkg-deb failed: {done.stderr.strip() or done.stdout.strip()}")
        partial.replace(target)
    return target


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_deb.py", description=__doc__.split("\n")[0])
    input_options(parser, ".deb")
    parser.add_argument("--arch", default=None, choices=sorted(ARCHES["deb"]),
                        help="the Debian architecture (default: this machine's)")
    parser.add_argument("--version", default=f"{__version__}-1",
                        help=f"the package version (default {__version__}-1)")
    args = parser.parse_args(argv)
    try:
        target = build(inputs_of(args), args.out,
                       args.arch or host_arch(), args.version, args.xz_level)
    except BuildError as exc:
        print(f"build_deb: {exc}", file=sys.stderr)
        return 1
    print(f"{target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
