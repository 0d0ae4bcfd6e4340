"""The .rpm, read with Debian's rpm (metadata, files, scripts, dependencies) and installed with
`rpm --root` into a fresh Debian 12 root, scripts and all, then upgraded and erased."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import List

import pytest

from bundle.version import __version__
from tests.packaging.conftest import Chroot, debian_root, need, package_args, run_script

CONFIG = "/etc/mydiag/agent.toml"


def rpm(*args: str, home: Path) -> str:
    """rpm's answer; HOME points away from ~ (rpm keeps state there)."""
    need("rpm")
    done = subprocess.run(["rpm", *args], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(home), "LC_ALL": "C"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture()
def query(dist_rpm, tmp_path):
    return lambda *args: rpm("-qp", *args, str(dist_rpm), home=tmp_path)


def expected_files(dist_pyz, dist_man) -> List[str]:
    """The pyz's tree less the other machine's wheels, and the files around it."""
    _, tree = dist_pyz
    lib = ["/usr/lib/mydiag"] + ["/usr/lib/mydiag/" + p.relative_to(tree).as_posix()
                                 for p in tree.rglob("*")
                                 if "__pycache__" not in p.parts and p.suffix != ".pyc"
                                 and not ("whl" in p.parts and "aarch64" in p.relative_to(tree).as_posix())]
    pages = [f"/usr/share/man/man1/{p.name}.gz" for p in dist_man.glob("mydiag*.1")
             if not p.name.startswith("mydiag-server")]
    return sorted(lib + pages + [
        "/etc/mydiag", CONFIG, "/usr/bin/mydiag", "/usr/lib/systemd/system/mydiag-agent.service",
        "/usr/share/bash-completion/completions/mydiag", "/usr/share/doc/mydiag",
        "/usr/share/doc/mydiag/copyright"])


def test_the_package_says_what_it_is(query):
    info = query("-i")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line and line[0] != " ")
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["Name"] == "mydiag"
    assert fields["Version"] == __version__ and fields["Release"] == "1"
    assert fields["Architecture"] == "x86_64"
    assert fields["License"] == "Apache-2.0"
    assert fields["Summary"].startswith("Asynchronous MySQL support")
    assert fields["Build Host"] == "reproducible"


def test_the_file_list_is_exactly_the_designed_one(query, dist_pyz, dist_man):
    listed = sorted(query("-l").splitlines())
    assert listed == expected_files(dist_pyz, dist_man)
    modes = {line.split()[-1]: line.split()[:2] for line in
             query("--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]").splitlines()}
    assert modes[CONFIG] == ["-rw-------", "root"]
    assert modes["/usr/bin/mydiag"] == ["-rwxr-xr-x", "root"]
    assert {owner for _, owner in modes.values()} == {"root"}


def test_agent_toml_is_a_config_file_never_replaced(query):
    assert query("-c").split() == [CONFIG]
    lines = query("--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]").splitlines()
    flagged = {line.split()[1]: line.split()[0] for line in lines if len(line.split()) == 2}
    assert set(flagged[CONFIG]) >= {"c", "n"}  # %config(noreplace)
    assert [name for name, flags in flagged.items() if "c" in flags] == [CONFIG]


def test_it_requires_python3_and_nothing_surprising(query):
    requires = {line.strip() for line in query("-R").splitlines()}
    own = {r for r in requires if not r.startswith("rpmlib(")}
    assert own == {"python3 >= 3.9", "/bin/sh"}  # /bin/sh: the scriptlets


def test_the_scripts_do_what_the_debs_do(query):
    scripts = query("--scripts")
    assert "postinstall scriptlet" in scripts and "preuninstall scriptlet" in scripts
    assert "posttrans scriptlet" in scripts and "postuninstall scriptlet" in scripts
    assert "/usr/bin/python3 -m compileall -q -j 0 /usr/lib/mydiag" in scripts
    assert "find /usr/lib/mydiag -name __pycache__" in scripts
    assert "systemctl stop mydiag-agent.service" in scripts
    # Never enabled or started by the package; only an agent that already runs is restarted.
    commands = [line.strip() for line in scripts.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    systemctl = {line.split()[1] for line in commands if line.startswith("systemctl ")}
    assert systemctl == {"daemon-reload", "try-restart", "stop"}
    # rpm has no purge: nothing removes the host's state or its configuration folder.
    assert not [line for line in commands if "/var/lib/mydiag" in line or "/etc/mydiag" in line]


def test_the_same_inputs_build_the_same_rpm(tmp_path, dist_pyz, dist_man, dist_completion, dist_rpm):
    run_script("build_rpm.py", *package_args(dist_pyz, dist_man, dist_completion, tmp_path),
               "--arch", "x86_64")
    again = tmp_path / dist_rpm.name
    assert hashlib.sha256(again.read_bytes()).hexdigest() == hashlib.sha256(dist_rpm.read_bytes()).hexdigest()


@pytest.mark.slow
def test_rpm_root_install_runs_upgrade_keeps_config_erase_keeps_state(tmp_path, dist_rpm, dist_pyz, dist_man,
                                                                      dist_completion):
    """Into a Debian 12 root: its /bin/sh and python3 run the scriptlets (--nodeps: the root's
    rpm database does not know Debian's python3)."""
    debian = Chroot(debian_root(tmp_path / "root"))
    rpm_env = {"HOME": str(tmp_path)}
    base = ["rpm", "--root", str(debian.root), "--dbpath", "/var/lib/rpm"]
    debian.host(*base, "--initdb", env=rpm_env)
    debian.host(*base, "-i", "--nodeps", str(dist_rpm), env=rpm_env)
    assert debian.run("mydiag", "--version").stdout.startswith(f"mydiag {__version__}")
    assert list(debian.path("/usr/lib/mydiag/agent").glob("__pycache__/*.cpython-311.pyc"))  # %posttrans
    unit = debian.path("/usr/lib/systemd/system/mydiag-agent.service").read_text()
    assert "ExecStart=/usr/bin/mydiag agent run --config /etc/mydiag/agent.toml\n" in unit
    debian.run("mydiag", "keys", "init")
    config = debian.path(CONFIG)
    changed = config.read_text() + "\n[agent]\nnice = 15\n"
    config.write_text(changed)

    newer = tmp_path / "newer"
    run_script("build_rpm.py", *package_args(dist_pyz, dist_man, dist_completion, newer), "--arch", "x86_64",
               "--version", f"{__version__}.1")
    debian.host(*base, "-U", "--nodeps", str(next(newer.glob("*.rpm"))), env=rpm_env)
    assert f"mydiag-{__version__}.1-1" in debian.host(*base, "-q", "mydiag", env=rpm_env).stdout
    assert config.read_text() == changed
    assert not debian.path(f"{CONFIG}.rpmnew").exists()  # the package's own copy did not change

    debian.host(*base, "-e", "mydiag", env=rpm_env)
    assert not debian.path("/usr/lib/mydiag").exists()  # %preun took the .pyc files
    assert not debian.path("/usr/bin/mydiag").exists()
    assert debian.path("/var/lib/mydiag/host_ed25519.key").is_file()
    assert debian.path(f"{CONFIG}.rpmsave").read_text() == changed
