"""A collection leaves the server's table caches as it found them (issue 12).

With 3,000 InnoDB tables (more than table_definition_cache and table_open_cache hold), a
whole standard `mydiag collect` used to open every table twice (Opened_tables +6,000,
the table cache filled to table_open_cache). Measured from a separate connection before
and after, on an emptied cache, the collection now opens at most 10 tables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict

import pytest

from tests import servers
from tests.helpers import bundle_files, bundle_json, by_name, collect_json

TABLES = 3_000
CACHES = ("--table-open-cache=2000", "--table-definition-cache=400")


@pytest.fixture(scope="module")
def catalog_server(tmp_path_factory):
    try:
        instance = servers.create(
            tmp_path_factory.mktemp("tablecache"),
            [*CACHES, "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0"],
        )
    except servers.ServerUnavailable as exc:
        if os.environ.get("MYDIAG_REQUIRE_SERVER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    conn = instance.connect(client_flag=1 << 16)  # CLIENT_MULTI_STATEMENTS
    with conn.cursor() as cur:
        for schema in range(3):
            cur.execute(f"CREATE DATABASE app{schema}")
            cur.execute(";".join(
                f"CREATE TABLE app{schema}.t{n} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB"
                for n in range(TABLES // 3)
            ))
            while cur.nextset():
                pass
    conn.close()
    yield instance
    instance.stop()


def _caches(instance: servers.Instance) -> Dict[str, int]:
    rows = instance.sql(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Opened_tables', 'Open_tables',"
        " 'Opened_table_definitions', 'Open_table_definitions')"
    )
    found = {name: int(value) for name, value in rows}
    found["rss_kib"] = _rss_kib(instance.process.pid)
    return found


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_a_standard_collection_opens_at_most_ten_tables_of_3000(catalog_server, tmp_path):
    catalog_server.restart()  # an empty table cache, and mysqld's memory without our scans
    before = _caches(catalog_server)
    done, summary = collect_json(
        "--host", "127.0.0.1", "--port", str(catalog_server.port), "--user", "root",
        "--output", str(tmp_path), "--samples", "2", "--interval", "0.5", "--allow-findings")
    after = _caches(catalog_server)
    assert summary is not None, done.stderr
    grown = {key: after[key] - before[key] for key in before}
    print("table-cache disturbance:", json.dumps({"before": before, "after": after}))
    assert grown["Opened_tables"] <= 10, grown
    assert after["Open_tables"] <= before["Open_tables"] + 10, grown
    # The definitions of InnoDB tables are never read: only system tables' (and none of
    # the 3,000, which would fill table_definition_cache=400).
    assert grown["Opened_table_definitions"] <= 20, grown
    assert after["Open_table_definitions"] < 400 // 4, grown
    assert grown["rss_kib"] < 32 * 1024, grown  # the old scan: +96 MB

    files = bundle_files(Path(summary["bundle"]))
    overview = bundle_json(files, "mysql/schema_overview.json")
    assert overview["total_tables"] == TABLES
    assert {s["schema"]: s["engines"] for s in overview["schemas"]} == {
        f"app{n}": {"InnoDB": TABLES // 3} for n in range(3)}
    # After a restart InnoDB has not opened the tablespace files: their size is unknown, and
    # said so; the statistics still give data bytes.
    assert all(s["data_bytes"] > 0 for s in overview["schemas"]), overview["schemas"]
    assert sum(s["unsized_files"] for s in overview["schemas"]) > 0
    assert len(overview["top_tables"]) == 50
    assert overview["table_cache"]["table_definition_cache"] == 400
    notes = by_name(summary)["mysql.schema"]["notes"]
    assert any("do not fit the table cache" in n and "table_definition_cache=400" in n
               for n in notes), notes
    assert any("tablespace files not used since start-up have no size yet" in n for n in notes)
    facts = bundle_json(files, "mysql/table_facts.json")
    assert facts["counts"]["non_innodb"] == 0 and facts["without_primary_key"] == []
