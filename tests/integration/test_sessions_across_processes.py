"""Remote sessions across server processes: three `mydiag-server run --ssh-listen` processes
on one data directory and one PostgreSQL database, a real `mydiag session grant` holding
its tunnel to one of them, and the stock OpenSSH client joining through another (directly,
and through HAProxy's TCP frontend). The engineer's process relays to the tunnel's holder
over a peer connection that only the server processes can open."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import paramiko
import pytest

from tests.haproxykit import Balancer
from tests.serverkit import ROOT, _database, make_server, server_cli, wait_ready
from tests.servers import free_port
from tests.sessionkit import Gateway, Grant

pytestmark = pytest.mark.server


@dataclass
class Cluster:
    """Server processes on one data directory, each with its HTTP port and SSH gateway."""

    gateways: List[Gateway]
    balancer: Balancer
    keys: Dict[str, Path]

    @property
    def data(self) -> Path:
        return self.gateways[0].server.data

    @property
    def through_balancer(self) -> Gateway:
        """Talks SSH to the balancer's TCP frontend (HTTP to the first process)."""
        first = self.gateways[0]
        return Gateway(first.server, self.balancer.ssh_port, first.base, self.keys)

    def holder_of(self, ticket: str, session_id: str) -> int:
        """The index of the process whose gateway took the latest tunnel of the session."""
        ups = [e for e in self.gateways[0].audit(ticket)
               if e["subject"] == session_id and e["action"] == "session.tunnel"
               and e["detail"].get("state") == "up"]
        address = ups[0]["detail"]["gateway"]  # newest first
        return [f"127.0.0.1:{g.ssh_port}" for g in self.gateways].index(address)

    def stop(self) -> None:
        self.balancer.stop()
        for gateway in self.gateways:
            gateway.server.stop()


def start(gateway: Gateway, advertise: int) -> None:
    """`mydiag-server run --ssh-listen` on the gateway's ports (again, after a kill), naming the
    balancer's SSH port in its grants (--ssh-advertise)."""
    server = gateway.server
    server.port = server.port or free_port()
    gateway.ssh_port = gateway.ssh_port or free_port()
    with open(server.data / f"server-{server.port}-gw.log", "ab") as log:
        gateway.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "run", "--data", str(server.data), "--listen",
             f"127.0.0.1:{server.port}", "--ssh-listen", f"127.0.0.1:{gateway.ssh_port}",
             "--ssh-advertise", f"127.0.0.1:{advertise}", "--log-level", "warning",
             *(["--database", server.database] if server.database else [])],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server.processes.append(gateway.process)
    wait_ready(server.url, gateway.process)


def start_cluster(base: Path, database: Optional[str], count: int = 3) -> Cluster:
    first = make_server(base, database)
    keys: Dict[str, Path] = {}
    front = free_port()
    gateways = []
    for _ in range(count):
        gateway = Gateway(dataclasses.replace(first, port=0, processes=[]), 0, base, keys)
        start(gateway, front)
        gateways.append(gateway)
    gateways[0].engineer("alice")
    gateways[0].engineer("bob")
    (base / "balancer").mkdir()
    lb = Balancer(base / "balancer", [g.server.port for g in gateways], [g.ssh_port for g in gateways],
                  ssh_port=front).start()
    return Cluster(gateways, lb, keys)


def held_by(gateway: Gateway) -> List[str]:
    """Grant options that make the customer's host dial this process's gateway itself."""
    return ["--gateway", f"127.0.0.1:{gateway.ssh_port}"]


def actions(gateway: Gateway, ticket: str, session_id: str) -> List[Dict]:
    return [e for e in reversed(gateway.audit(ticket)) if e["subject"] == session_id]


@pytest.fixture(scope="module")
def postgres():
    yield from _database("postgresql")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres):
    found = start_cluster(tmp_path_factory.mktemp("cluster"), postgres)
    yield found
    found.stop()


@pytest.fixture
def ticket(cluster):
    return cluster.gateways[0].server.ticket(customer="acme", title="replication lag")


