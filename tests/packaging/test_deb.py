"""The .deb on a fresh Debian 12: installed with dpkg, run under chroot, upgraded, removed, purged.

The root is a debootstrap of bookworm (minbase + python3, cached as a tarball: see
conftest.py); the chroot shares this machine's network, so `mydiag collect` there reaches
the session's private MariaDB on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess

import pytest

from bundle.version import __version__
from tests.packaging.conftest import ROOT, Chroot, debian_root, need, package_args, run_script

pytestmark = [pytest.mark.slow, pytest.mark.mysql]

UNIT = "/lib/systemd/system/mydiag-agent.service"
CONFIG = "/etc/mydiag/agent.toml"
HOST_KEY = "/var/lib/mydiag/host_ed25519.key"


def agent_pages(dist_man) -> list:
    return sorted(p.name for p in dist_man.glob("mydiag*.1") if not p.name.startswith("mydiag-server"))


@pytest.fixture(scope="module")
def debian(tmp_path_factory, dist_deb) -> Chroot:
    """A Debian 12 root with the package installed, for the tests that only look."""
    chroot = Chroot(debian_root(tmp_path_factory.mktemp("debian12") / "root"))
    chroot.install(dist_deb)
    return chroot


def test_the_package_says_what_it_is_and_needs(dist_deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(dist_deb)], capture_output=True, text=True,
                            check=True).stdout
    assert f"Version: {__version__}-1\n" in fields
    assert "Architecture: amd64\n" in fields
    assert "Depends: python3 (>= 3.9)\n" in fields
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(dist_deb)], capture_output=True,
                               check=True).stdout
    assert b"./conffiles" in subprocess.run(["tar", "-t"], input=conffiles, capture_output=True).stdout
    listed = subprocess.run(["dpkg-deb", "-c", str(dist_deb)], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert all(" root/root " in line for line in listed)
    assert not any("__pycache__" in line or line.endswith(".pyc") for line in listed)


def test_the_same_inputs_build_the_same_deb_byte_for_byte(tmp_path, dist_pyz, dist_man, dist_completion,
                                                          dist_deb):
    """Built again under another umask, from the pyz itself rather than its tree: the same bytes."""
    old = os.umask(0o002)
    try:
        run_script("build_deb.py", *package_args(dist_pyz, dist_man, dist_completion, tmp_path, tree=False),
                   "--arch", "amd64")
    finally:
        os.umask(old)
    again = tmp_path / dist_deb.name
    assert hashlib.sha256(again.read_bytes()).hexdigest() == hashlib.sha256(dist_deb.read_bytes()).hexdigest()


def test_each_architecture_gets_only_its_own_wheels(tmp_path, dist_pyz, dist_man, dist_completion, dist_deb):
    run_script("build_deb.py", *package_args(dist_pyz, dist_man, dist_completion, tmp_path),
               "--arch", "arm64")
    arm64 = tmp_path / f"mydiag_{__version__}-1_arm64.deb"
    for deb, machine, other in ((dist_deb, "x86_64", "aarch64"), (arm64, "aarch64", "x86_64")):
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                              check=True).stdout
        listed = subprocess.run(["tar", "-t"], input=data, capture_output=True, check=True).stdout.decode()
        wheels = [n for n in listed.splitlines() if re.fullmatch(r"\./usr/lib/mydiag/_lib/whl/[^/]+/", n)]
        assert wheels and all(machine in n and other not in n for n in wheels), (deb.name, wheels)
        shown = subprocess.run(["tar", "-xO", "./usr/lib/mydiag/_lib/index.json"], input=data,
                               capture_output=True, check=True).stdout
        targets = json.loads(shown)["targets"]
        assert targets and all(key.endswith(f"-{machine}") for key in targets)
        assert {key.split("-")[0] for key in targets} == {"cp39", "cp310", "cp311", "cp312", "cp313"}


def test_mydiag_runs_on_the_hosts_own_python3(debian):
    shown = debian.run("mydiag", "--version").stdout
    assert shown.startswith(f"mydiag {__version__}")
    wrapper = debian.path("/usr/bin/mydiag").read_text()
    assert "exec /usr/bin/python3 -s -S /usr/lib/mydiag " in wrapper
    assert (debian.path("/usr/lib/mydiag/__main__.py")).is_file()
    status = debian.dpkg("-s", "mydiag").stdout
    assert "Status: install ok installed" in status
    # postinst compiled the tree for this python3; dpkg does not own those files.
    assert list(debian.path("/usr/lib/mydiag/agent").glob("__pycache__/*.cpython-311.pyc"))


def test_collect_in_the_debian_root_against_a_loopback_server(debian, server):
    debian.path("/root/my.cnf").write_text(
        f'[client]\nhost = 127.0.0.1\nport = {server.port}\nuser = {server.user}\n'
        f'password = "{server.password}"\n')
    debian.path("/root/my.cnf").chmod(0o600)
    done = debian.run("mydiag", "collect", "--profile", "quick", "--defaults-file", "/root/my.cnf",
                      "--output", "/root", "--samples", "2", "--interval", "0.5", "--json", check=False,
                      timeout=180)
    assert done.returncode in (0, 3), done.stderr
    bundles = sorted(debian.path("/root").glob("mydiag-*.tar.zst"))
    assert len(bundles) == 1, (done.stdout, done.stderr)
    members = subprocess.run(["tar", "--zstd", "-tf", str(bundles[0])], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert members[0] == "manifest.json"
    manifest = json.loads(subprocess.run(["tar", "--zstd", "-xOf", str(bundles[0]), "manifest.json"],
                                         capture_output=True, check=True).stdout)
    assert manifest["tool_version"] == __version__
    status = {c["name"]: c["status"] for c in manifest["collectors"]}
    mysql = [name for name in status if name.startswith("mysql.")]
    assert mysql and all(status[name] in ("ok", "partial", "skipped") for name in mysql), status
    assert manifest["mysql"].get("version"), manifest["mysql"]


def test_the_unit_is_in_place_and_starts_usr_bin_mydiag_but_is_not_enabled(debian):
    unit = debian.path(UNIT).read_text()
    assert "ExecStart=/usr/bin/mydiag agent run --config /etc/mydiag/agent.toml\n" in unit
    source = (ROOT / "packaging" / "mydiag-agent.service").read_text()
    kept = [line for line in source.splitlines() if not line.startswith(("ExecStart=", "# Written by"))]
    rest = [line for line in unit.splitlines() if not line.startswith(("ExecStart=", "# Installed by"))]
    assert rest == kept
    assert not debian.path("/etc/systemd/system/multi-user.target.wants/mydiag-agent.service").exists()


def test_systemd_reads_the_packaged_unit_without_a_complaint(debian, tmp_path):
    """systemd-analyze verify (this machine's systemd 252, as Debian 12's): every key known,
    every value valid; ExecStart points into the root, where /usr/bin/mydiag is."""
    unit = debian.path(UNIT).read_text()
    copy = tmp_path / "mydiag-agent.service"
    copy.write_text(unit.replace("ExecStart=/usr/bin/mydiag", f"ExecStart={debian.path('/usr/bin/mydiag')}"))
    done = subprocess.run([need("systemd-analyze"), "verify", "--recursive-errors=no", str(copy)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_man_pages_and_completion_are_installed(debian, dist_man, dist_completion):
    man = debian.path("/usr/share/man/man1")
    installed = sorted(p.name[:-3] for p in man.glob("mydiag*.1.gz"))
    assert installed == agent_pages(dist_man)
    assert "mydiag-collect.1" in installed
    for name in installed:
        packed = (man / f"{name}.gz").read_bytes()
        assert packed[4:8] == b"\0\0\0\0" and not packed[3] & 0x08  # gzip -n: no time, no name
        assert gzip.decompress(packed) == (dist_man / name).read_bytes()
    completion = debian.path("/usr/share/bash-completion/completions/mydiag")
    assert completion.read_bytes() == (dist_completion / "mydiag").read_bytes()
    assert not debian.path("/usr/share/bash-completion/completions/mydiag-server").exists()


def test_the_shipped_config_is_accepted_and_asks_for_nothing(debian):
    config = debian.path(CONFIG)
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    done = debian.run("mydiag", "agent", "status", "--config", CONFIG, "--json")
    report = json.loads(done.stdout)
    assert report["schedule"] is None and report["triggers"] == []
    assert "server" not in report or not report.get("server")
    # Every setting of docs/agent.example.toml is there, commented out.
    example = (ROOT / "docs" / "agent.example.toml").read_text().splitlines()
    shipped = config.read_text().splitlines()
    settings = [line for line in example if line.strip() and not line.lstrip().startswith("#")]
    assert settings and all(f"# {line}" in shipped for line in settings)


def test_upgrade_keeps_a_changed_config_remove_keeps_state_purge_removes_it(tmp_path, dist_deb, dist_pyz,
                                                                           dist_man, dist_completion):
    debian = Chroot(debian_root(tmp_path / "root"))
    debian.install(dist_deb)
    debian.run("mydiag", "keys", "init")
    assert debian.path(HOST_KEY).is_file()
    config = debian.path(CONFIG)
    changed = config.read_text() + '\n[agent]\nnice = 15\n'
    config.write_text(changed)

    debian.install(dist_deb)  # the same version again
    assert config.read_text() == changed
    newer_dir = tmp_path / "newer"
    run_script("build_deb.py", *package_args(dist_pyz, dist_man, dist_completion, newer_dir),
               "--arch", "amd64", "--version", f"{__version__}-2")
    upgrade = debian.install(next(newer_dir.glob("*.deb")))
    assert "Unpacking mydiag" in upgrade.stdout and f"{__version__}-2" in debian.dpkg("-s", "mydiag").stdout
    assert config.read_text() == changed
    assert debian.run("mydiag", "agent", "status", "--config", CONFIG).returncode == 0

    debian.dpkg("-r", "mydiag")
    assert not debian.path("/usr/bin/mydiag").exists()
    assert not debian.path("/usr/lib/mydiag").exists()  # the .pyc files went with it
    assert not debian.path(UNIT).exists()
    assert debian.path(HOST_KEY).is_file()
    assert config.read_text() == changed
    assert "Status: deinstall ok config-files" in debian.dpkg("-s", "mydiag").stdout

    debian.dpkg("-P", "mydiag")
    assert not debian.path("/var/lib/mydiag").exists()
    assert not debian.path("/etc/mydiag").exists()
    assert debian.dpkg("-s", "mydiag", check=False).returncode != 0
