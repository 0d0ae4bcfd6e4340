"""The report on real servers: a MariaDB configured with known problems under a matching
workload (tests/reportscenarios.py `troubled`) must report each of them, its broken replica
must be reported with the replica's own error text, and a server configured the way the
docs recommend for this host (`well_configured`) must yield no finding of warning or worse.

Each server is started, loaded and collected once for the module (`mydiag collect`, then
`mydiag report --json`); the outcomes of every rule come from the engine on the same bundle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from report import catalog  # noqa: F401  (registers the rules)
from report.engine import evaluate
from report.model import Bundle
from tests import reportscenarios as rs

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

#: Each problem `troubled` configures → the rule ids that must all report it, and texts that
#: must appear in those findings (summary or evidence) so that the right thing is named.
EXPECTED: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "tiny buffer pool under load": (("IBP-01",), ("innodb_buffer_pool_size",)),
    "query cache on": (("QC-01", "QC-02"), ("query_cache_size",)),
    "thread cache 0 with connection churn": (("CONN-01",), ("thread_cache_size=0",)),
    "binlog sync off": (("BIN-01",), ("sync_binlog=0",)),
    "binlog format not ROW": (("BIN-02",), ("STATEMENT",)),
    "redo log too small": (("REDO-03",), ("innodb_log_file_size",)),
    "flush at commit off": (("REDO-05",), ("innodb_flush_log_at_trx_commit=2",)),
    "account without password": (("SEC-01",), ("'app'@'%'",)),
    "anonymous account": (("SEC-02",), ("''@'localhost'",)),
    "root from any host": (("SEC-03",), ("'root'@'%'",)),
    "tables without primary key": (("SCH-01",), ("shop.customers", "shop.events", "shop.legacy")),
    "MyISAM tables": (("SCH-02",), ("shop.legacy",)),
    "temp tables to disk": (("TMP-01", "PFS-03"), ("GROUP BY `note`",)),
    "tiny table cache": (("TBL-01",), ("table_open_cache",)),
    "max_connections reached": (("CONN-04", "CONN-05"), ("max_connections",)),
    "aborted connects": (("CONN-02", "LOG-05"), ("Access denied",)),
    "join buffer too large": (("TMP-07",), ("join_buffer_size",)),
    "sort merge passes": (("TMP-03",), ("sort_buffer_size",)),
    "full joins": (("TMP-04",), ("Select_full_join",)),
    "binlog cache to disk": (("BIN-03",), ("binlog_cache_size",)),
    "doublewrite off": (("REDO-07",), ("innodb_doublewrite",)),
    "local_infile on": (("SEC-06",), ("local_infile",)),
}

#: Rules about the host's contention (run queue, iowait, steal, a saturated disk). The test
#: machine has 2 CPUs shared with other work (and with this test and the collector); on the
#: well-configured server they are tolerated only while the server itself is not the cause:
#: its Threads_running averages at or below the CPU count over the window.
HOST_CONTENTION = {"OS-09", "OS-10", "OS-11", "OS-12"}
#: Rules on the host's kernel log (OOM kills of other processes, I/O and filesystem errors):
#: other tests on this machine write such events. Tolerated on the well-configured server only
#: when every event they name happened before that server was started.
KERNEL_LOG = {"OS-07", "OS-13"}

BAD = ("warning", "error", "critical")


def _report_json(bundle: Path) -> List[Dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "agent.cli", "report", str(bundle), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


class Collected:
    def __init__(self, bundle: Path, extra: Dict[str, Any] = None) -> None:
        self.bundle = bundle
        self.findings = _report_json(bundle)
        self.report = evaluate(Bundle.open(bundle))
        self.extra = extra or {}

    def by_rule(self) -> Dict[str, Dict[str, Any]]:
        return {f["rule"]: f for f in self.findings}

    def listing(self) -> str:
        return "\n".join(f"  {f['rule']} {f['severity']}: {f['summary']}" for f in self.findings)


@pytest.fixture(scope="module")
def troubled(tmp_path_factory):
    base = tmp_path_factory.mktemp("troubled")
    with rs.started("troubled", base / "servers") as scenario:
        with rs.Load(scenario) as load:
            bundle = rs.collect(scenario, base / "primary-bundle")
        # The replica broke before the window and stays broken: collected after the load.
        with scenario.replica.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            names = [d[0] for d in cur.description]
            replica_status = dict(zip(names, cur.fetchone()))
        replica_bundle = rs.collect_replica(scenario, base / "replica-bundle")
        errors = list(load.errors)
    return {"primary": Collected(bundle, {"load_errors": errors}),
            "replica": Collected(replica_bundle, {"status": replica_status})}


@pytest.fixture(scope="module")
def well_configured(tmp_path_factory):
    base = tmp_path_factory.mktemp("well")
    started = datetime.now(timezone.utc)
    with rs.started("well_configured", base / "servers") as scenario:
        loads = [os.getloadavg()[0]]
        with rs.Load(scenario, healthy=True) as load:
            bundle = rs.collect(scenario, base / "bundle")
        loads.append(os.getloadavg()[0])
        assert not load.errors, load.errors
    return Collected(bundle, {"loadavg": max(loads), "started": started})


def _before(finding: Dict[str, Any], moment: datetime) -> bool:
    """Every event of a kernel-log finding's evidence happened before `moment`."""
    times = [event.get("time") for evidence in finding["evidence"]
             for event in (evidence.get("values") or {}).get("last", []) if isinstance(event, dict)]
    if not times or not all(isinstance(t, str) for t in times):
        return False
    return all(datetime.fromisoformat(t.replace("Z", "+00:00")) < moment for t in times)


