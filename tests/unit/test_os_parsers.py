"""Parsers of kernel and systemd text: OOM-kill lines, /proc/PID/limits, unit folders."""

from __future__ import annotations

import os

from collectors.config.systemd import find_units
from collectors.os.host import boot_parameters
from collectors.os.mysqld import server_args
from collectors.os.mysqld_process import parse_limits
from collectors.os.oom import parse_oom


def test_oom_kill_lines_of_old_and_new_kernels_become_events():
    lines = [
        ("t1", "mysqld invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, "
               "oom_score_adj=0"),
        ("t1", "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,"
               "global_oom,task_memcg=/system.slice/mariadb.service,task=mariadbd,pid=812,uid=107"),
        ("t1", "Out of memory: Killed process 812 (mariadbd) total-vm:9000000kB, "
               "anon-rss:7000000kB, file-rss:0kB, shmem-rss:0kB, UID:107 pgtables:15000kB "
               "oom_score_adj:0"),
        ("t2", "Out of memory: Kill process 99 (mysqld) score 900 or sacrifice child"),
        ("t2", "Killed process 99 (mysqld) total-vm:200kB, anon-rss:100kB, file-rss:0kB"),
        ("t3", "EXT4-fs (vda): mounted filesystem"),
    ]
    events = parse_oom(lines)
    assert [(e["time"], e["pid"], e["process"]) for e in events] == [
        ("t1", 812, "mariadbd"), ("t2", 99, "mysqld")]
    first = events[0]
    assert first["anon_rss_bytes"] == 7000000 * 1024 and first["uid"] == 107
    assert first["task_memcg"] == "/system.slice/mariadb.service"
    assert first["invoked_by"] == "mysqld" and first["constraint"] == "CONSTRAINT_NONE"
    assert events[1]["total_vm_bytes"] == 200 * 1024 and "constraint" not in events[1]


def test_proc_limits_table_is_parsed_with_numbers_and_unlimited():
    text = (
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        "Max open files            1024                 524288               files     \n"
        "Max nice priority         0                    0                    \n"
    )
    assert parse_limits(text) == {
        "Max cpu time": {"soft": "unlimited", "hard": "unlimited", "units": "seconds"},
        "Max open files": {"soft": 1024, "hard": 524288, "units": "files"},
        "Max nice priority": {"soft": 0, "hard": 0, "units": None},
    }


def test_server_arguments_are_normalized_like_option_files():
    assert server_args(["/usr/sbin/mysqld", "--basedir=/usr", "--loose-port=3307",
                        "--skip_name_resolve", "--datadir=/var/lib/mysql", "stray"]) == {
        "basedir": "/usr", "port": "3307", "skip-name-resolve": None, "datadir": "/var/lib/mysql"}


def test_units_aliases_masks_and_drop_ins_are_found_once(tmp_path):
    etc, lib, usr_lib = tmp_path / "etc", tmp_path / "lib", tmp_path / "usr-lib"
    for folder in (etc, usr_lib):
        folder.mkdir()
    (usr_lib / "mariadb.service").write_text("[Service]\nExecStart=/usr/sbin/mariadbd\n")
    (usr_lib / "mariadb@.service").write_text("[Service]\n")
    (usr_lib / "nginx.service").write_text("[Service]\n")
    os.symlink("mariadb.service", usr_lib / "mysql.service")
    os.symlink(usr_lib, lib)  # merged /usr: the same files under two names
    (etc / "mariadb.service.d").mkdir()
    (etc / "mariadb.service.d" / "limits.conf").write_text("[Service]\nLimitNOFILE=65535\n")
    (etc / "mariadb.service.d" / "notes.txt").write_text("not a drop-in\n")
    os.symlink("/dev/null", etc / "mysqld.service")
    units, notes = find_units([str(etc), str(usr_lib), str(lib), str(tmp_path / "absent")])
    assert notes == []
    listed = [(os.path.relpath(u["path"], tmp_path), u["kind"], u["copy"]) for u in units]
    assert listed == [
        ("etc/mariadb.service.d/limits.conf", "drop-in", True),
        ("etc/mysqld.service", "unit", False),
        ("usr-lib/mariadb.service", "unit", True),
        ("usr-lib/mariadb@.service", "unit", True),
        ("usr-lib/mysql.service", "unit", False),
        ("lib/mariadb.service", "unit", False),
        ("lib/mariadb@.service", "unit", False),
        ("lib/mysql.service", "unit", False),
    ]
    assert units[1]["masked"] and units[4]["alias_of"] == "mariadb.service"
    assert units[0]["unit"] == "mariadb.service"


def test_only_performance_relevant_boot_parameters_are_kept():
    line = ("BOOT_IMAGE=/vmlinuz root=UUID=abc ro transparent_hugepage=never numa=off nosmt "
            "iscsi_password=s3cret console=ttyS0 -- --init-token=xyz elevator=none")
    assert boot_parameters(line) == {"transparent_hugepage": "never", "numa": "off", "nosmt": None}
