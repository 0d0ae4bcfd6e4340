"""The error log rules (report/rules/errorlog.py) on real-format excerpts of MariaDB 10.11 and
MySQL 8 error logs (written here, no secrets), and on hostile logs that must not crash them."""

# The excerpts are error log lines as the servers write them, whole: longer than a code line.
# ruff: noqa: E501

from __future__ import annotations

import json
import time
from typing import Any, Dict, List

import pytest

import report.catalog  # noqa: F401 - declares every rule
from report import registry
from report.engine import evaluate
from report.finding import Finding
from report.model import Bundle
from tests.reportkit import counters, make_bundle

LOG = "logs/error.log"
GIB = 1 << 30

MARIADB_START = """\
2026-11-30 14:02:10 0 [Note] Starting MariaDB 10.11.6-MariaDB-0+deb12u1-log source revision fecd78b83785d5ae96f2c6ff340375be803cd299 as process 812
2026-11-30 14:02:10 0 [Note] InnoDB: Compressed tables use zlib 1.2.13
2026-11-30 14:02:10 0 [Note] InnoDB: Completed initialization of buffer pool
2026-11-30 14:02:11 0 [Note] InnoDB: 128 rollback segments are active.
2026-11-30 14:02:11 0 [Note] Server socket created on IP: '0.0.0.0', port: '3306'.
2026-11-30 14:02:11 0 [Note] /usr/sbin/mariadbd: ready for connections.
Version: '10.11.6-MariaDB-0+deb12u1-log'  socket: '/run/mysqld/mysqld.sock'  port: 3306  Debian 12
"""

MARIADB_CRASH = """\
251130 14:20:43 [ERROR] mysqld got signal 11 ;
Sorry, we probably made a mistake, and this is a bug.

Your assistance in bug reporting will enable us to fix this for the next release.
To report this bug, see https://mariadb.com/kb/en/reporting-bugs

Server version: 10.11.6-MariaDB-0+deb12u1-log source revision: fecd78b83785d5ae96f2c6ff340375be803cd299
key_buffer_size=134217728
read_buffer_size=131072
max_used_connections=41
max_threads=153
thread_count=38
It is possible that mysqld could use up to
key_buffer_size + (read_buffer_size + sort_buffer_size)*max_threads = 468089 K  bytes of memory
Hope that's ok; if not, decrease some variables in the equation.

Thread pointer: 0x7f2c84000c68
Attempting backtrace. Include this in the bug report.
(note: Retrieving this information may fail)

stack_bottom = 0x7f2cb02d7c38 thread_stack 0x49000
/usr/sbin/mariadbd(my_print_stacktrace+0x2e)[0x55d0c1b8a9be]
/usr/sbin/mariadbd(handle_fatal_signal+0x475)[0x55d0c16a3d45]
/lib/x86_64-linux-gnu/libc.so.6(+0x3c050)[0x7f2cb5a5b050]
/usr/sbin/mariadbd(_ZN4JOIN14optimize_innerEv+0x1a2b)[0x55d0c14bf0cb]
/usr/sbin/mariadbd(_ZN4JOIN8optimizeEv+0x5c)[0x55d0c14c02ec]
/usr/sbin/mariadbd(_Z12mysql_selectP3THDP10TABLE_LISTR4ListI4ItemEPS4_jP8st_orderS9_S7_S9_yP13select_resultP18st_select_lex_unitP13st_select_lex+0x8d1)[0x55d0c14c1a11]
/usr/sbin/mariadbd(_Z13handle_selectP3THDP3LEXP13select_resultm+0x19a)[0x55d0c14c23aa]

Trying to get some variables.
Some pointers may be invalid and cause the dump to abort.
Query (0x7f2c84013a30): SELECT * FROM cards WHERE number = '4111111111111111'
Connection ID (thread ID): 1234
Status: NOT_KILLED

Optimizer switch: index_merge=on,index_merge_union=on
2026-11-30 14:20:45 0 [Note] Starting MariaDB 10.11.6-MariaDB-0+deb12u1-log source revision fecd78b83785d5ae96f2c6ff340375be803cd299 as process 9012
2026-11-30 14:20:45 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=1922743
2026-11-30 14:20:46 0 [Note] InnoDB: 128 rollback segments are active.
2026-11-30 14:20:47 0 [Note] /usr/sbin/mariadbd: ready for connections.
Version: '10.11.6-MariaDB-0+deb12u1-log'  socket: '/run/mysqld/mysqld.sock'  port: 3306  Debian 12
"""

