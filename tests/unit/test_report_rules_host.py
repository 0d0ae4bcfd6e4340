"""The host rules (OS-*): each fires on its trigger, stays quiet on a healthy host, says
"insufficient" on a window too short or cut, and never errors on a hostile bundle."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import report.catalog  # noqa: F401 - declares every rule
from report import facts, registry
from report.engine import evaluate
from tests.reportkit import make_bundle

GIB = 1 << 30


def run(rule_id: str, **kwargs: Any) -> Any:
    report = evaluate(make_bundle(**kwargs), [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def status(rule_id: str, **kwargs: Any) -> str:
    result = run(rule_id, **kwargs)
    return "finding" if hasattr(result, "summary") else result.status


def vmstat(per_second: Dict[str, float], samples: int = 6, running: Any = 1) -> List[Dict[str, Any]]:
    rows = []
    for i in range(samples):
        rows.append({"window_seconds": None if i == 0 else 10.0, "procs_running": running,
                     "counters": {k: 1000 + v * 10 * i for k, v in per_second.items()}})
    return rows


def cpu(field: str, values: List[float]) -> List[Dict[str, Any]]:
    return [{"window_seconds": None if i == 0 else 10.0, "total": {"iowait": 0.0, "steal": 0.0, field: v}}
            for i, v in enumerate(values)]


def disks(util: List[float], await_ms: float = 1.0, iops: float = 500.0) -> List[Dict[str, Any]]:
    return [{"window_seconds": None if i == 0 else 10.0,
             "disks": {"sda": {"util_percent": u, "await_ms": await_ms, "reads_per_s": iops,
                               "writes_per_s": 0}}}
            for i, u in enumerate(util)]


def test_swap_activity_fires_on_swapping_and_not_on_a_quiet_host():
    assert status("OS-01", jsonl={"os/vmstat.jsonl": vmstat({"pswpin": 50, "pswpout": 80})}) == "finding"
    assert run("OS-01", jsonl={"os/vmstat.jsonl": vmstat({"pswpin": 2000, "pswpout": 0})}).severity == "error"
    assert status("OS-01", jsonl={"os/vmstat.jsonl": vmstat({"pswpin": 0, "pswpout": 1})}) == "passed"


def test_swap_activity_guards_one_sample_and_a_reset():
    assert status("OS-01", jsonl={"os/vmstat.jsonl": vmstat({"pswpin": 50, "pswpout": 80}, samples=1)}) \
        == "insufficient"
    rows = vmstat({"pswpin": 50, "pswpout": 80}, samples=2)
    rows[1]["counters"] = {"pswpin": 0, "pswpout": 0}  # counters went down: a reboot
    assert status("OS-01", jsonl={"os/vmstat.jsonl": rows}) == "insufficient"
    assert status("OS-01") == "insufficient"


def meminfo(swap: int) -> Dict[str, Any]:
    return {"meminfo": {"SwapTotal": swap}, "summary": {"swap_total_bytes": swap}}


def test_swappiness_fires_only_with_swap_present():
    assert status("OS-02", files={"os/sysctl.json": {"vm.swappiness": 60},
                                  "os/meminfo.json": meminfo(GIB)}) == "finding"
    assert status("OS-02", files={"os/sysctl.json": {"vm.swappiness": 1},
                                  "os/meminfo.json": meminfo(GIB)}) == "passed"
    assert status("OS-02", files={"os/sysctl.json": {"vm.swappiness": 60},
                                  "os/meminfo.json": meminfo(0)}) == "not_applicable"


def test_thp_always_fires_and_madvise_passes():
    assert status("OS-03", files={"os/transparent_hugepage.json": {"enabled": "always"}}) == "finding"
    assert status("OS-03", files={"os/transparent_hugepage.json": {"enabled": "madvise"}}) == "passed"


def disk_layout(scheduler: str, rotational: int) -> Dict[str, Any]:
    return {"block_devices": {"dm-0": {"scheduler": None, "built_on": ["nvme0n1"], "queue": {}},
                              "nvme0n1": {"scheduler": scheduler, "built_on": [],
                                          "queue": {"rotational": rotational}},
                              "sdz": {"scheduler": "bfq", "queue": {"rotational": 1}}},
            "filesystems": [{"mountpoint": "/var/lib/mysql", "block_device": "dm-0"}],
            "mysql_paths": {"datadir": {"mountpoint": "/var/lib/mysql"}}}


def test_io_scheduler_follows_the_datadir_through_device_mapper():
    assert status("OS-04", files={"os/disks.json": disk_layout("bfq", 0)}) == "finding"
    assert status("OS-04", files={"os/disks.json": disk_layout("cfq", 1)}) == "finding"
    assert status("OS-04", files={"os/disks.json": disk_layout("none", 0)}) == "passed"
    # sdz (bfq) holds none of MySQL's paths
    assert status("OS-04", files={"os/disks.json": disk_layout("mq-deadline", 1)}) == "passed"


def test_numa_fires_on_several_nodes_with_balancing():
    two = {"node_count": 2, "numa_balancing": 1, "nodes": [{"node": 0}, {"node": 1}]}
    assert status("OS-05", files={"os/numa.json": two}) == "finding"
    calm = dict(two, numa_balancing=0)
    on, off = {"innodb_numa_interleave": "ON"}, {"innodb_numa_interleave": "OFF"}
    assert status("OS-05", files={"os/numa.json": calm}, variables=on) == "passed"
    assert status("OS-05", files={"os/numa.json": calm}, variables=off) == "finding"
    assert status("OS-05", files={"os/numa.json": {"node_count": 1}}) == "not_applicable"


def process(soft: Any, open_files: int = 50, limit: Any = None, rss: int = GIB) -> Dict[str, Any]:
    return {"limits": {"Max open files": {"soft": soft, "hard": soft}}, "open_files": open_files,
            "memory": {"VmRSS": rss}, "cgroup": {"memory": {"limit_bytes": limit}}}


def test_open_files_limit_against_the_caches_and_the_open_files():
    assert status("OS-06", files={"os/mysqld_process.json": process(1024)}) == "finding"  # wants 4161
    assert status("OS-06", files={"os/mysqld_process.json": process(65535)}) == "passed"
    assert status("OS-06", files={"os/mysqld_process.json": process("unlimited")}) == "passed"
    assert status("OS-06", files={"os/mysqld_process.json": process(10000, open_files=9500)}) == "finding"


def test_oom_kills_of_other_processes_are_os07_and_of_mysqld_log02():
    kill = {"readable": True, "events": [{"process": "mariadbd", "time": "2026-12-01T00:00:00Z"}]}
    assert status("OS-07", files={"os/oom_kills.json": kill}) == "passed"  # LOG-02's finding
    assert run("LOG-02", files={"os/oom_kills.json": kill}).severity == "critical"
    other = {"readable": True, "events": [{"process": "java"}]}
    assert run("OS-07", files={"os/oom_kills.json": other}).severity == "warning"
    assert status("OS-07", files={"os/oom_kills.json": {"readable": True, "events": []}}) == "passed"
    assert status("OS-07", files={"os/oom_kills.json": {"readable": False, "events": []}}) == "insufficient"


@pytest.mark.parametrize("rule_id,field,threshold", [("OS-09", "iowait", 20), ("OS-10", "steal", 10)])
def test_cpu_persistence_rules(rule_id, field, threshold):
    high = threshold + 15
    assert status(rule_id, jsonl={"os/proc_stat.jsonl": cpu(field, [0, high, high, 1, high])}) == "finding"
    # only one interval of five is high: not persistent
    assert status(rule_id, jsonl={"os/proc_stat.jsonl": cpu(field, [high, 1, high, 1, 1, 1])}) == "passed"
    # the since-boot row alone (one sample) is no window
    assert status(rule_id, jsonl={"os/proc_stat.jsonl": cpu(field, [high])}) == "insufficient"
    assert status(rule_id, jsonl={"os/proc_stat.jsonl": cpu(field, [high, high])}) == "insufficient"


def test_disk_saturation_by_util_and_by_await():
    assert status("OS-11", jsonl={"os/diskstats.jsonl": disks([0, 99, 97, 95])}) == "finding"
    assert status("OS-11", jsonl={"os/diskstats.jsonl": disks([0, 10, 20, 15], await_ms=40)}) == "finding"
    # a slow await on a handful of I/Os is no saturation
    assert status("OS-11", jsonl={"os/diskstats.jsonl": disks([0, 10, 20, 15], await_ms=40, iops=1)}) \
        == "passed"
    assert status("OS-11", jsonl={"os/diskstats.jsonl": disks([0, 10, 20, 95])}) == "passed"
    assert status("OS-11", jsonl={"os/diskstats.jsonl": disks([99, 99])}) == "insufficient"


def test_run_queue_against_the_cpus():
    cpus = {"os/cpuinfo.json": {"usable": 4, "logical": 4}}
    assert status("OS-12", files=cpus, jsonl={"os/vmstat.jsonl": vmstat({}, running=20)}) == "finding"
    assert status("OS-12", files=cpus, jsonl={"os/vmstat.jsonl": vmstat({}, running=5)}) == "passed"
    # a cgroup quota of one CPU makes 5 runnable tasks a queue
    quota = dict(cpus, **{"os/mysqld_process.json": {"cgroup": {"cpu": {"quota_cpus": 1}}}})
    assert status("OS-12", files=quota, jsonl={"os/vmstat.jsonl": vmstat({}, running=5)}) == "finding"
    assert status("OS-12", files=cpus, jsonl={"os/vmstat.jsonl": vmstat({}, samples=2, running=20)}) \
        == "insufficient"


def test_kernel_log_errors():
    bad = {"readable": True, "counts": {"io_error": 3, "hung_task": 0},
           "events": [{"kind": "io_error", "message": "I/O error, dev sdb"}]}
    assert run("OS-13", files={"os/kernel_log.json": bad}).severity == "critical"
    hung = {"readable": True, "counts": {"hung_task": 1}}
    assert run("OS-13", files={"os/kernel_log.json": hung}).severity == "error"
    assert status("OS-13", files={"os/kernel_log.json": {"readable": True, "counts": {"segfault": 2}}}) \
        == "passed"


def test_direct_reclaim():
    assert status("OS-14", jsonl={"os/vmstat.jsonl": vmstat({"allocstall": 5, "pgscan_direct": 0})}) \
        == "finding"
    assert status("OS-14", jsonl={"os/vmstat.jsonl": vmstat({"pgscan_direct": 5000})}) == "finding"
    assert status("OS-14", jsonl={"os/vmstat.jsonl": vmstat({"allocstall": 0, "pgscan_direct": 10})}) \
        == "passed"
    assert status("OS-14", jsonl={"os/vmstat.jsonl": vmstat({"pgfault": 10})}) == "insufficient"


def with_rates(rows: List[Dict[str, Any]], stalls: List[float]) -> List[Dict[str, Any]]:
    """The sampler's per-interval rates beside its counters (the first row's are since boot)."""
    return [{**row, "rates": {"allocstall_per_s": 100.0 if i == 0 else stalls[i - 1],
                              "pgscan_direct_per_s": 0.0}} for i, row in enumerate(rows)]


def test_direct_reclaim_says_in_how_many_intervals_it_stalled():
    rows = with_rates(vmstat({"allocstall": 5}), [5, 12, 0, 30, 8])
    finding = run("OS-14", jsonl={"os/vmstat.jsonl": rows})
    assert finding.evidence[0].values["share_of_intervals"] == 0.8  # the since-boot row left out
    assert "in 80% of its intervals" in finding.summary
    one = run("OS-14", jsonl={"os/vmstat.jsonl": with_rates(vmstat({"allocstall": 5}, samples=2), [5])})
    assert "share_of_intervals" not in one.evidence[0].values
    hostile = [{**row, "rates": ["x"] if i % 2 else {"allocstall_per_s": "NaN", "pgscan_direct_per_s": {}}}
               for i, row in enumerate(vmstat({"allocstall": 5}))]
    assert run("OS-14", jsonl={"os/vmstat.jsonl": hostile}).evidence[0].values["allocstall_per_s"] == 5


HOSTILE = ["x", 7, None, [1, 2], {"a": "NaN"}, {"limits": ["x"], "cgroup": "x", "memory": [1]},
           {"node_count": "1e400", "nodes": "x", "numa_balancing": "NaN"},
           {"block_devices": ["x"], "filesystems": {"a": 1}, "mysql_paths": [1]},
           {"events": "x", "counts": ["x"], "readable": "yes"}, {"enabled": ["always"]}]
PATHS = ["os/sysctl.json", "os/meminfo.json", "os/transparent_hugepage.json", "os/disks.json",
         "os/numa.json", "os/mysqld_process.json", "os/host.json", "os/cpuinfo.json",
         "os/oom_kills.json", "os/kernel_log.json"]
ROWS = [{"window_seconds": "x", "counters": "NaN", "total": [1], "disks": {"sda": "x"},
         "procs_running": "1e999"},
        {"window_seconds": 10, "counters": {"pswpin": "huge", "allocstall": 1e308},
         "total": {"iowait": "NaN", "steal": None}, "disks": {"sda": {"util_percent": "x", "await_ms": []}}},
        {"window_seconds": 10, "counters": {"pswpin": 10 ** 30}, "total": "x", "disks": ["x"],
         "procs_running": 10 ** 30}]


SAMPLED = ("os/vmstat.jsonl", "os/proc_stat.jsonl", "os/diskstats.jsonl")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_host_rules_never_error_on_hostile_members(hostile):
    host_rules = [r for r in registry.all_rules() if r.group == "host"]
    bundle = make_bundle(variables={"innodb_buffer_pool_size": "lots", "table_open_cache": "NaN"},
                         files={path: hostile for path in PATHS},
                         jsonl={p: ROWS for p in SAMPLED})
    report = evaluate(bundle, host_rules)
    assert [o for o in report.outcomes if o.status == "error"] == []
    assert len(host_rules) >= 8 and sum(r.window for r in host_rules) >= 5


# -- report/facts.py: the host facts the host and connection rules read -----------------------

def test_cores_is_the_affinity_lowered_by_a_cgroup_quota_and_none_when_malformed():
    def cores(cpuinfo: Any, quota: Any = None, where: str = "os/mysqld_process.json") -> Any:
        files = {"os/cpuinfo.json": cpuinfo, where: {"cgroup": {"cpu": {"quota_cpus": quota}}}}
        return facts.cores(make_bundle(files=files))
    assert cores({"logical": 8, "usable": 4}) == 4
    assert cores({"logical": 8, "usable": 4}, quota=2.5) == 2.5
    assert cores({"logical": 8, "usable": 4}, quota=6, where="os/host.json") == 4
    assert cores({"logical": 8, "usable": 0}) == 8  # a zero affinity count is not a count
    assert cores({"logical": "NaN", "usable": 1e9}) is None
    assert cores({"logical": "x"}, quota=2) == 2
    assert cores(["x"], quota="-1") is None


def test_swap_total_and_intervals_leave_out_what_is_not_there():
    assert facts.swap_total(make_bundle(files={"os/meminfo.json": {"summary": {"swap_total_bytes": 5}}})) == 5
    assert facts.swap_total(make_bundle(files={"os/meminfo.json": ["x"]})) is None
    rows = [{"window_seconds": None, "total": {"busy": 99}}, {"window_seconds": "x", "total": {"busy": 1}},
            {"window_seconds": 10, "total": {"busy": 2}}, {"window_seconds": -5, "total": {"busy": 3}}]
    window = facts.intervals(make_bundle(jsonl={"os/proc_stat.jsonl": rows}), "os/proc_stat.jsonl", "total")
    assert [values["busy"] for _t, values in window.samples] == [2]


def test_a_run_queue_of_other_processes_is_a_notice():
    cpus = {"os/cpuinfo.json": {"logical": 2, "usable": 2}}
    busy_host = {"os/vmstat.jsonl": vmstat({}, running=20)}
    quiet_mysqld = [{"Threads_running": 1}] * 6
    assert run("OS-12", files=cpus, jsonl=busy_host, status=quiet_mysqld).severity == "notice"
    busy_mysqld = [{"Threads_running": 12}] * 6
    assert run("OS-12", files=cpus, jsonl=busy_host, status=busy_mysqld).severity == "warning"


@pytest.mark.parametrize("rule_id,path,event", [
    ("OS-13", "os/kernel_log.json", {"kind": "io_error", "message": "I/O error, dev sdb"}),
    ("OS-07", "os/oom_kills.json", {"process": "java"}),
])
def test_kernel_events_from_before_this_mysqld_started_are_a_notice(rule_id, path, event):
    # reportkit's first status sample is at 10:00 with an uptime of one day: mysqld started
    # the day before at 10:00.
    def data(when: str) -> Dict[str, Any]:
        body: Dict[str, Any] = {"readable": True, "events": [{**event, "time": when}]}
        if rule_id == "OS-13":
            body["counts"] = {"io_error": 1}
        return body
    status_rows = [{"Uptime": 86400 + 10 * i} for i in range(3)]
    old = run(rule_id, files={path: data("2026-11-30T08:00:00Z")}, status=status_rows)
    assert old.severity == "notice" and "before mysqld's current run" in old.summary
    new = run(rule_id, files={path: data("2026-12-02T09:00:00Z")}, status=status_rows)
    assert new.severity in ("warning", "critical") and "before" not in new.summary