@pytest.mark.parametrize("problem", sorted(EXPECTED))
def test_each_configured_problem_is_reported(troubled, problem):
    rules, texts = EXPECTED[problem]
    primary = troubled["primary"]
    found = primary.by_rule()
    missing = [rule for rule in rules if rule not in found]
    why = {o.rule: f"{o.status}: {o.reason}" for o in primary.report.outcomes if o.rule in missing}
    assert not missing, (f"{problem!r}: {missing} did not fire ({why}); the report had:\n"
                         f"{primary.listing()}\nload errors: {primary.extra['load_errors'][:5]}")
    said = " ".join(json.dumps(found[rule], ensure_ascii=False) for rule in rules)
    for text in texts:
        assert text in said, \
            f"{problem!r}: {rules} do not name {text!r}: {said[:1500]}"


def test_the_troubled_server_yields_at_least_20_distinct_expected_rules(troubled):
    fired = set(troubled["primary"].by_rule()) | set(troubled["replica"].by_rule())
    expected = {rule for rules, _texts in EXPECTED.values() for rule in rules} | {"REPL-01"}
    assert len(expected) >= 20
    assert len(expected & fired) >= 20, sorted(expected - fired)


def test_the_broken_replica_is_reported_with_its_own_error(troubled):
    status = troubled["replica"].extra["status"]
    assert status["Slave_SQL_Running"] == "No" and status["Last_SQL_Errno"] == 1049, status
    error = status["Last_SQL_Error"]
    assert "Unknown database 'shop'" in error
    finding = troubled["replica"].by_rule().get("REPL-01")
    assert finding, f"REPL-01 did not fire on the replica:\n{troubled['replica'].listing()}"
    assert finding["severity"] in ("error", "critical")
    values = [e["values"] for e in finding["evidence"]]
    assert any(v.get("Last_SQL_Error") == error and v.get("Last_SQL_Errno") == 1049 for v in values), values
    assert error in finding["summary"]
    # The primary's own bundle holds no replica status: its report says nothing of a stopped thread.
    assert "REPL-01" not in troubled["primary"].by_rule()


def test_the_well_configured_server_yields_no_warning_or_worse(well_configured):
    bad = [f for f in well_configured.findings if f["severity"] in BAD]
    # The server is the cause when its running threads fill the CPUs on average; a peak of
    # three on two loaded CPUs is the host's queue showing in the server, not the reverse.
    running = Bundle.open(well_configured.bundle).window.gauge("Threads_running").avg
    busy = running <= (os.cpu_count() or 1)
    kept = [f for f in bad if not (busy and f["rule"] in HOST_CONTENTION)
            and not (f["rule"] in KERNEL_LOG and _before(f, well_configured.extra["started"]))]
    assert not kept, ("findings of warning or worse on the well-configured server (load average "
                      f"{well_configured.extra['loadavg']:.1f}, Threads_running avg {running}):\n"
                      + "\n".join(f"  {f['rule']} {f['severity']}: {f['summary']}" for f in kept))
    # The same rules that report the troubled server's settings looked at this one and passed.
    assert well_configured.report.window["samples"] == rs.SAMPLES
    outcomes = {o.rule: o for o in well_configured.report.outcomes}
    checked = ("BIN-01", "BIN-02", "QC-01", "REDO-05", "REDO-07", "SEC-01", "SEC-02", "SEC-03", "SCH-01",
               "TMP-07", "SEC-06")
    assert all(rule in outcomes and outcomes[rule].status == "passed" for rule in checked), \
        {rule: (outcomes[rule].status, outcomes[rule].reason) if rule in outcomes else "fired"
         for rule in checked}


@pytest.mark.parametrize("which", ["troubled primary", "troubled replica", "well-configured"])
def test_no_rule_errors_on_a_real_bundle(troubled, well_configured, which):
    collected = {"troubled primary": troubled["primary"], "troubled replica": troubled["replica"],
                 "well-configured": well_configured}[which]
    errors = [(o.rule, o.reason) for o in collected.report.outcomes if o.status == "error"]
    assert not errors, errors
    assert collected.report.rules_run == len(collected.report.findings) + len(collected.report.outcomes)


def test_the_window_of_the_troubled_bundle_is_the_collected_one(troubled):
    window = troubled["primary"].report.window
    assert window["samples"] == rs.SAMPLES and not window["restarted"]
    assert window["seconds"] >= (rs.SAMPLES - 1) * rs.INTERVAL * 0.9
