"""The version matrix of docker/compose.yml: MySQL 8.0 and 8.4, MariaDB 10.11 and 11.4.

Runs only where a Docker engine answers (`docker info`); elsewhere every test here is
skipped with a reason that starts with "no Docker engine", and the suite still runs
against the private servers of tests/conftest.py. The containers come up through
pytest-docker (`docker compose up --wait`: the healthchecks decide when they are ready)
and go down with their volumes after the session. The root password is generated here
per run and only handed to `docker compose` through its environment.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import time
from typing import Dict, Iterator

import pymysql
import pytest

from tests import servers
from tests.docker.matrix import COMPOSE_FILE, MATRIX, PASSWORD_ENV, Service, docker_engine_problem


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skips the matrix without an engine; an engine without compose is a broken set-up."""
    problem = docker_engine_problem()
    if problem:
        pytest.skip(problem)
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if compose.returncode != 0:
        pytest.fail("a Docker engine answers but `docker compose` is missing: install the "
                    "Compose plugin (docker-compose-plugin)", pytrace=False)
    if importlib.util.find_spec("pytest_docker") is None:
        pytest.fail("pytest-docker is not installed: .venv/bin/pip install -e '.[dev]'",
                    pytrace=False)


@pytest.fixture(scope="session")
def matrix_password() -> Iterator[str]:
    password = secrets.token_urlsafe(24)
    os.environ[PASSWORD_ENV] = password
    yield password
    os.environ.pop(PASSWORD_ENV, None)


@pytest.fixture(scope="session")
def matrix_ports() -> Iterator[Dict[str, int]]:
    """Free loopback ports for the services, so a machine's own server never collides."""
    ports = {}
    for flavor in MATRIX:
        ports[flavor.service] = servers.free_port()
        os.environ[flavor.port_env] = str(ports[flavor.service])
    yield ports
    for flavor in MATRIX:
        os.environ.pop(flavor.port_env, None)


# pytest-docker's fixtures, pointed at docker/compose.yml.

@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"mydiag-matrix-{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup(matrix_password: str, matrix_ports: Dict[str, int]) -> list:
    # The password and ports are in the environment before compose reads the file.
    return ["up --wait --quiet-pull"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list:
    return ["down --volumes --remove-orphans"]


@pytest.fixture(scope="session")
def matrix(docker_engine, matrix_password: str, request) -> Dict[str, Service]:
    """Every service of the matrix, up and accepting root logins."""
    try:
        services = request.getfixturevalue("docker_services")
    except Exception as exc:  # noqa: BLE001 - pytest-docker raises plain Exception
        first = (str(exc).strip().splitlines() or ["failed"])[0]
        pytest.fail(f"docker compose could not start the matrix: {first}", pytrace=False)
    ip = request.getfixturevalue("docker_ip")
    running = {}
    for flavor in MATRIX:
        service = Service(flavor, ip, services.port_for(flavor.service, 3306), matrix_password)
        _wait_for_login(service)
        running[flavor.service] = service
    return running


def _wait_for_login(service: Service, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            service.connect().close()
            return
        except pymysql.err.MySQLError as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"{service.flavor.service} did not accept a root login within "
                            f"{timeout:g}s: {exc.args[-1]}", pytrace=False)
            time.sleep(1)


@pytest.fixture(params=[f.service for f in MATRIX])
def service(request, matrix: Dict[str, Service]) -> Service:
    return matrix[request.param]
