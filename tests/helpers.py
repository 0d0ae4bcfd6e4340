"""Helpers for tests that drive `mydiag` the way a user does: as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List

import pytest
import zstandard

ROOT = Path(__file__).resolve().parent.parent
#: Run a command as the unprivileged nobody user (root tests of what non-root users meet).
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def mydiag(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run `mydiag ARGS` with this interpreter; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], cwd=kwargs.pop("cwd", ROOT),
        capture_output=True, text=True, timeout=timeout, **kwargs,
    )


def bundle_members(path: Path) -> List[tarfile.TarInfo]:
    with open(path, "rb") as raw, tarfile.open(
        fileobj=zstandard.ZstdDecompressor().stream_reader(raw), mode="r|"
    ) as tar:
        return list(tar)


def bundle_files(path: Path) -> Dict[str, bytes]:
    """Every member of a plain bundle, by path, in archive order."""
    out: Dict[str, bytes] = {}
    with open(path, "rb") as raw, tarfile.open(
        fileobj=zstandard.ZstdDecompressor().stream_reader(raw), mode="r|"
    ) as tar:
        for info in tar:
            handle = tar.extractfile(info)
            if handle is not None:
                out[info.name] = handle.read()
    return out


def bundle_json(files: Dict[str, bytes], name: str):
    return json.loads(files[name])


def collect_json(*args: str, timeout: float = 120, **kwargs) -> tuple:
    """Run `mydiag collect --json ARGS`; return (process, summary dict or None)."""
    done = mydiag("collect", "--json", *args, timeout=timeout, **kwargs)
    summary = json.loads(done.stdout) if done.stdout.strip().startswith("{") else None
    return done, summary


def by_name(summary: dict) -> dict:
    return {c["name"]: c for c in summary["collectors"]}


def cross_deadlock(a, b, b_statement: str, a_statement: str) -> list:
    """Run b's statement on a thread (it waits for a's lock), then a's (which closes the
    cycle); the server's errors, one of them the deadlock, come back as a list."""
    import threading
    import time

    import pymysql

    errors: list = []

    def cross() -> None:
        try:
            b.execute(b_statement)
        except pymysql.MySQLError as exc:
            errors.append(exc)

    thread = threading.Thread(target=cross)
    thread.start()
    time.sleep(0.5)
    try:
        a.execute(a_statement)
    except pymysql.MySQLError as exc:
        errors.append(exc)
    thread.join()
    return errors


def nobody_python() -> List[str]:
    """An interpreter the nobody user may start with this checkout's packages: this one when
    nobody can read it, else the system's python3 of the same version (the venv's own lives
    under /root here)."""
    for python in (sys.executable, "/usr/bin/python3"):
        tried = subprocess.run(NOBODY + [python, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        if tried.returncode == 0 and tried.stdout.strip() == str(tuple(sys.version_info[:2])):
            return [python]
    pytest.skip("no interpreter of this version that the nobody user may start")


def nobody_env(home: Path) -> dict:
    site = [p for p in sys.path if p.endswith("site-packages")]
    return dict(os.environ, HOME=str(home), PYTHONPATH=os.pathsep.join([str(ROOT), *site]))
