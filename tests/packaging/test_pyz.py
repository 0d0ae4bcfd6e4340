"""The single-file agent: mydiag.pyz on the host's own Python 3.9, 3.11 and 3.13, isolated (-I)
and without site-packages (-S), as a DBA runs it on a host with nothing installed.

Every run gets a fresh MYDIAG_HOME and HOME and TMPDIR pointed at empty folders that must stay
empty: the file writes nothing but its extracted modules (in MYDIAG_HOME) and the bundle.
The pyz is built once for the test run (conftest.dist_pyz: scripts/build_pyz.py, all Pythons
and both machines, wheels cached in ~/.cache/mydiag-dist/wheels), shared by the workers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import signal
import stat
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from bundle.version import __version__
from tests.agentkit import SupportServer, journal, read_bundle, write_config
from tests.packaging.conftest import ROOT, run_script

pytestmark = pytest.mark.slow

#: CI (and `MYDIAG_REQUIRE_PY39=1`, as the Makefile's 3.9 pass) fails when a Python is missing.
REQUIRE = os.environ.get("MYDIAG_REQUIRE_PY39") == "1" or os.environ.get("CI") == "true"
PYENV = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
#: The bootstrap's own exit codes (packaging/pyz_main.py, docs/install.md).
UNSUPPORTED, NO_STATE_DIR = 24, 25


def python(version: str, required: bool = True) -> str:
    for candidate in sorted(PYENV.glob(f"versions/{version}.*/bin/python{version}")):
        return str(candidate)
    message = f"Python {version} not found under {PYENV}/versions (pyenv install {version})"
    if required and REQUIRE:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def bootstrap():
    """packaging/pyz_main.py as a module, for its selection logic."""
    spec = importlib.util.spec_from_file_location("pyz_main", ROOT / "packaging" / "pyz_main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pyz(dist_pyz) -> Path:
    return dist_pyz[0]


class Host:
    """A run of the pyz as on a bare host: its own state, home and temp folders."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.state = base / "state"
        self.home = base / "home"
        self.tmp = base / "tmp"
        self.work = base / "work"
        for folder in (self.home, self.tmp, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> Dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(self.home),
                "TMPDIR": str(self.tmp), "MYDIAG_HOME": str(self.state), **extra}

    def run(self, interpreter: str, target: Path, *args: str, flags: tuple = ("-I", "-S"),
            timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([interpreter, *flags, str(target), *args], cwd=self.work, env=self.env(**extra),
                              capture_output=True, text=True, timeout=timeout)

    def assert_clean(self) -> None:
        """Nothing in HOME or TMPDIR; the extracted modules only in MYDIAG_HOME, private (what the
        agent itself keeps there is its own business: the folder is 0700)."""
        assert not list(self.home.iterdir()), list(self.home.rglob("*"))
        assert not list(self.tmp.iterdir()), list(self.tmp.rglob("*"))
        for path in [self.state, *(self.state / "pyz").rglob("*")] if self.state.exists() else []:
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def extracted(state: Path) -> List[Path]:
    return sorted(p for p in (state / "pyz").iterdir() if not p.name.startswith("."))


# -- each Python: version, collect, seal --------------------------------------------------------
@pytest.mark.mysql
@pytest.mark.parametrize("version", ["3.9", "3.11", "3.13"])
def test_collect_and_seal_on_the_hosts_own_python(pyz, server, tmp_path, version):
    interpreter = python(version)
    host = Host(tmp_path)
    done = host.run(interpreter, pyz, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"mydiag {__version__}"), done.stdout
    [cache] = extracted(host.state)
    assert (cache / ".complete").is_file()

    defaults = server.defaults_file(host.base)
    done = host.run(interpreter, pyz, "collect", "--profile", "quick", "--defaults-file", str(defaults),
                    "--output", str(host.work / "bundles"), "--json", "--samples", "2", "--interval", "0.2")
    assert done.returncode in (0, 3), done.stderr
    summary = json.loads(done.stdout)
    bundle = Path(summary["bundle"])
    assert bundle.parent == host.work / "bundles"
    statuses = {c["name"]: c["status"] for c in summary["collectors"]}
    assert statuses["mysql.status"] == "ok" and statuses["os.cpu"] == "ok", statuses

    identity, recipient = _keypair()
    done = host.run(interpreter, pyz, "seal", str(bundle), "--recipient", recipient)
    assert done.returncode == 0, done.stderr
    manifest = read_bundle(Path(f"{bundle}.age"), [identity])
    assert manifest["profile"] == "quick"
    # The second start used the same extracted copy and made no other.
    assert extracted(host.state) == [cache]
    host.assert_clean()


def _keypair() -> tuple:
    from bundle.age import generate_identity

    return generate_identity()


# -- upload and the agent, on 3.11 --------------------------------------------------------------
@pytest.fixture(scope="module")
def support(tmp_path_factory):
    server = SupportServer.create(tmp_path_factory.mktemp("pyz-support"))
    server.start()
    yield server
    server.stop()


@pytest.mark.mysql
@pytest.mark.server
def test_upload_and_agent_once_from_the_pyz(pyz, server, support, tmp_path):
    interpreter = python("3.11")
    host = Host(tmp_path)
    ticket = support.ticket()
    defaults = server.defaults_file(host.base)
    done = host.run(interpreter, pyz, "collect", "--profile", "quick", "--defaults-file", str(defaults),
                    "--output", str(host.work), "--json", "--samples", "1")
    assert done.returncode in (0, 3), done.stderr
    bundle = json.loads(done.stdout)["bundle"]
    token = host.base / "token"
    token.write_text(ticket["upload_token"])
    token.chmod(0o600)
    done = host.run(interpreter, pyz, "upload", bundle, "--server", support.url, "--ticket", ticket["id"],
                    "--token-file", str(token), "--json")
    assert done.returncode == 0, done.stderr
    assert len(support.bundles(ticket["id"])) == 1

    config = write_config(host.base / "agent", server, schedule="1h", server={
        "url": support.url, "ticket": ticket["id"], "token": ticket["upload_token"]})
    done = host.run(interpreter, pyz, "agent", "once", "--config", str(config))
    assert done.returncode == 0, done.stderr
    entries = journal(host.base / "agent" / "spool")
    assert [e["kind"] for e in entries] == ["schedule"], done.stderr
    deadline = time.monotonic() + 30
    while len(support.bundles(ticket["id"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(support.bundles(ticket["id"])) == 2, done.stderr
    host.assert_clean()


# -- the unzipped tree (the .deb's /usr/lib/mydiag) -----------------------------------------------
@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_the_tree_runs_as_it_is_and_writes_nothing(pyz, tmp_path, version):
    interpreter = python(version)
    tree = pyz.parent / "tree"
    before = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*"))
    host = Host(tmp_path)
    # -B only for __main__.py itself, which Python compiles before the bootstrap runs (the packages
    # compile the tree at install time, or their wrapper passes -B); the rest is the bootstrap's.
    for args in (["--version"], ["grants"]):
        done = host.run(interpreter, tree, *args, flags=("-I", "-S", "-B"))
        assert done.returncode == 0, done.stderr
    assert not host.state.exists()
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")) == before
    host.assert_clean()


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_run_as_a_program_it_starts_python3_isolated_and_without_site(pyz, tmp_path, version):
    """`./mydiag.pyz`: the sh launcher in front of the zip starts the python3 on PATH with -I -S,
    so neither PYTHONPATH nor a sitecustomize (nor any .pth file) of the host runs first."""
    host = Host(tmp_path)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(python(version))
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "site-ran"
    (planted / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = host.env(PATH=f"{shim}:/usr/bin:/bin", PYTHONPATH=str(planted))
    done = subprocess.run([str(pyz), "--version"], cwd=host.work, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"mydiag {__version__} (bundle format ")
    assert not marker.exists()
    # The same planted folder does run under a plain python3 (the check above can fail).
    subprocess.run([python(version), "-c", "pass"], env=env, check=True, timeout=60)
    assert marker.exists()


# -- the file itself ----------------------------------------------------------------------------
def test_the_same_inputs_give_the_same_file(pyz, tmp_path):
    again = tmp_path / "again.pyz"
    run_script("build_pyz.py", "--out", str(again), "--tree", str(tmp_path / "tree"))
    first, second = (hashlib.sha256(p.read_bytes()).hexdigest() for p in (pyz, again))
    assert first == second
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert names == sorted(names)
    assert not [n for n in names if n.endswith((".pyc", ".pyo")) or "__pycache__" in n]
    assert {i.date_time for i in infos} == {time.gmtime(1700000000)[:6]}
    assert {i.external_attr >> 16 for i in infos} == {0o100644, 0o40755}
    assert not [n for n in names if n.startswith(("server/", "tests/"))]
    assert {"report/templates/report.html", "report/static/report.css", "__main__.py"} <= set(names)


def _elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return int.from_bytes(data[18:20], "little")


@pytest.mark.parametrize("arch,elf", [("x86_64", 62), ("aarch64", 183)])
def test_each_python_and_machine_has_its_own_compiled_modules(pyz, arch, elf):
    with zipfile.ZipFile(pyz) as archive:
        index = json.loads(archive.read("_lib/index.json"))
        for minor in range(9, 14):
            entry = index["targets"][f"cp3{minor}-{arch}"]
            shared: Dict[str, bytes] = {}
            for folder in entry["compiled"]:
                # Each compiled wheel is one member: the folder the tree has, zipped.
                with zipfile.ZipFile(io.BytesIO(archive.read(folder + ".zip"))) as inner:
                    shared.update({n: inner.read(n) for n in inner.namelist() if n.endswith(".so")})
            modules = {n.rsplit("/", 1)[-1].split(".")[0] for n in shared}
            assert {"_rust", "backend_c", "_psutil_linux", "_bcrypt", "_sodium", "_cffi_backend",
                    "_speedups"} <= modules, (minor, sorted(modules))
            for name, data in shared.items():
                assert _elf_machine(data[:20]) == elf, name
                assert f"cpython-3{minor}-{arch}" in name or ".abi3." in name, name


def test_the_bootstrap_picks_the_set_for_the_python_and_machine(pyz):
    boot = bootstrap()
    with zipfile.ZipFile(pyz) as archive:
        index = json.loads(archive.read("_lib/index.json"))
    glibc = ("glibc", "2.28")
    for minor in range(9, 14):
        for arch in ("x86_64", "aarch64"):
            entry, reason = boot.select(index, (3, minor), arch, "cpython", glibc)
            assert reason is None and entry is index["targets"][f"cp3{minor}-{arch}"]
            assert all(arch in folder for folder in entry["compiled"])
            assert all(f"cp3{minor}-" in f or "abi3" in f for f in entry["compiled"])
    entry, reason = boot.select(index, (3, 8), "x86_64", "cpython", glibc)
    assert entry is None and "this is Python 3.8 on x86_64" in reason
    entry, reason = boot.select(index, (3, 11), "x86_64", "cpython", (None, None))
    assert entry is None and "not glibc" in reason
    entry, reason = boot.select(index, (3, 11), "riscv64", "cpython", glibc)
    assert entry is None and "riscv64" in reason
    entry, reason = boot.select(index, (3, 11), "x86_64", "pypy", glibc)
    assert entry is None and "pypy" in reason
    assert boot.target_key((3, 12), boot._MACHINES.get("arm64")) == "cp312-aarch64"


@pytest.mark.parametrize("version", ["3.6", "3.8"])
def test_an_unsupported_python_gets_one_line_and_its_exit_code(pyz, tmp_path, version):
    interpreter = python(version, required=False)
    host = Host(tmp_path)
    done = host.run(interpreter, pyz, "--version")
    assert done.returncode == UNSUPPORTED
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("mydiag: this file runs on CPython 3.9"), \
        done.stderr
    assert f"this is Python {version} on" in done.stderr
    assert not host.state.exists()


def test_an_unwritable_state_directory_is_one_line_and_its_exit_code(pyz, tmp_path):
    host = Host(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = host.run(python("3.11"), pyz, "--version", MYDIAG_HOME=str(blocker / "state"))
    assert done.returncode == NO_STATE_DIR
    assert done.stderr.count("\n") == 1 and "set MYDIAG_HOME to a writable directory" in done.stderr
    host.assert_clean()


# -- first starts: at once, and killed midway -----------------------------------------------------
def test_two_first_starts_at_once_both_work_and_leave_one_copy(pyz, tmp_path):
    interpreter = python("3.11")
    host = Host(tmp_path)
    runs = [subprocess.Popen([interpreter, "-I", "-S", str(pyz), "--version"], cwd=host.work, env=host.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert all(out.startswith(f"mydiag {__version__}") for out, _ in outputs)
    assert len(extracted(host.state)) == 1
    # Nothing half-made is left: no extraction folder, no partial bytecode of the bootstrap.
    leftovers = [p for p in (host.state / "pyz").iterdir()
                 if p.name.startswith(".") and not (p.name.startswith(".boot-") and p.name.endswith(".pyc"))]
    assert not leftovers
    host.assert_clean()


def test_the_bootstraps_bytecode_is_kept_and_a_damaged_copy_is_recompiled(pyz, tmp_path):
    interpreter = python("3.11")
    host = Host(tmp_path)
    for _ in range(2):  # the first start makes the folder, the second keeps the bytecode there
        assert host.run(interpreter, pyz, "--version").returncode == 0
    [cached] = (host.state / "pyz").glob(".boot-*.cpython-311.pyc")
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    kept = cached.read_bytes()
    assert kept[:4] == importlib.util.MAGIC_NUMBER
    cached.write_bytes(kept[:4] + b"\x00garbage")
    done = host.run(interpreter, pyz, "--version")
    assert done.returncode == 0 and done.stdout.startswith(f"mydiag {__version__}"), done.stderr
    assert cached.read_bytes() == kept
    host.assert_clean()


def _kill_during_extraction(interpreter: str, pyz: Path, host: Host) -> Optional[Path]:
    """Start a first run and SIGKILL it while its temporary folder is being filled."""
    run = subprocess.Popen([interpreter, "-I", "-S", str(pyz), "--version"], cwd=host.work, env=host.env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    partial = None
    while time.monotonic() < deadline and run.poll() is None:
        found = list((host.state / "pyz").glob(".tmp-*/*")) if (host.state / "pyz").is_dir() else []
        if found:
            partial = found[0].parent
            run.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    run.wait(10)
    return partial


def test_a_first_start_killed_midway_is_recovered(pyz, tmp_path):
    interpreter = python("3.11")
    host = Host(tmp_path)
    partial = None
    for _ in range(5):  # the extraction takes a few hundred ms; the poll catches it at once
        partial = _kill_during_extraction(interpreter, pyz, host)
        if partial is not None:
            break
    assert partial is not None and partial.is_dir(), "the run was not caught extracting"
    assert not extracted(host.state)
    done = host.run(interpreter, pyz, "--version")
    assert done.returncode == 0, done.stderr
    [cache] = extracted(host.state)
    assert (cache / ".complete").is_file() and not partial.exists()
    host.assert_clean()


def test_an_incomplete_copy_under_the_final_name_is_replaced(pyz, tmp_path):
    interpreter = python("3.11")
    host = Host(tmp_path)
    assert host.run(interpreter, pyz, "--version").returncode == 0
    [cache] = extracted(host.state)
    (cache / ".complete").unlink()
    for so in cache.rglob("*.so"):
        so.write_bytes(so.read_bytes()[:100])  # truncated as by a copy that stopped
    done = host.run(interpreter, pyz, "collect", "--help")
    assert done.returncode == 0, done.stderr
    assert extracted(host.state) == [cache] and (cache / ".complete").is_file()
    assert all(so.stat().st_size > 100 for so in cache.rglob("*.so"))
    host.assert_clean()


# -- children of the pyz: the diag console and the unit file -------------------------------------
def test_a_child_of_the_pyz_runs_the_console_from_the_same_file(pyz, tmp_path):
    """A remote session's diag console is a child process (agent/selfexec.py): from the pyz it
    is the pyz again, with the module named, not `python -m`, which finds no agent there."""
    host = Host(tmp_path)
    done = host.run(python("3.11"), pyz, "--help", MYDIAG_PYZ_MODULE="agent.session.console")
    assert done.returncode == 0 and done.stdout.startswith("usage: mydiag-console"), done.stderr
    refused = host.run(python("3.11"), pyz, "--help", MYDIAG_PYZ_MODULE="http.server")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "MYDIAG_PYZ_MODULE may not name 'http.server'" in refused.stderr
    host.assert_clean()


def test_the_unit_written_from_the_pyz_starts_the_pyz(pyz, tmp_path):
    host = Host(tmp_path)
    interpreter = python("3.11")
    done = host.run(interpreter, pyz, "agent", "install-service", "--stdout")
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("ExecStart=")]
    assert line.startswith(f"ExecStart={interpreter} -I -S {pyz} agent run"), line
