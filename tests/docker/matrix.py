"""The services of docker/compose.yml and how tests reach them (fixtures: conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import pymysql

from tests import servers

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker" / "compose.yml"
PASSWORD_ENV = "MYDIAG_MATRIX_ROOT_PASSWORD"


@dataclass(frozen=True)
class Flavor:
    """What a service of docker/compose.yml is, as the collectors should see it."""

    service: str
    family: str  # "mysql" or "mariadb", as collectors.mysql.flavor names them
    version: Tuple[int, int]
    port_env: str  # the compose file's variable for the service's host port


MATRIX = (
    Flavor("mysql80", "mysql", (8, 0), "MYDIAG_MATRIX_PORT_MYSQL80"),
    Flavor("mysql84", "mysql", (8, 4), "MYDIAG_MATRIX_PORT_MYSQL84"),
    Flavor("mariadb1011", "mariadb", (10, 11), "MYDIAG_MATRIX_PORT_MARIADB1011"),
    Flavor("mariadb114", "mariadb", (11, 4), "MYDIAG_MATRIX_PORT_MARIADB114"),
)


def docker_engine_problem() -> Optional[str]:
    """Why the matrix cannot run here, as a skip reason, or None when an engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "no Docker engine: the docker command is not installed"
    try:
        probe = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                               capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "no Docker engine: `docker info` did not answer within 30 s"
    if probe.returncode != 0 or not probe.stdout.strip():
        said = (probe.stderr.strip().splitlines() or ["no answer"])[0]
        return f"no Docker engine: `docker info` failed ({said})"
    return None


@dataclass
class Service:
    """One running container of the matrix, reached over 127.0.0.1 as root."""

    flavor: Flavor
    host: str
    port: int
    password: str = field(repr=False)

    def connect(self, user: str = "root", password: Optional[str] = None) -> pymysql.Connection:
        # Plain TCP like mydiag's default, so the tests meet the same authentication path.
        return pymysql.connect(host=self.host, port=self.port, user=user,
                               password=self.password if password is None else password,
                               autocommit=True, connect_timeout=5, ssl_disabled=True)

    def sql(self, *statements: str) -> list:
        with self.connect() as conn:
            return servers.run_sql(conn, statements)

    def defaults_file(self, folder: Path, user: str = "root",
                      password: Optional[str] = None) -> Path:
        path = folder / f"{self.flavor.service}-{user}.cnf"
        path.touch(mode=0o600)
        path.write_text(
            "[client]\n"
            f"host = {self.host}\nport = {self.port}\nuser = {user}\n"
            f"password = \"{self.password if password is None else password}\"\n"
        )
        return path
