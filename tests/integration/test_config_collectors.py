"""Config collectors against a server started from an option file with includes, a loop,
a missing include and a Latin-1 file; the datadir holds files that must never be copied."""

from __future__ import annotations

import glob
import json
import os
import secrets

import pytest

from tests import servers
from tests.helpers import bundle_files, by_name, collect_json

REQUIRE = os.environ.get("MYDIAG_REQUIRE_SERVER") == "1"


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    """A private server whose --defaults-file includes more files; SET GLOBAL after start."""
    base = tmp_path_factory.mktemp("configured")
    cnf = base / "cnf"
    (cnf / "conf.d").mkdir(parents=True)
    main = cnf / "my.cnf"
    main.write_text(
        "[mysqld]\nmax_connections = 77\nkey_buffer = 16M\nskip-name-resolve\n"
        f"!include {cnf}/extra.cnf\n!include {cnf}/missing.cnf\n!includedir {cnf}/conf.d\n"
        "[client]\nport = 1\n"
    )
    (cnf / "extra.cnf").write_text("[mysqld]\nwait_timeout = 600\n")
    (cnf / "conf.d" / "a.cnf").write_text(f"[mariadb]\nnet_read_timeout = 40\n!include {main}\n")
    (cnf / "conf.d" / "b.cnf").write_bytes("# café\n[server]\ntmp_table_size = 32M\n".encode("latin-1"))
    instance = servers.Instance(base, servers.free_port(), defaults_file=main)
    try:
        instance.init()
    except servers.ServerUnavailable as exc:
        if REQUIRE:
            pytest.fail(f"real server required (MYDIAG_REQUIRE_SERVER=1): {exc}")
        pytest.skip(str(exc))
    instance.start()
    instance.sql("SET GLOBAL max_connections = 99")
    # Files that sit in a datadir: only mysqld-auto.cnf may ever leave it.
    planted = {name: f"{name}-{secrets.token_hex(12)}" for name in
               ("master.info", "relay-log.info", "private_key.pem", "multi-master.info")}
    for name, secret in planted.items():
        (instance.datadir / name).write_text(f"33\nhost\nrepl\n{secret}\n")
    persisted = '{ "Version" : 2 , "mysql_server" : { "max_connections" : { "Value" : "99" } } }\n'
    (instance.datadir / "mysqld-auto.cnf").write_text(persisted)
    yield instance, main, planted, persisted
    instance.stop()


@pytest.fixture(scope="module")
def collected(configured, tmp_path_factory):
    instance, _, _, _ = configured
    extra = tmp_path_factory.mktemp("extra")
    (extra / "limits.conf").write_text("mysql soft nofile 65535\n")
    (extra / "garbage.cnf").write_bytes(b"\x00\x01" + os.urandom(512))
    (extra / "legacy.txt").write_bytes("# réglages\nkey=value\n".encode("latin-1"))
    (extra / "loop.cnf").write_text(f"[mysqld]\nport = 3307\n!include {extra}/loop.cnf\n"
                                    f"!include {extra}/absent.cnf\n")
    out = tmp_path_factory.mktemp("config-bundles")
    args = ["--profile", "quick", "--host", "127.0.0.1", "--port", str(instance.port),
            "--user", "root", "--output", str(out)]
    for name in ("limits.conf", "garbage.cnf", "legacy.txt", "loop.cnf", "nowhere.cnf", "."):
        args += ["--config-file", str(extra / name)]
    done, summary = collect_json(*args)
    assert summary is not None, done.stderr
    return summary, bundle_files(summary["bundle"]), extra


def test_option_files_are_read_in_the_servers_order_with_includes(configured, collected):
    _, main, _, _ = configured
    summary, files, _ = collected
    cnf = main.parent
    entry = by_name(summary)["config.option_files"]
    assert entry["status"] == "ok", entry
    index = json.loads(files["config/option_files.json"])
    assert index["search_order"] == [{"path": str(main), "role": "--defaults-file", "status": "read"}]
    assert index["files_read"] == [str(main), f"{cnf}/extra.cnf", f"{cnf}/conf.d/a.cnf",
                                   f"{cnf}/conf.d/b.cnf"]
    notes = "\n".join(entry["notes"])
    assert f"{main}: already read (include loop or repeat), skipped" in notes
    assert f"{main}:6: !include {cnf}/missing.cnf: no such file" in notes
    assert f"{cnf}/conf.d/b.cnf: not UTF-8, read as Latin-1" in notes
    for path in index["files_read"]:
        copy = files[f"config/files{path}"].decode()
        with open(path, "rb") as handle:
            raw = handle.read()
        assert copy == raw.decode("utf-8" if path != f"{cnf}/conf.d/b.cnf" else "latin-1")


