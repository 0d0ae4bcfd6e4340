"""The SSH gateway under a flood of connections that never authenticate, on a real
`mydiag-server run --ssh-listen` process: idle sockets are capped (in all and per source
address), the rest are closed at once, an unauthenticated connection ends at its
deadline, the process's threads stay bounded, and a real `ssh` join still works."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.serverkit import make_server
from tests.sessionkit import Gateway, Grant, wait_until

pytestmark = pytest.mark.server

TOTAL_CAP = 64
PER_ADDRESS_CAP = 8
DEADLINE = 8.0
FLOOD = 400


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("flood")
    server = make_server(base, None)
    config = json.loads(server.data.joinpath("config.json").read_text())
    config["limits"].update(ssh_max_unauthenticated=TOTAL_CAP,
                            ssh_max_unauthenticated_per_address=PER_ADDRESS_CAP,
                            ssh_auth_deadline_seconds=DEADLINE)
    server.data.joinpath("config.json").write_text(json.dumps(config))
    gw = Gateway(server, 0, base)
    gw.start()
    gw.engineer("alice")
    yield gw
    gw.server.stop()


def threads(gateway: Gateway) -> int:
    assert gateway.process is not None
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def flood(port: int, sources: List[str], count: int) -> List[socket.socket]:
    """`count` TCP connections that never say a word, spread over `sources` (127.x.y.z)."""
    made = []
    for i in range(count):
        sock = socket.socket()
        sock.bind((sources[i % len(sources)], 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        made.append(sock)
    return made


def closed_by_server(sock: socket.socket, wait: float = 0.0) -> bool:
    """Whether the server closed this connection (EOF or reset), reading what it sent."""
    deadline = time.monotonic() + wait
    while True:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        if time.monotonic() >= deadline:
            return False


def still_open(socks: List[socket.socket], cap: int, wait: float = 5.0) -> List[socket.socket]:
    """The connections the server keeps, once it has closed all but `cap` (or `wait` passed)."""
    deadline = time.monotonic() + wait
    open_ = list(socks)
    while True:
        open_ = [s for s in open_ if not closed_by_server(s)]
        if len(open_) <= cap or time.monotonic() >= deadline:
            return open_
        time.sleep(0.1)


def close_all(socks: List[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


def settle(gateway: Gateway, baseline: int) -> None:
    """Until the flood of an earlier test has drained from the gateway."""
    wait_until(lambda: threads(gateway) <= baseline + 4, timeout=DEADLINE + 10, step=0.2)


@pytest.fixture(scope="module")
def baseline(gateway) -> int:
    time.sleep(1)
    return threads(gateway)


@pytest.fixture
def ticket(gateway):
    return gateway.server.ticket(customer="acme", title="gateway flood")


def test_idle_sockets_from_one_address_are_capped_and_a_real_join_still_works(gateway, baseline, ticket,
                                                                             tmp_path):
    grant = Grant(gateway, ticket, tmp_path / "home", mode="shell").ready()
    with_tunnel = threads(gateway)
    socks = flood(gateway.ssh_port, ["127.0.0.7"], FLOOD)
    try:
        held = still_open(socks, PER_ADDRESS_CAP)
        assert len(held) <= PER_ADDRESS_CAP, f"{len(held)} connections held before authenticating"
        # Two threads per connection waiting for authentication, and no more.
        assert threads(gateway) <= with_tunnel + 2 * PER_ADDRESS_CAP + 4, threads(gateway)
        joined = gateway.ssh("alice", grant.id, "echo", "still in")
        assert joined.returncode == 0 and joined.stdout == "still in\n", joined.stderr
        assert threads(gateway) <= with_tunnel + 2 * PER_ADDRESS_CAP + 8
    finally:
        close_all(socks)
        grant.stop()
    assert "Traceback" not in gateway.server.logs()


def test_a_flood_from_many_addresses_is_capped_in_all(gateway, baseline):
    settle(gateway, baseline)
    sources = [f"127.0.{n // 250 + 1}.{n % 250 + 1}" for n in range(100)]
    socks = flood(gateway.ssh_port, sources, FLOOD)
    try:
        held = still_open(socks, TOTAL_CAP)
        assert len(held) <= TOTAL_CAP, f"{len(held)} connections held before authenticating"
        assert threads(gateway) <= baseline + 2 * TOTAL_CAP + 4, threads(gateway)
        # Over the cap is closed at once: a new one is closed well before any deadline.
        [late] = flood(gateway.ssh_port, ["127.0.9.9"], 1)
        socks.append(late)
        assert closed_by_server(late, wait=1.0)
        # The held ones end at the authentication deadline, and the gateway takes new ones again.
        assert not still_open(held, 0, wait=DEADLINE + 2)
        [fresh] = flood(gateway.ssh_port, ["127.0.9.10"], 1)
        socks.append(fresh)
        assert fresh.recv(64).startswith(b"SSH-2.0-")
        assert closed_by_server(fresh, wait=0.5) is False
    finally:
        close_all(socks)


@pytest.mark.parametrize("says", [b"", b"SSH-2.0-dribbler\r\n", b"SSH-2.0-half"])
def test_an_unauthenticated_connection_ends_at_its_deadline(gateway, baseline, says):
    settle(gateway, baseline)
    [sock] = flood(gateway.ssh_port, ["127.0.0.8"], 1)
    try:
        sock.sendall(says)
        began = time.monotonic()
        assert closed_by_server(sock, wait=DEADLINE + 3)
        assert DEADLINE - 1.0 <= time.monotonic() - began <= DEADLINE + 2.5
    finally:
        sock.close()


def test_the_gateway_is_back_to_its_baseline_after_the_floods(gateway, baseline):
    settle(gateway, baseline)
    assert threads(gateway) <= baseline + 4
