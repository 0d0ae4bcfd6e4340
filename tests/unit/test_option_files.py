"""The one option-file parser, on the files a DBA really has: includes, loops, and damage."""

from __future__ import annotations

import os
from pathlib import Path

from collectors.config.search import server_files, server_groups
from collectors.mysql import optionfile
from collectors.os.mysqld import Mysqld


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def test_option_files_follow_includes_without_looping(tmp_path):
    main = _write(tmp_path / "my.cnf", f"[mysqld]\nmax_connections = 77\n"
                                       f"!include {tmp_path}/extra.cnf\n"
                                       f"!includedir {tmp_path}/conf.d\n")
    _write(tmp_path / "extra.cnf", "[mysqld]\nwait_timeout = 600\n")
    _write(tmp_path / "conf.d" / "a.cnf", f"[mysqld]\nnet_read_timeout = 40\n!include {main}\n")
    _write(tmp_path / "conf.d" / "ignored.txt", "[mysqld]\nnot_read = 1\n")
    parsed = optionfile.read([str(main)])
    assert parsed.files == [str(main), str(tmp_path / "extra.cnf"), str(tmp_path / "conf.d" / "a.cnf")]
    assert parsed.group("mysqld") == {"max-connections": "77", "wait-timeout": "600",
                                      "net-read-timeout": "40"}
    assert any("include loop" in n and str(main) in n for n in parsed.notes), parsed.notes
    assert set(parsed.texts) == set(parsed.files)
    assert parsed.texts[str(main)] == main.read_text()


def test_a_file_including_itself_is_read_once(tmp_path):
    loop = _write(tmp_path / "self.cnf", f"[mysqld]\nport = 3307\n!include {tmp_path}/self.cnf\n")
    parsed = optionfile.read([str(loop)])
    assert parsed.files == [str(loop)]
    assert len(parsed.notes) == 1 and "already read (include loop" in parsed.notes[0]


def test_missing_include_gives_a_note_with_file_and_line(tmp_path):
    main = _write(tmp_path / "my.cnf", f"[mysqld]\n!include {tmp_path}/gone.cnf\n"
                                       f"!includedir {tmp_path}/nodir\n")
    parsed = optionfile.read([str(main)])
    assert parsed.files == [str(main)]
    assert f"{main}:2: !include {tmp_path}/gone.cnf: no such file" in parsed.notes
    assert any(n.startswith(f"{main}:3: !includedir") for n in parsed.notes), parsed.notes


def test_binary_garbage_is_skipped_with_a_note(tmp_path):
    # Random bytes with a few NULs, and random bytes without any: both are binary.
    with_nul = _write(tmp_path / "a.cnf", b"\x00" + os.urandom(2000))
    without_nul = _write(tmp_path / "b.cnf", bytes(b or 1 for b in os.urandom(2000)))
    parsed = optionfile.read([str(with_nul), str(without_nul)])
    assert parsed.files == [] and parsed.options == []
    assert parsed.notes == [f"{with_nul}: binary content, skipped",
                            f"{without_nul}: binary content, skipped"]


def test_non_utf8_file_is_read_as_latin1_with_a_note(tmp_path):
    latin = _write(tmp_path / "latin.cnf", "# café\n[mysqld]\ninit_connect = 'SET NAMES latin1'\n"
                   .encode("latin-1"))
    parsed = optionfile.read([str(latin)])
    assert parsed.notes == [f"{latin}: not UTF-8, read as Latin-1"]
    assert parsed.group("mysqld") == {"init-connect": "SET NAMES latin1"}
    assert "café" in parsed.texts[str(latin)]


def test_server_search_order_is_the_servers_not_the_clients():
    server = Mysqld(pid=1, found_by="test", cmdline=["/usr/sbin/mysqld"], user="mysql",
                    home="/var/lib/mysql", env_readable=True, env_home="/opt/mysql")
    order, notes = server_files(server)
    assert [(c.path, c.role) for c in order] == [
        ("/etc/my.cnf", "global"), ("/etc/mysql/my.cnf", "global"),
        ("/opt/mysql/my.cnf", "$MYSQL_HOME"), ("/var/lib/mysql/.my.cnf", "~/.my.cnf of mysql"),
    ]
    assert notes == []


def test_server_command_line_decides_which_option_files_count():
    extra = Mysqld(pid=1, found_by="test", env_readable=True, home="/home/db", user="db",
                   cmdline=["mysqld", "--defaults-extra-file=/etc/extra.cnf", "--port=3307"])
    assert [c.path for c in server_files(extra)[0]] == [
        "/etc/my.cnf", "/etc/mysql/my.cnf", "/etc/extra.cnf", "/home/db/.my.cnf"]
    only = Mysqld(pid=1, found_by="test", cmdline=["mysqld", "--defaults-file=/srv/my.cnf"])
    assert [(c.path, c.role) for c in server_files(only)[0]] == [("/srv/my.cnf", "--defaults-file")]
    none = Mysqld(pid=1, found_by="test", cmdline=["mariadbd", "--no-defaults"])
    assert server_files(none) == ([], ["mysqld runs with --no-defaults: it reads no option file"])
    hidden = Mysqld(pid=1, found_by="test", cmdline=["mysqld"], env_readable=False)
    assert any("$MYSQL_HOME" in n and "root" in n for n in server_files(hidden)[1])


def test_server_groups_include_version_and_suffix_variants():
    server = Mysqld(pid=1, found_by="test", cmdline=["mysqld", "--defaults-group-suffix=.b"])
    groups = server_groups(server, (10, 11, 6))
    assert {"mysqld", "server", "mariadb", "mysqld-10.11", "mariadb-10.11", "mysqld.b",
            "server.b", "mysqld-10.11.b"} <= set(groups)
    assert "client" not in groups
