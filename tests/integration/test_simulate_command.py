"""`mydiag-server simulate` as a user runs it: the issue's figures in JSON, the table, the same
output for the same seed, the whole default run under 10 s of CPU, and bad arguments leaving
with exit 2 and one line."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from server import exitcodes

pytestmark = pytest.mark.server


def simulate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli.main", "simulate", *args],
                          capture_output=True, text=True, timeout=timeout)


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def test_the_default_run_meets_the_issues_goal_within_ten_seconds():
    before = _children_cpu()
    done = simulate("--tickets", "1000", "--days", "30", "--load", "0.85", "--engineers", "8",
                    "--estimate-error", "0.5", "--seed", "1", "--json")
    cpu = _children_cpu() - before
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tickets"] == 1000 and report["timezones"] == 3 and report["load"] == 0.85
    rows = {row["policy"]: row for row in report["policies"]}
    assert list(rows) == ["edf+admission", "edf", "fifo", "nrt"]
    ours = rows["edf+admission"]
    assert ours["on_time_rate"] == 1.0 and ours["renegotiated_rate"] < 0.05
    for other in ("edf", "fifo", "nrt"):
        assert rows[other]["on_time_rate"] < ours["on_time_rate"]
    for field in ("messages", "on_time_rate", "renegotiated", "refused", "reply_p50_hours",
                  "reply_p95_hours", "max_lateness_hours"):
        assert all(field in row for row in rows.values())
    # CPU time, not wall time: the other tests share the machine's two cores.
    assert cpu < 10.0


def test_the_table_names_every_policy_and_the_same_seed_prints_the_same():
    args = ("--tickets", "100", "--days", "7", "--seed", "3")
    first, second = simulate(*args), simulate(*args)
    assert first.returncode == 0 and first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert lines[0].startswith("simulated 100 tickets")
    assert [line.split()[0] for line in lines[2:]] == ["edf+admission", "edf", "fifo", "nrt"]
    other = simulate("--tickets", "100", "--days", "7", "--seed", "4")
    assert other.stdout != first.stdout


def test_policies_can_be_chosen():
    done = simulate("--tickets", "60", "--days", "5", "--policies", "nrt,edf", "--json")
    assert [row["policy"] for row in json.loads(done.stdout)["policies"]] == ["nrt", "edf"]


@pytest.mark.parametrize("args, says", [
    (("--tickets", "0"), "--tickets must be from 1"),
    (("--tickets", "many"), "invalid int value"),
    (("--tickets", "10" * 20), "--tickets must be from 1"),
    (("--days", "-3"), "--days must be from 1"),
    (("--load", "0"), "--load must be above 0"),
    (("--load", "nan"), "--load must be above 0"),
    (("--load", "inf"), "--load must be above 0"),
    (("--estimate-error", "-1"), "--estimate-error must be from 0"),
    (("--engineers", "0"), "--engineers must be from 1"),
    (("--timezones", "9"), "--timezones must be from 1"),
    (("--reserve", "1"), "--reserve must be from 0"),
    (("--policies", "edf,lottery"), "--policies must be"),
    (("--policies", "edf,edf"), "--policies must be"),
    (("--policies", "<b>\x1b[31m"), "--policies must be"),
    (("--seed",), "expected one argument"),
    (("--tickets", "5", "--colour"), "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_one_line(args, says):
    done = simulate(*args)
    assert done.returncode == exitcodes.USAGE
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mydiag-server: ") and says in lines[0]
    assert "Traceback" not in done.stderr
