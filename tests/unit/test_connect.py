"""Connection settings resolved the way MySQL clients do it."""

from __future__ import annotations

import secrets

import pytest

from agent.collect.connection import OptionError, resolve
from collectors.mysql import optionfile


def test_defaults_file_gives_host_port_user_and_password(tmp_path):
    password = secrets.token_urlsafe(12)
    path = tmp_path / "my.cnf"
    path.write_text(
        f"[client]\nhost=db1\nport = 3307\nuser = diag\npassword = \"{password}\"\n"
        "[mysql]\nuser = other\n"
    )
    spec = resolve(defaults_file=str(path))
    assert (spec.host, spec.port, spec.user, spec.password) == ("db1", 3307, "diag", password)
    assert password not in spec.describe() and password not in repr(spec)


def test_command_line_wins_over_option_file(tmp_path):
    path = tmp_path / "my.cnf"
    path.write_text("[client]\nsocket=/tmp/nowhere.sock\nuser=diag\n")
    spec = resolve(defaults_file=str(path), host="10.0.0.5", port=3310, user="me")
    assert (spec.host, spec.port, spec.socket, spec.user) == ("10.0.0.5", 3310, None, "me")
    assert resolve(defaults_file=str(path)).socket == "/tmp/nowhere.sock"


def test_mydiag_group_and_loose_prefix(tmp_path):
    path = tmp_path / "my.cnf"
    path.write_text("[client]\nuser=a\n[mydiag]\nloose-user=b\n")
    assert resolve(defaults_file=str(path)).user == "b"


def test_missing_defaults_file_is_a_usage_error(tmp_path):
    with pytest.raises(OptionError, match="no such file"):
        resolve(defaults_file=str(tmp_path / "nope.cnf"))


def test_includes_are_followed_once(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.cnf").write_text("[client]\nuser=from_dir\n!include ../my.cnf\n")
    (tmp_path / "conf.d" / "skip.txt").write_text("[client]\nuser=ignored\n")
    (tmp_path / "my.cnf").write_text(f"[client]\nport=1\n!includedir {tmp_path / 'conf.d'}\n")
    files = optionfile.read([str(tmp_path / "my.cnf")])
    assert files.group("client") == {"port": "1", "user": "from_dir"}
    assert any("already read" in note for note in files.notes)