MYSQL8_CRASH = """\
2024-08-04T07:51:55.786346Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections. Version: '8.0.36'  socket: '/var/run/mysqld/mysqld.sock'  port: 3306  MySQL Community Server - GPL.
2024-08-04T09:11:59.000100Z 0 [ERROR] [MY-013183] [InnoDB] Assertion failure: btr0cur.cc:336:btr_page_get_prev(get_block->frame, mtr) == page_get_page_no(page) thread 140251771131456
InnoDB: We intentionally generate a memory trap.
InnoDB: Submit a detailed bug report to http://bugs.mysql.com.
2024-08-04T09:12:03Z UTC - mysqld got signal 6 ;
Most likely, you have hit a bug, but this error can also be caused by malfunctioning hardware.
BuildID[sha1]=4c1b1b2a9f7d3e0c55aa11bb22cc33dd44ee55ff
Thread pointer: 0x7f8e2c000b70
Attempting backtrace. You can use the following information to find out
where mysqld died. If you see no messages after this, something went
terribly wrong...
stack_bottom = 7f8e5c1f6bf0 thread_stack 0x100000
/usr/sbin/mysqld(my_print_stacktrace(unsigned char const*, unsigned long)+0x41) [0x5581c2a0b2f1]
/usr/sbin/mysqld(print_fatal_signal(int)+0x387) [0x5581c19e5b27]
/usr/sbin/mysqld(my_server_abort()+0x7e) [0x5581c19e5d4e]
/usr/sbin/mysqld(my_abort()+0xe) [0x5581c2a0582e]
/usr/sbin/mysqld(ut_dbg_assertion_failed(char const*, char const*, unsigned long)+0x349) [0x5581c2d0e5b9]
/usr/sbin/mysqld(btr_cur_latch_leaves(buf_block_t*, unsigned long, unsigned long, btr_cur_t*, mtr_t*)+0x3f1) [0x5581c2d1f0d1]
/usr/sbin/mysqld(Sql_cmd_dml::execute(THD*)+0x1d0) [0x5581c1bd5e00]
Trying to get some variables.
Some pointers may be invalid and cause the dump to abort.
Query (7f8e2c0a1b20): UPDATE accounts SET token = 'abc' WHERE id = 5
Connection ID (thread ID): 88
Status: NOT_KILLED

The manual page at http://dev.mysql.com/doc/mysql/en/crashing.html contains
information that should help you find out what is causing the crash.
2024-08-04T09:12:05.112233Z 0 [System] [MY-010116] [Server] /usr/sbin/mysqld (mysqld 8.0.36) starting as process 4242
2024-08-04T09:12:05.220011Z 1 [System] [MY-013576] [InnoDB] InnoDB initialization has started.
2024-08-04T09:12:05.400000Z 1 [Note] [MY-012551] [InnoDB] Database was not shutdown normally!
2024-08-04T09:12:05.400100Z 1 [Note] [MY-013086] [InnoDB] Starting crash recovery.
2024-08-04T09:12:07.000000Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections. Version: '8.0.36'  socket: '/var/run/mysqld/mysqld.sock'  port: 3306  MySQL Community Server - GPL.
"""

