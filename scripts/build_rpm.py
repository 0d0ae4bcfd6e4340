"""Build dist/mydiag-<version>-1.<arch>.rpm: the same agent as the .deb (package_layout.py).

    python scripts/build_rpm.py --pyz dist/mydiag.pyz --man build/man \\
        --completion build/completion --out dist [--arch x86_64|aarch64]

rpmbuild (Debian's `rpm` package is enough) runs on a spec generated from
packaging/rpm/mydiag.spec.in into a temporary top directory, over a tree staged by
package_layout.py: nothing is compiled, stripped or byte-compiled by rpmbuild. Units go
to /usr/lib/systemd/system; /etc/mydiag/agent.toml is %config(noreplace). One package per
architecture, as for the .deb (the tree's compiled wheels cover x86_64 and aarch64).

Reproducible as far as rpm allows: file times, the build time (SOURCE_DATE_EPOCH) and the
build host are fixed, and xz runs on one thread. rpm 4.18 gives the same bytes for the
same inputs on one machine; a different rpm version may order or add header tags
differently, so the promise is "best effort" there.

Exit codes: 0 built, 1 the build failed (a message says why), 2 usage.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict

from package_layout import (
    ARCHES,
    CONFIG,
    DESCRIPTION,
    LIB_DIR,
    LICENSE,
    NAME,
    PYTHON_MINIMUM,
    ROOT,
    SUMMARY,
    BuildError,
    Inputs,
    __version__,
    input_options,
    inputs_of,
    normalize,
    source_date_epoch,
    stage,
)

TEMPLATE = ROOT / "packaging" / "rpm" / "mydiag.spec.in"
RELEASE = "1"


def host_arch() -> str:
    machine = platform.machine()
    return machine if machine in ARCHES["rpm"] else "x86_64"


def files_section(placed: Dict[str, str]) -> str:
    """%files lines for what stage() put outside /usr/lib/mydiag, and the tree itself."""
    lines = [f"/{LIB_DIR}"]
    for rel in sorted(placed):
        if rel == CONFIG:
            continue  # the template declares it: %config(noreplace), mode 0600
        if rel.startswith("usr/share/doc/"):
            lines.append(f"%dir /{Path(rel).parent.as_posix()}")
        lines.append(f"/{rel}")
    return "\n".join(lines)


def spec(staged: Path, placed: Dict[str, str], version: str) -> str:
    values = {"NAME": NAME, "VERSION": version, "RELEASE": RELEASE, "SUMMARY": SUMMARY,
              "LICENSE": LICENSE, "PYTHON_MINIMUM": PYTHON_MINIMUM,
              "DESCRIPTION": DESCRIPTION.replace("%", "%%"), "STAGED": str(staged),
              "FILES": files_section(placed)}
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    if re.search(r"@[A-Z_]+@", text):
        raise BuildError(f"{TEMPLATE}: a placeholder is left over")
    return text


def build(inputs: Inputs, out: Path, arch: str, version: str, xz_level: int = 6) -> Path:
    if arch not in ARCHES["rpm"]:
        raise BuildError(f"--arch {arch}: the agent's wheels cover {', '.join(ARCHES['rpm'])} only")
    if "-" in version:
        raise BuildError(f"--version {version}: an RPM version cannot hold '-'")
    epoch = source_date_epoch()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{NAME}-{version}-{RELEASE}.{arch}.rpm"
    with tempfile.TemporaryDirectory(prefix="mydiag-rpm-") as tmp:
        top, staged = Path(tmp) / "top", Path(tmp) / "staged"
        placed = stage(inputs, staged, "rpm", arch)
        normalize(staged, epoch)
        (top / "SPECS").mkdir(parents=True)
        spec_file = top / "SPECS" / f"{NAME}.spec"
        spec_file.write_text(spec(staged, placed, version))
        # rpm reads and writes under $HOME (~/.rpmmacros, ~/.rpmdb) unless told otherwise.
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "HOME": tmp, "LC_ALL": "C"}
        done = subprocess.run(
            ["rpmbuild", "-bb", "--target", arch,
             "--define", f"_topdir {top}", "--define", f"_rpmdir {top / 'RPMS'}",
             "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
             "--define", f"_binary_payload w{xz_level}.xzdio",
             "--define", "_buildhost reproducible",
             str(spec_file)], capture_output=True, text=True, env=env)
        built = top / "RPMS" / target.name
        if done.returncode != 0 or not built.is_file():
            tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
            raise BuildError("rpmbuild failed: " + " / ".join(tail))
        os.replace(built, target)
    return target


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_rpm.py", description=__doc__.split("\n")[0])
    input_options(parser, ".rpm")
    parser.add_argument("--arch", default=None, choices=sorted(ARCHES["rpm"]),
                        help="the RPM architecture (default: this machine's)")
    parser.add_argument("--version", default=__version__, help=f"the package version (default {__version__})")
    args = parser.parse_args(argv)
    try:
        target = build(inputs_of(args), args.out,
                       args.arch or host_arch(), args.version, args.xz_level)
    except BuildError as exc:
        print(f"build_rpm: {exc}", file=sys.stderr)
        return 1
    print(f"{target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