def test_effective_diff_shows_what_set_global_changed_and_nothing_else(configured, collected):
    _, main, _, _ = configured
    summary, files, _ = collected
    assert by_name(summary)["config.effective"]["status"] == "ok"
    diff = json.loads(files["config/effective_diff.json"])
    assert diff["differences"] == [{"variable": "max_connections", "option": "max_connections",
                                    "set_in": f"{main}:2", "configured": "77", "running": "99"}]
    assert diff["command_line"] is True and diff["compared"] >= 8
    assert {"option": "user", "set_in": "command line"} in diff["not_variables"]


def test_persisted_variables_are_the_only_datadir_file_copied(configured, collected):
    _, _, planted, persisted = configured
    summary, files, _ = collected
    assert by_name(summary)["config.persisted"]["status"] == "ok"
    assert files["config/mysqld-auto.cnf"].decode() == persisted
    everything = b"".join(files.values())
    for name, secret in planted.items():
        assert secret.encode() not in everything, name
        assert not any(name in path for path in files), name


def test_extra_config_files_are_copied_and_damage_gets_a_clear_note(collected):
    summary, files, extra = collected
    entry = by_name(summary)["config.extra_files"]
    assert entry["status"] == "partial"
    assert files[f"config/extra{extra}/limits.conf"] == b"mysql soft nofile 65535\n"
    assert files[f"config/extra{extra}/legacy.txt"].decode() == "# réglages\nkey=value\n"
    assert f"config/extra{extra}/loop.cnf" in files
    assert not any("garbage" in path for path in files)
    notes = "\n".join(entry["notes"])
    assert f"--config-file {extra}/garbage.cnf: binary content, not included" in notes
    assert f"--config-file {extra}/legacy.txt: not UTF-8, read as Latin-1" in notes
    assert f"{extra}/loop.cnf: already read (include loop or repeat), skipped" in notes
    assert f"{extra}/loop.cnf:4: !include {extra}/absent.cnf: no such file" in notes
    assert f"--config-file {extra}/nowhere.cnf: cannot read (No such file or directory)" in notes
    assert f"--config-file {extra}: a directory, not a file" in notes


def test_systemd_units_of_the_installed_server_are_copied(collected):
    summary, files, _ = collected
    entry = by_name(summary)["config.systemd"]
    units = [p for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
             for p in glob.glob(f"{d}/mariadb*.service") + glob.glob(f"{d}/mysql*.service")]
    if not units:
        assert entry["status"] == "skipped" and "no mysql/mariadb systemd unit" in entry["error"]
        return
    assert entry["status"] == "ok", entry
    index = json.loads(files["config/systemd_units.json"])
    copied = [f for f in index["files"] if "copied_as" in f]
    assert copied
    for unit in copied:
        with open(unit["path"]) as handle:
            assert files[unit["copied_as"]].decode() == handle.read()
    assert {os.path.realpath(u) for u in units} <= {os.path.realpath(f["path"]) for f in index["files"]}


def test_config_files_whose_paths_cannot_be_member_names_are_copied_by_digest(configured, tmp_path):
    """A path longer than a member path may be, or with a line break, a bidi override or
    bytes that are not UTF-8 in it (an option file can !include any of them): each is
    copied under by-hash/, named in a note, and the collection goes on."""
    instance = configured[0]
    deep = tmp_path.joinpath(*(["d" * 60] * 4))
    deep.mkdir(parents=True)
    odd = [deep / "long.cnf", tmp_path / "line\nbreak.cnf", tmp_path / "bidi\u202e.cnf",
           tmp_path / os.fsdecode(b"latin\xe9.cnf")]
    values = {}
    for path in odd:
        values[path] = f"v{secrets.token_hex(4)}"
        path.write_text(f"[mysqld]\nmax_allowed_packet = {values[path]}\n")
    including = tmp_path / "including.cnf"
    including.write_text(f"[mysqld]\n!include {odd[0]}\n")
    args = ["--profile", "quick", "--host", "127.0.0.1", "--port", str(instance.port),
            "--user", "root", "--output", str(tmp_path / "out")]
    for path in [*odd, including]:
        args += ["--config-file", str(path)]
    done, summary = collect_json(*args)
    assert summary is not None and "internal error" not in done.stderr, done.stderr
    entry = by_name(summary)["config.extra_files"]
    assert entry["status"] == "ok", entry
    members = [f for f in entry["files"] if f.startswith("config/extra/by-hash/")]
    assert len(members) == len(odd), entry["files"]
    files = bundle_files(summary["bundle"])
    for path in odd:
        assert sum(values[path].encode() in files[m] for m in members) == 1
    assert sum("cannot name a bundle member" in n for n in entry["notes"]) == len(odd)
    assert f"config/extra{including}" in entry["files"]