MARIADB_CORRUPTION = """\
2026-11-30 15:00:01 0 [ERROR] InnoDB: Database page corruption on disk or a failed read of file './shop/orders.ibd' page [page id: space=12, page number=3031]. You may have to recover from a backup.
2026-11-30 15:00:01 0 [Note] InnoDB: You can use CHECK TABLE to scan your table for corruption. Please refer to https://mariadb.com/kb/en/library/innodb-recovery-modes/ for information about forcing recovery.
2026-11-30 15:00:02 7 [ERROR] mariadbd: Table './app/sessions' is marked as crashed and should be repaired
"""

MYSQL8_CORRUPTION = """\
2024-08-04T10:00:00.123456Z 0 [ERROR] [MY-011906] [InnoDB] Database page corruption on disk or a failed file read of page [page id: space=5, page number=3]. You may have to recover from a backup.
2024-08-04T10:00:00.123500Z 0 [ERROR] [MY-011937] [InnoDB] Page [page id: space=5, page number=3] log sequence number 90473022 is in the future! Current system log sequence number 4407.
"""


def mariadb_aborted(count: int, reason: str = "Got timeout reading communication packets") -> str:
    return "".join(f"2026-11-30 16:{i // 60 % 60:02d}:{i % 60:02d} {i} [Warning] Aborted connection {i} to db: "
                   f"'app' user: 'web' host: '10.0.0.5' ({reason})\n" for i in range(count))


def mysql8_aborted(count: int) -> str:
    return "".join(f"2024-08-04T11:00:{i % 60:02d}.000000Z {i} [Note] [MY-010914] [Server] Aborted connection "
                   f"{i} to db: 'app' user: 'web' host: '10.0.0.5' (Got an error reading communication "
                   "packets).\n" for i in range(count))


def mariadb_deadlocks(count: int, minutes_apart: int = 1) -> str:
    out = []
    for i in range(count):
        stamp = f"2026-11-30 {17 + i * minutes_apart // 60:02d}:{i * minutes_apart % 60:02d}:00 9"
        out.append(f"{stamp} [Note] InnoDB: Transactions deadlock detected, dumping detailed information.\n"
                   f"{stamp} [Note] InnoDB: \n*** (1) TRANSACTION:\n"
                   "TRANSACTION 1234, ACTIVE 0 sec starting index read\n"
                   "MySQL thread id 9, OS thread handle 140, query id 77 localhost app Updating\n"
                   "UPDATE `stock` SET `qty` = `qty` - ? WHERE `id` = ?\n"
                   "*** WAITING FOR THIS LOCK TO BE GRANTED:\n"
                   "RECORD LOCKS space id 5 page no 3 n bits 72 index PRIMARY of table `shop`.`stock` trx id 1234 "
                   "lock_mode X locks rec but not gap waiting\n"
                   "*** (2) TRANSACTION:\n"
                   "RECORD LOCKS space id 6 page no 4 n bits 72 index PRIMARY of table `shop`.`orders` trx id 1235 "
                   "lock_mode X locks rec but not gap\n"
                   f"{stamp} [Note] InnoDB: *** WE ROLL BACK TRANSACTION (2)\n")
    return "".join(out)


def with_log(text: str, **kwargs: Any) -> Bundle:
    return make_bundle(text={LOG: text}, **kwargs)