def test_an_engineer_on_another_process_works_in_the_session(cluster, ticket, tmp_path):
    one, two, three = cluster.gateways
    grant = Grant(one, ticket, tmp_path / "home", mode="shell", extra=held_by(one)).ready()
    try:
        assert cluster.holder_of(ticket["id"], grant.id) == 0
        said = two.ssh("alice", grant.id, "echo", "hello from the customer")
        assert said.returncode == 0, said.stderr
        assert said.stdout == "hello from the customer\n"
        failed = two.ssh("alice", grant.id, "ls /no/such/dir; exit 3")
        assert failed.returncode == 3 and "No such file" in failed.stderr
        typed = three.ssh("alice", grant.id, stdin="echo typed-$((40+2))\nexit\n")
        assert typed.returncode == 0 and "typed-42" in typed.stdout
        grant.wait_for("alice typed: echo typed-$((40+2))")
        # A terminal is asked for on the holder too.
        tty = subprocess.run(two.ssh_args("alice", grant.id, "tty; stty size", tty=True), capture_output=True,
                             text=True, timeout=30, input="")
        assert tty.returncode == 0 and "/dev/pts/" in tty.stdout, tty.stdout + tty.stderr
        other = two.ssh("bob", grant.id, "id")
        assert other.returncode == 1 and f"no session {grant.id} is open to bob" in other.stderr
        grant.wait_for("part 4, exit 0")
    finally:
        grant.stop()
    assert grant.process.returncode == 0

    # One recording, written by the holder from the agent's events, byte-identical to the host's.
    remote = one.recordings(grant.id)
    assert sorted(p.name for p in remote.glob("*.cast")) == ["1.cast", "2.cast", "3.cast", "4.cast"]
    for name in ("1.cast", "2.cast", "3.cast", "4.cast", "1.chain", "4.chain"):
        assert (grant.folder / name).read_bytes() == (remote / name).read_bytes(), name
    replayed = two.server.cli("session", "replay", grant.id, "--instant")
    assert "hello from the customer" in replayed.stdout and "typed-42" in replayed.stdout
    assert replayed.stderr.count("verified") == 4

    trail = actions(one, ticket["id"], grant.id)
    joins = [e for e in trail if e["action"] == "session.join"]
    assert len(joins) == 4 and all(e["detail"]["via"].startswith("peer 127.0.0.1") for e in joins)
    parts = [e for e in trail if e["action"] == "session.part"]
    assert len(parts) == 4 and all(e["detail"]["agent_head_matches"] is True for e in parts)
    refusals = [e for e in trail if e["action"] == "session.refuse"]
    assert [e["actor"] for e in refusals] == ["engineer:bob"]
    assert ticket["upload_token"] not in one.server.logs()


def test_through_the_balancer_every_process_reaches_the_session(cluster, ticket, tmp_path):
    grant = Grant(cluster.gateways[0], ticket, tmp_path / "home", mode="shell",
                  extra=held_by(cluster.gateways[0])).ready()
    front = cluster.through_balancer
    try:
        for n in range(3):  # round robin: each process once, two of them relay
            done = front.ssh("alice", grant.id, f"echo via-balancer-{n}")
            assert done.returncode == 0 and done.stdout == f"via-balancer-{n}\n", done.stderr
    finally:
        grant.stop()
    joins = [e for e in actions(front, ticket["id"], grant.id) if e["action"] == "session.join"]
    assert len(joins) == 3 and sum("via" in e["detail"] for e in joins) == 2
    assert len(list(cluster.gateways[0].recordings(grant.id).glob("*.cast"))) == 3


def test_the_diag_console_through_another_process(cluster, ticket, private_server, tmp_path):
    grant = Grant(cluster.gateways[0], ticket, tmp_path / "home", mode="diag",
                  extra=[*held_by(cluster.gateways[0]), "--host", "127.0.0.1", "--port",
                         str(private_server.port), "--user", "root", "--allow-privileged-account"]).ready()
    try:
        answer = cluster.gateways[1].ssh("alice", grant.id, "sql SELECT 40 + 2 AS answer")
        assert answer.returncode == 0 and "| 42     |" in answer.stdout, answer.stdout + answer.stderr
        refused = cluster.through_balancer.ssh("alice", grant.id, "sql DROP DATABASE mysql")
        assert refused.returncode == 1 and "refused:" in refused.stdout
    finally:
        grant.stop()
    replayed = cluster.gateways[2].server.cli("session", "replay", grant.id, "--instant")
    assert "| 42     |" in replayed.stdout and replayed.stderr.count("verified") == 2


