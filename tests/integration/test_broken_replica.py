"""A broken replica and its primary: the replica's SQL thread stops on a duplicate key
(a row written on the replica by hand, then on the primary), as it does in real tickets.
The replica's bundle shows the stopped thread and the error in every sample, without the
row's values; the primary's bundle lists the replica it still feeds."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from tests import secretkit, servers
from tests.conftest import Target, _start
from tests.helpers import bundle_files, by_name, collect_json


@pytest.fixture()
def broken_pair(tmp_path_factory):
    primary = _start(tmp_path_factory, "bprimary", "--log-bin=binlog", "--server-id=21")
    replica = _start(tmp_path_factory, "breplica", "--log-bin=binlog", "--server-id=22",
                     "--report-host=replica-b")
    try:
        servers.make_replica(primary, replica, secrets.token_urlsafe(12))
        yield Target("127.0.0.1", primary.port, "root", "", primary), \
            Target("127.0.0.1", replica.port, "root", "", replica)
    finally:
        replica.kill()
        primary.kill()


def _wait(check, seconds: float = 20.0):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_broken_replica_shows_its_error_in_every_sample_and_its_primary_lists_it(broken_pair, tmp_path):
    primary, replica = broken_pair
    secret = "row-" + secrets.token_urlsafe(16)
    primary.instance.sql("CREATE DATABASE shop", "CREATE TABLE shop.c (id INT PRIMARY KEY, note VARCHAR(80))")
    _wait(lambda: replica.instance.sql("SELECT COUNT(*) FROM information_schema.TABLES"
                                       " WHERE TABLE_SCHEMA = 'shop'")[0][0] == 1)
    replica.instance.sql("SET SESSION sql_log_bin = 0", "INSERT INTO shop.c VALUES (1, 'by hand')")
    primary.instance.sql(f"INSERT INTO shop.c VALUES (1, '{secret}')")
    _wait(lambda: any(r[0] == "Slave_SQL_Running" and r[1] == "No" for r in
                      _status(replica)))
    # The server quotes the statement with its literal (binlog_format=MIXED logs it as a
    # statement): this is what must not reach the bundle.
    assert secret in dict(_status(replica))["Last_SQL_Error"]
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(replica.port), "--user", "root",
                                 "--samples", "3", "--interval", "0.5", "--output", str(tmp_path / "r"))
    assert summary is not None, done.stderr
    files = bundle_files(summary["bundle"])
    jsonl = files["mysql/replication/replica_status.jsonl"].decode()
    samples = [json.loads(line) for line in jsonl.splitlines()]
    assert [s["sample"] for s in samples] == [0, 1, 2]
    for sample in samples:
        channel = sample["channels"][0]
        assert channel["Slave_SQL_Running"] == "No" and channel["Slave_IO_Running"] == "Yes"
        assert str(channel["Last_SQL_Errno"]) == "1062", channel
        assert "Duplicate entry" in channel["Last_SQL_Error"]
    for blob in files.values():
        assert not any(form in blob for form in secretkit.forms(secret)), "the row's value leaked"
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(primary.port), "--user", "root",
                                 "--samples", "1", "--output", str(tmp_path / "p"))
    assert summary is not None, done.stderr
    assert by_name(summary)["mysql.replicas"]["status"] == "ok"
    hosts = json.loads(bundle_files(summary["bundle"])["mysql/replication/replica_hosts.json"])
    assert [str(h.get("Port")) for h in hosts["replicas"]] == [str(replica.port)], hosts
    assert hosts["replicas"][0].get("Host") == "replica-b"


def _status(target: Target) -> list:
    import pymysql.cursors

    with target.connect(cursorclass=pymysql.cursors.DictCursor) as conn, conn.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone() or {}
    return list(row.items())