def run(bundle: Bundle, rule_id: str) -> Any:
    report = evaluate(bundle, [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def fired(result: Any) -> bool:
    return isinstance(result, Finding)


def quoted(finding: Finding) -> str:
    return json.dumps([e.__dict__ for e in finding.evidence])


def up_for_a_day() -> List[Dict[str, Any]]:
    return counters({"Uptime": 86400}, {"Uptime": 1})


# -- LOG-01 crash -----------------------------------------------------------------------------------
def test_mariadb_crash_quotes_the_first_frames_after_the_signal_handler() -> None:
    found = run(with_log(MARIADB_START + MARIADB_CRASH), "LOG-01")
    assert fired(found) and found.severity == "critical"
    values = found.evidence[0].values
    assert values["crashes"] == 1 and values["last_signal"] == 11 and values["last_time"] == "2025-11-30 14:20:43"
    note = found.evidence[0].note
    assert note.startswith("backtrace: /usr/sbin/mariadbd(_ZN4JOIN14optimize_innerEv")
    assert "handle_fatal_signal" not in note and "libc.so.6" not in note
    assert "segmentation fault" in found.summary


def test_mysql8_assertion_crash_has_signal_6_the_assertion_and_frames() -> None:
    found = run(with_log(MYSQL8_CRASH, flavor="mysql", version="8.0.36"), "LOG-01")
    assert fired(found)
    values = found.evidence[0].values
    assert values["last_signal"] == 6 and values["last_time"] == "2024-08-04 09:12:03"
    assert "Assertion failure: btr0cur.cc:336" in values["assertion"]
    assert "ut_dbg_assertion_failed" in found.evidence[0].note
    assert "print_fatal_signal" not in found.evidence[0].note


def test_a_crash_report_never_quotes_the_statement() -> None:
    for log in (MARIADB_CRASH, MYSQL8_CRASH):
        text = quoted(run(with_log(log), "LOG-01"))
        assert "4111111111111111" not in text and "token = 'abc'" not in text and "Query (" not in text


def test_a_clean_log_has_no_crash() -> None:
    assert run(with_log(MARIADB_START), "LOG-01").status == "passed"
    assert run(make_bundle(), "LOG-01").status == "insufficient"


# -- LOG-02 OOM kill ------------------------------------------------------------------------------
def oom_events(process: str = "mariadbd", cgroup: bool = False) -> Dict[str, Any]:
    return {"readable": True, "source": "/dev/kmsg", "events": [{
        "time": "2026-11-30T14:01:58Z", "pid": 812, "process": process, "memory_cgroup_oom": cgroup,
        "anon_rss_bytes": 15 * GIB,
        "message": f"Out of memory: Killed process 812 ({process}) total-vm:17000000kB, "
                   "anon-rss:15728640kB, file-rss:0kB, shmem-rss:0kB, UID:106 pgtables:31000kB oom_score_adj:0"}]}


def test_oom_kill_of_the_server_is_critical_with_the_restart() -> None:
    bundle = make_bundle(files={"os/oom_kills.json": oom_events(cgroup=True)}, text={LOG: MARIADB_START})
    found = run(bundle, "LOG-02")
    assert fired(found) and found.severity == "critical"
    assert "memory cgroup" in found.summary and "15.0 GiB" in found.summary
    assert found.evidence[1].values["start_ups_in_log"] == 1
    assert "Killed process 812 (mariadbd)" in found.evidence[0].note


def test_oom_kill_found_in_the_kernel_events_too() -> None:
    kernel = {"readable": True, "events": [{"kind": "oom_kill", "process": "mysqld", "pid": 9,
                                            "message": "Out of memory: Killed process 9 (mysqld)"}]}
    assert fired(run(make_bundle(files={"os/kernel_log.json": kernel}), "LOG-02"))


def test_oom_kill_of_another_process_passes_and_unreadable_is_insufficient() -> None:
    assert run(make_bundle(files={"os/oom_kills.json": oom_events("java")}), "LOG-02").status == "passed"
    unreadable = {"readable": False, "events": []}
    assert run(make_bundle(files={"os/oom_kills.json": unreadable}), "LOG-02").status == "insufficient"
    assert run(make_bundle(), "LOG-02").status == "insufficient"


# -- LOG-03 corruption ----------------------------------------------------------------------------
@pytest.mark.parametrize("log, count", [(MARIADB_CORRUPTION, 2), (MYSQL8_CORRUPTION, 2)])
def test_corruption_messages_fire_on_both_formats(log: str, count: int) -> None:
    found = run(with_log(MARIADB_START + log), "LOG-03")
    assert fired(found) and found.severity == "critical"
    assert found.evidence[0].values["messages"] == count
    assert "Database page corruption" in found.evidence[0].values["lines"][0]


def test_corruption_quotes_at_most_three_lines_of_300_characters() -> None:
    log = "".join(f"2026-11-30 15:00:{i:02d} 0 [ERROR] InnoDB: Table `db`.`t{i}` is corrupted. {'z' * 900}\n"
                  for i in range(50))
    found = run(with_log(log), "LOG-03")
    lines = found.evidence[0].values["lines"]
    assert found.evidence[0].values["messages"] == 50
    assert len(lines) == 3 and all(len(line) <= 300 for line in lines)


def test_a_log_without_corruption_passes() -> None:
    assert run(with_log(MARIADB_START + MARIADB_CRASH), "LOG-03").status == "passed"


# -- LOG-04 Too many connections ------------------------------------------------------------------
def test_too_many_connections_fires() -> None:
    log = MARIADB_START + mariadb_aborted(12, "Too many connections")
    found = run(with_log(log), "LOG-04")
    assert fired(found) and found.evidence[0].values["messages"] == 12
    assert found.evidence[0].values["max_connections"] == 151


def test_no_refused_connection_passes() -> None:
    assert run(with_log(MARIADB_START + mariadb_aborted(30)), "LOG-04").status == "passed"


# -- LOG-05 aborted connections -------------------------------------------------------------------
def test_aborted_connections_are_counted_by_reason_on_both_formats() -> None:
    log = MARIADB_START + mariadb_aborted(40) + mysql8_aborted(15) + \
        "2026-11-30 16:30:00 5 [Warning] Access denied for user 'web'@'10.0.0.9' (using password: YES)\n" * 3
    found = run(with_log(log), "LOG-05")
    assert fired(found)
    reasons = found.evidence[0].values["by_reason"]
    assert reasons == {"Got timeout reading communication packets": 40,
                       "Got an error reading communication packets": 15,
                       "Access denied (a failed login)": 3}
    assert "10.0.0.9" not in quoted(found)


def test_a_few_aborted_connections_pass() -> None:
    assert run(with_log(MARIADB_START + mariadb_aborted(5)), "LOG-05").status == "passed"


# -- LOG-06 restarts ------------------------------------------------------------------------------
def test_small_uptime_is_a_notice() -> None:
    bundle = with_log(MARIADB_START, status=counters({"Uptime": 300}, {"Uptime": 1}))
    found = run(bundle, "LOG-06")
    assert fired(found) and found.severity == "notice" and "5 min" in found.summary


def test_several_start_ups_within_days_is_a_warning() -> None:
    log = MARIADB_START + MARIADB_CRASH + MARIADB_START.replace("14:02", "18:02")
    found = run(with_log(log, status=up_for_a_day()), "LOG-06")
    assert fired(found) and found.severity == "warning"
    assert found.evidence[0].values["start_ups"] == 3


def test_a_long_running_server_passes() -> None:
    assert run(with_log(MARIADB_START, status=up_for_a_day()), "LOG-06").status == "passed"


# -- LOG-07 crash recovery ------------------------------------------------------------------------
@pytest.mark.parametrize("log", [MARIADB_CRASH, MYSQL8_CRASH])
def test_crash_recovery_fires_on_both_formats(log: str) -> None:
    found = run(with_log(log), "LOG-07")
    assert fired(found) and found.evidence[0].values["recoveries"] == 1


def test_clean_start_up_passes() -> None:
    assert run(with_log(MARIADB_START), "LOG-07").status == "passed"


# -- LOG-08 deadlocks -----------------------------------------------------------------------------
def test_frequent_deadlocks_are_counted_per_hour_with_their_tables() -> None:
    found = run(with_log(MARIADB_START + mariadb_deadlocks(61), variables={"innodb_print_all_deadlocks": "ON"}),
                "LOG-08")
    assert fired(found) and found.severity == "warning"
    values = found.evidence[0].values
    assert values["deadlocks"] == 61 and values["per_hour"] == pytest.approx(61.0)
    assert values["tables"] == {"`shop`.`stock`": 61, "`shop`.`orders`": 61}
    assert "UPDATE `stock`" not in quoted(found)


def test_few_deadlocks_pass_and_print_all_deadlocks_off_does_not_apply() -> None:
    assert run(with_log(mariadb_deadlocks(2)), "LOG-08").status == "passed"
    assert run(with_log(mariadb_deadlocks(10, minutes_apart=5)), "LOG-08").severity == "notice"
    off = with_log(MARIADB_START, variables={"innodb_print_all_deadlocks": "OFF"})
    assert run(off, "LOG-08").status == "not_applicable"


# -- hostile logs ---------------------------------------------------------------------------------
def hostile_logs() -> List[bytes]:
    markup = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>javascript:alert(1)"
    control = "".join(chr(c) for c in range(32)) + "\x7f\x1b[2J\x1b]0;pwned\x07"
    huge = "x" * (1 << 20)
    return [
        f"2026-11-30 14:20:43 0 [ERROR] mysqld got signal 11 ;{markup}{control}{huge}\n".encode()
        + f"/usr/sbin/mariadbd({markup}{control.replace(chr(10), '')}+0x1)[0x1]\n".encode() * 3,
        (f"2026-11-30 15:00:01 0 [ERROR] InnoDB: Database page corruption {control}{markup}{huge}\n" * 4).encode(),
        (f"2026-11-30 16:00:00 1 [Warning] Aborted connection 1 to db: '{markup}' user: '{control}' host: "
         f"'h' ({markup}{control}{huge})\n" * 20).encode(),
        b"\x00\xff\xfe garbage \x80\x81 got signal 11\nmysqld got signal 99999999999999999999 ;\n" + b"\xc3" * 5000,
        (huge + "Transactions deadlock detected" + huge + "\n") .encode() * 6,
        b"\r\n".join([b"2026-13-45 99:99:99 0 [Note] ready for connections"] * 5),
        b"",
    ]


def test_hostile_logs_never_make_an_errorlog_rule_error_and_quotes_stay_clean() -> None:
    rules = [r for r in registry.all_rules() if r.group == "errorlog"]
    assert len(rules) >= 5
    for data in hostile_logs():
        bundle = make_bundle(files={"os/oom_kills.json": {"events": "x", "readable": "?"},
                                    "os/kernel_log.json": [1]})
        bundle.files[LOG] = data
        started = time.monotonic()
        report = evaluate(bundle, rules)
        assert time.monotonic() - started < 10
        assert [o for o in report.outcomes if o.status == "error"] == []
        for finding in report.findings:
            for evidence in finding.evidence:
                for value in [evidence.note, *map(str, evidence.values.values())]:
                    assert not any(ord(ch) < 32 and ch != "\t" for ch in value), finding.rule
                for line in evidence.values.get("lines", []):
                    assert len(line) <= 300


def test_the_crash_of_a_hostile_log_is_found_and_its_quotes_cut() -> None:
    bundle = make_bundle()
    bundle.files[LOG] = hostile_logs()[0]
    found = run(bundle, "LOG-01")
    assert fired(found)
    frames = found.evidence[0].note.removeprefix("backtrace: ").split(" | ")
    assert len(frames) == 3 and all(len(f) <= 300 for f in frames)


def test_malformed_oom_members_never_error() -> None:
    rules = [registry.get("LOG-02")]
    for oom in ({"events": [None, "x", {"process": ["mysqld"], "pid": "NaN", "anon_rss_bytes": "1e999"},
                            {"process": "mysqld", "pid": 10**40, "message": None, "time": {"a": 1}}]},
                {"events": {"a": 1}, "readable": True}, [1, 2], "text"):
        bundle = make_bundle(files={"os/oom_kills.json": oom, "os/kernel_log.json": {"events": [None, 5]}})
        assert [o for o in evaluate(bundle, rules).outcomes if o.status == "error"] == []
