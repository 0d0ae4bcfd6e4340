"""Remote sessions when a server process dies: three `mydiag-server run --ssh-listen`
processes on one data directory and PostgreSQL, behind HAProxy. The engineer's process
SIGKILLed mid-session (the session is cut cleanly, the engineer rejoins through another
process), and the process holding the customer's tunnel SIGKILLed (the engineer's channel
ends saying so; the customer's host redials through the balancer, and the engineer joins
again)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.test_session_faults import _sleepers
from tests.integration.test_sessions_across_processes import actions, held_by, start, start_cluster
from tests.serverkit import _database
from tests.sessionkit import Grant, wait_until

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def postgres():
    yield from _database("postgresql")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres):
    found = start_cluster(tmp_path_factory.mktemp("cluster"), postgres)
    yield found
    found.stop()


def _kill(gateway) -> None:
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait(10)


def test_the_engineers_process_killed_mid_session(cluster, tmp_path):
    one, two, three = cluster.gateways
    ticket = one.server.ticket()
    grant = Grant(one, ticket, tmp_path / "home", extra=held_by(one)).ready()
    try:
        engineer = two.ssh_popen("alice", grant.id, "sleep 4343 && echo never")
        grant.wait_for("alice ran: sleep 4343")
        wait_until(lambda: _sleepers("sleep 4343"))
        began = time.monotonic()
        _kill(two)
        engineer.wait(10)
        gone = time.monotonic() - began
        assert engineer.returncode == 255, engineer.stderr.read()
        assert gone < 2.0, f"the engineer's ssh took {gone:.2f}s to end after its process died"
        # Cut cleanly: what the engineer started ends on the customer's host, the part is closed
        # on both sides with matching chains, and the tunnel stays up.
        wait_until(lambda: not _sleepers("sleep 4343"), timeout=5)
        grant.wait_for("part 1, exit")
        part = wait_until(lambda: [e for e in actions(one, ticket["id"], grant.id)
                                   if e["action"] == "session.part"])
        assert part[0]["detail"]["agent_head_matches"] is True, part
        again = three.ssh("alice", grant.id, "echo", "back through process 3")
        assert again.returncode == 0 and again.stdout == "back through process 3\n", again.stderr
    finally:
        grant.stop()
        if two.process is not None and two.process.poll() is not None:
            start(two, cluster.balancer.ssh_port)  # the same ports again, for the next test
    replayed = one.server.cli("session", "replay", grant.id, "--instant")
    assert "back through process 3" in replayed.stdout and replayed.stderr.count("verified") == 2
    states = [e["detail"]["state"] for e in actions(one, ticket["id"], grant.id)
              if e["action"] == "session.tunnel"]
    assert states == ["up"]


def test_the_tunnel_holder_killed_mid_session(cluster, tmp_path):
    ticket = cluster.gateways[0].server.ticket()
    # The grant names the balancer (--ssh-advertise): the host's redial lands on a live process.
    grant = Grant(cluster.gateways[0], ticket, tmp_path / "home").ready()
    assert grant.info["join"] == f"ssh -p {cluster.balancer.ssh_port} alice@127.0.0.1 {grant.id}"
    held = cluster.holder_of(ticket["id"], grant.id)
    holder = cluster.gateways[held]
    other = cluster.gateways[(held + 1) % 3]
    try:
        engineer = other.ssh_popen("alice", grant.id, "sleep 4444 && echo never")
        grant.wait_for("alice ran: sleep 4444")
        # The holder has begun its copy of the recording (its join entry is written just then).
        wait_until(lambda: any(e["action"] == "session.join" for e in actions(other, ticket["id"], grant.id)))
        began = time.monotonic()
        _kill(holder)
        engineer.wait(10)
        ended = time.monotonic() - began
        said = engineer.stderr.read().decode()
        assert engineer.returncode == 255
        assert f"the server process holding session {grant.id} stopped" in said, said
        assert "join again" in said
        assert ended < 2.0, f"the engineer's channel stayed open {ended:.2f}s after its holder died"
        wait_until(lambda: not _sleepers("sleep 4444"), timeout=5)
        grant.wait_for("tunnel lost")
        grant.wait_for("tunnel restored", timeout=20)
        now_held = cluster.holder_of(ticket["id"], grant.id)
        assert now_held != held
        # Any live process admits the engineer again: the new holder itself and the third one.
        for gateway in [g for i, g in enumerate(cluster.gateways) if i != held]:
            again = gateway.ssh("alice", grant.id, "echo", "rejoined")
            assert again.returncode == 0 and again.stdout == "rejoined\n", again.stderr
        front = cluster.through_balancer.ssh("alice", grant.id, "echo", "through the balancer")
        assert front.returncode == 0 and front.stdout == "through the balancer\n", front.stderr
    finally:
        grant.stop()
    assert grant.process.returncode == 0
    # The server's copy of the part its holder was writing when it died is cut off, and says so;
    # the parts after it verify, and the host's own copy of every part does.
    replayed = other.server.cli("session", "replay", grant.id, "--instant", check=False)
    assert replayed.returncode == 8 and "rejoined" in replayed.stdout
    assert "1.cast: NOT VERIFIED" in replayed.stderr and "cut off" in replayed.stderr
    assert replayed.stderr.count(": verified") == 3, replayed.stderr
    here = grant.cli("session", "replay", grant.id, "--instant")
    assert here.returncode == 0 and here.stderr.count("verified") == 4, here.stderr
    trail = actions(other, ticket["id"], grant.id)
    assert [e["detail"]["state"] for e in trail if e["action"] == "session.tunnel"][:2] == ["up", "up"]
    assert sum(e["action"] == "session.join" for e in trail) == 4
