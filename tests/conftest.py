"""Shared fixtures: real MariaDB/MySQL servers, never mocks.

`server` is a private instance started from the local binaries for this test session
(performance_schema on, binary log on), or the server named by MYDIAG_TEST_DSN
(mysql://user:password@host:port). Tests that kill or reconfigure a server use
`private_server`, which is always their own instance. With MYDIAG_REQUIRE_SERVER=1
(CI) a missing server is an error, not a skip.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests import servers

#: Support-server fixtures (backend, support, proxy_to): see tests/serverkit.py.
pytest_plugins = ("tests.serverkit",)

#: The engineers' web pages and the mail service are server code through and through: where the
#: server extra is not installed (the agent's Python 3.9 pass, `pytest -m "not server"`), they
#: are not collected.
collect_ignore = [] if importlib.util.find_spec("fastapi") else [
    "web", "mail", "unit/test_invites.py", "unit/test_promisemail.py"]  # these two import server/mail

REQUIRE = os.environ.get("MYDIAG_REQUIRE_SERVER") == "1"


@dataclass
class Target:
    """How tests reach a server: TCP on loopback, a root-capable account."""

    host: str
    port: int
    user: str
    password: str
    instance: Optional[servers.Instance] = None

    def connect(self, **kwargs):
        import pymysql

        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, autocommit=True, ssl_disabled=True,
                               **kwargs)

    def sql(self, *statements: str) -> list:
        with self.connect() as conn:
            return servers.run_sql(conn, statements)

    def defaults_file(self, folder: Path, user: Optional[str] = None,
                      password: Optional[str] = None) -> Path:
        """An option file for this server, mode 0600, as a DBA would write it."""
        path = folder / f"my-{user or self.user}.cnf"
        path.write_text(
            "[client]\n"
            f"host = {self.host}\nport = {self.port}\n"
            f"user = {user or self.user}\n"
            f"password = \"{password if password is not None else self.password}\"\n"
        )
        path.chmod(0o600)
        return path


def _unavailable(message: str) -> None:
    if REQUIRE:
        pytest.fail(f"real server required (MYDIAG_REQUIRE_SERVER=1): {message}")
    pytest.skip(message)


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, *extra: str) -> servers.Instance:
    try:
        return servers.create(tmp_path_factory.mktemp(name), list(extra))
    except servers.ServerUnavailable as exc:
        _unavailable(str(exc))
        raise


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Target]:
    dsn = os.environ.get("MYDIAG_TEST_DSN")
    if dsn:
        url = urllib.parse.urlparse(dsn)
        yield Target(url.hostname or "127.0.0.1", url.port or 3306,
                     urllib.parse.unquote(url.username or "root"),
                     urllib.parse.unquote(url.password or ""))
        return
    instance = _start(
        tmp_path_factory, "primary", "--performance-schema=ON", "--log-bin=binlog",
        "--server-id=1",
    )
    yield Target("127.0.0.1", instance.port, "root", "", instance)
    instance.stop()


@pytest.fixture(scope="session")
def replica_pair(tmp_path_factory) -> Iterator[tuple]:
    """A primary and a GTID replica of it, both private."""
    primary = _start(tmp_path_factory, "rprimary", "--log-bin=binlog", "--server-id=11")
    replica = _start(tmp_path_factory, "replica", "--log-bin=binlog", "--server-id=12")
    servers.make_replica(primary, replica, secrets.token_urlsafe(12))
    yield Target("127.0.0.1", primary.port, "root", "", primary), Target(
        "127.0.0.1", replica.port, "root", "", replica
    )
    replica.stop()
    primary.stop()


@pytest.fixture()
def private_server(tmp_path_factory) -> Iterator[Target]:
    """A server of this test's own, to kill or lock as it likes."""
    instance = _start(tmp_path_factory, "private")
    yield Target("127.0.0.1", instance.port, "root", "", instance)
    instance.kill()
