"""The statement budget of a standard collection (issue 12): at most 12 statements per
status sample plus 30 others, counted by the server itself (its general log).

A statement sent at least once per sample belongs to the samples (status, processlist,
InnoDB transactions, lock waits, replica status); whatever else is sent is "other". On
MariaDB 10.11 a standard 5-sample run sent 47 others before the performance_schema
readings, the stored-object lists, the account reads and the dictionary reads were
folded; 30 after.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import List

import pytest

from agent.collect.runner import Options, collect
from collectors.mysql.session import ConnectSpec
from tests.conftest import _start

SAMPLES = 5
PER_SAMPLE, OTHERS = 12, 30
_QUERY = re.compile(r"\s(\d+)\s+Query\s+(.*)$")
_LIMIT = re.compile(r"^SET STATEMENT max_statement_time=\S+ FOR ")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A private server with performance_schema on and every statement in its general log;
    InnoDB tables only (a view or a MyISAM/Aria table adds the catalog's by-name lookups:
    definitions, view definers, primary keys: 3 statements more)."""
    folder = tmp_path_factory.mktemp("budgetlog")
    log = folder / "general.log"
    instance = _start(tmp_path_factory, "budget", "--performance-schema=ON",
                      "--general-log=ON", f"--general-log-file={log}")
    instance.sql("CREATE DATABASE shop",
                 "CREATE TABLE shop.stock (id INT PRIMARY KEY, qty INT) ENGINE=InnoDB",
                 "CREATE TRIGGER shop.tr BEFORE INSERT ON shop.stock FOR EACH ROW SET NEW.qty = NEW.qty",
                 "CREATE PROCEDURE shop.p() SELECT 1")
    yield instance, log
    instance.stop()


def _statements(log, skip: int) -> List[str]:
    texts = []
    for line in log.read_text(errors="replace").splitlines()[skip:]:
        found = _QUERY.search(line)
        if found:
            texts.append(_LIMIT.sub("", found.group(2)))
    return texts


def test_a_standard_collection_keeps_to_its_statement_budget(logged, tmp_path):
    instance, log = logged
    skip = len(log.read_text(errors="replace").splitlines())
    spec = ConnectSpec(host="127.0.0.1", port=instance.port, user="root")
    result = collect(spec, Options(output_dir=tmp_path, samples=SAMPLES, interval=0.3))
    assert result.bundle is not None
    entries = {e.name: e for e in result.manifest.collectors}
    # Folding must not lose a reading: the collectors that folded statements all read.
    for name in ("mysql.performance_schema", "mysql.stored_objects", "mysql.accounts",
                 "mysql.schema", "mysql.table_facts"):
        assert entries[name].status == "ok", (name, entries[name])
    paths = {f.path for f in result.manifest.files}
    for part in ("statement_digests", "statements_by_event", "waits", "file_io", "table_io"):
        assert {f"mysql/performance_schema/{part}.json",
                f"mysql/performance_schema/{part}_end.json"} <= paths
    assert {"mysql/performance_schema/memory.json", "mysql/performance_schema/setup.json"} <= paths

    texts = _statements(log, skip)
    counts = Counter(texts)
    per_sample = sum(n // SAMPLES for n in counts.values() if n >= SAMPLES)
    others = sum(n % SAMPLES if n >= SAMPLES else n for n in counts.values())
    assert per_sample >= 2, counts  # status and processlist at least: the log was read
    assert per_sample <= PER_SAMPLE, counts
    assert others <= OTHERS, "\n".join(sorted(t[:100] for t, n in counts.items() if n < SAMPLES))
    # Nothing but the connection's own settings is sent twice outside the samples.
    twice = [t for t, n in counts.items() if 1 < n < SAMPLES and not t.startswith("SET ")
             and t != "SHOW ENGINE INNODB STATUS" and "ps_digests" not in t]
    assert not twice, twice