def test_revoke_and_expiry_cut_an_engineer_on_another_process_within_a_second(cluster, ticket, tmp_path):
    one, two, three = cluster.gateways
    grant = Grant(one, ticket, tmp_path / "home", extra=held_by(one)).ready()
    engineer = two.ssh_popen("alice", grant.id, "sleep 4242")
    grant.wait_for("alice ran: sleep 4242")
    began = time.monotonic()
    # Revoked through the third process, which holds neither the tunnel nor the engineer.
    three.server.api("POST", f"/api/v1/tickets/{ticket['id']}/sessions/{grant.id}/revoke",
                     {"reason": "done looking"})
    engineer.wait(5)
    cut = time.monotonic() - began
    print(f"\nrevoke on process 3 to the engineer's ssh (on process 2) gone: {cut:.3f}s")
    assert cut < 1.0, f"{cut:.2f}s"
    assert engineer.returncode == 255 and b"done looking" in engineer.stderr.read()
    assert grant.process.wait(10) == 0
    again = two.ssh("alice", grant.id, "id")
    assert again.returncode == 1 and "ended" in again.stderr

    short = Grant(one, ticket, tmp_path / "short", duration="4s", extra=held_by(one)).ready()
    expires = short.state()["expires"]
    waiting = two.ssh_popen("alice", short.id, "sleep 60")
    waiting.wait(15)
    late = time.time() - expires
    print(f"expiry to the engineer's ssh (on process 2) gone: {late:.3f}s")
    assert waiting.returncode == 255 and b"expired" in waiting.stderr.read()
    assert late < 1.0, f"cut {late:.2f}s after the deadline"
    assert short.process.wait(10) == 0
    assert "session.expire" in [e["action"] for e in actions(one, ticket["id"], short.id)]


def _client(port: int) -> paramiko.Transport:
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.start_client(timeout=10)
    return transport


def _refused(port: int, user: str, key: Optional[paramiko.PKey]) -> bool:
    transport = _client(port)
    try:
        if key is None:
            transport.auth_none(user)
        else:
            transport.auth_publickey(user, key)
    except (paramiko.AuthenticationException, paramiko.BadAuthenticationType):
        return True
    finally:
        transport.close()
    return False


def test_the_peer_connection_needs_the_peer_key(cluster, ticket, tmp_path):
    one = cluster.gateways[0]
    port = one.ssh_port
    peer_key_file = cluster.data / "gateway_peer_ed25519_key"
    assert peer_key_file.stat().st_mode & 0o777 == 0o600
    # `init` makes both keys, so every copy of a data directory (one per machine) has the same.
    fresh = tmp_path / "fresh"
    server_cli("init", "--data", str(fresh), "--json")
    for name in ("ssh_host_ed25519_key", "gateway_peer_ed25519_key"):
        assert (fresh / name).stat().st_mode & 0o777 == 0o600

    # A grant of our own, so that we hold a valid customer's tunnel key.
    tunnel_key_file = tmp_path / "tunnel"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tunnel_key_file)], check=True)
    tunnel_key = paramiko.Ed25519Key.from_private_key_file(str(tunnel_key_file))
    request = urllib.request.Request(
        f"{one.url}/api/v1/tickets/{ticket['id']}/sessions", method="POST",
        data=json.dumps({"engineer": "alice", "seconds": 60, "purpose": "peer test", "mode": "shell",
                         "tunnel_key": f"{tunnel_key.get_name()} {tunnel_key.get_base64()}",
                         "host": "db1"}).encode(),
        headers={"Authorization": f"Bearer {ticket['upload_token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        session_id = json.loads(reply.read())["id"]

    alice_key = paramiko.Ed25519Key.from_private_key_file(str(cluster.keys["alice"]))
    assert _refused(port, "peer:alice", alice_key), "an engineer's key opened a peer connection"
    assert _refused(port, "peer:alice", tunnel_key), "a customer's tunnel key opened a peer connection"
    assert _refused(port, "peer:alice", None), "no key opened a peer connection"
    assert _refused(port, f"peer:{session_id}:alice", tunnel_key)
    # The tunnel key is good for what it is for, and the peer key opens a peer connection:
    assert not _refused(port, f"tunnel:{session_id}", tunnel_key)
    assert not _refused(port, "peer:alice", paramiko.Ed25519Key.from_private_key_file(str(peer_key_file)))
    # The stock client with an engineer's key is refused as a peer too.
    as_peer = one.ssh_args("alice", session_id, "id")[:-4] + ["peer:alice@127.0.0.1", session_id]
    stock = subprocess.run(as_peer, capture_output=True, text=True, timeout=30)
    assert stock.returncode == 255 and "Permission denied" in stock.stderr

    everything = json.loads(one.server.api("GET", "/api/v1/audit"))
    refused = [e for e in everything
               if e["action"] == "session.refuse" and e["actor"].startswith("ssh:peer:")]
    assert len(refused) >= 3
