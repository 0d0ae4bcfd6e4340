"""`make demo`: one collection end to end.

Uses the server you name (MYDIAG_DEMO_DSN=mysql://user@host:port with the password in
MYDIAG_DEMO_DEFAULTS_FILE, or just MYDIAG_DEMO_DEFAULTS_FILE), otherwise starts a
throwaway MariaDB/MySQL from the local server binaries, runs `mydiag collect`, prints
the summary and the bundle path, then shows what the bundle holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402

MYDIAG = [str(ROOT / ".venv" / "bin" / "mydiag")]


def main() -> int:
    out = ROOT / ".demo" / "bundles"
    out.mkdir(parents=True, exist_ok=True)
    dsn = os.environ.get("MYDIAG_DEMO_DSN")
    defaults = os.environ.get("MYDIAG_DEMO_DEFAULTS_FILE")
    instance = None
    connection: list = []
    if defaults:
        connection += ["--defaults-file", defaults]
    if dsn:
        url = urllib.parse.urlparse(dsn)
        connection += ["--host", url.hostname or "127.0.0.1", "--port", str(url.port or 3306)]
        if url.username:
            connection += ["--user", url.username]
    if not connection:
        base = Path(tempfile.mkdtemp(prefix="mydiag-demo-"))
        print(f"demo: starting a throwaway MariaDB in {base} ...")
        try:
            instance = servers.create(base, ["--log-bin=binlog", "--server-id=1"])
        except servers.ServerUnavailable as exc:
            print(f"demo: {exc}; or set MYDIAG_DEMO_DSN", file=sys.stderr)
            return 1
        instance.sql(
            "CREATE DATABASE IF NOT EXISTS shop",
            "CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY AUTO_INCREMENT,"
            " customer VARCHAR(40), total DECIMAL(10,2))",
            "INSERT INTO shop.orders (customer, total) VALUES ('alice', 10.5), ('bob', 99)",
        )
        connection = ["--host", "127.0.0.1", "--port", str(instance.port), "--user", "root"]
    try:
        before = set(out.glob("*.tar.zst"))
        done = subprocess.run(
            MYDIAG + ["collect", *connection, "--output", str(out), "--samples", "3"]
        )
        if done.returncode not in (0, 3):
            return done.returncode
        bundle = max(set(out.glob("*.tar.zst")) - before, key=lambda p: p.stat().st_mtime)
        print(f"\nopen it with standard tools: tar --zstd -tvf {bundle}")
        print(f"or look inside with: .venv/bin/mydiag inspect {bundle}")
        return 0
    finally:
        if instance is not None:
            instance.stop()


if __name__ == "__main__":
    sys.exit(main())
