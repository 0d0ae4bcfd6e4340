"""The agent's TOML configuration: the documented example loads, and each mistake is named."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from agent.daemon import service
from agent.daemon.config import ConfigError, load, parse_duration, parse_size
from tests.helpers import ROOT, mydiag

EXAMPLE = ROOT / "docs" / "agent.example.toml"
#: Made per run: a password put in the config must be refused without being echoed.
PASSWORD = secrets.token_urlsafe(12)


def _write(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "agent.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_documented_example_loads(tmp_path):
    option_file = tmp_path / "my.cnf"
    option_file.write_text("[client]\nuser = mydiag\n")
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    token.chmod(0o600)
    text = EXAMPLE.read_text().replace("/etc/mydiag/my.cnf", str(option_file)).replace(
        "/etc/mydiag/token", str(token))
    config = load(_write(tmp_path, text))
    assert config.server is not None and config.server.token == "secret-token"
    assert "secret-token" not in repr(config.server)
    assert config.spool.max_bytes == 2 << 30 and config.spool.min_free_pct == 10
    assert config.schedule is not None and config.schedule.every == 900
    assert [t.name for t in config.triggers] == ["busy", "metadata-locks", "select-storm"]
    busy = config.triggers[0]
    assert (busy.for_checks, busy.check_every, busy.cooldown, busy.max_per_day, busy.capture) == (
        3, 1.0, 600.0, 12, "full")


#: The ids name the key and the problem, never the text (one case holds a generated password).
BAD_CONFIGS = [
    ('[spool]\nmax_bytes = "2GB!"\n', "spool.max_bytes", "is not a size"),
    ('[spool]\nmin_free_pct = 120\n', "spool.min_free_pct", "out of range"),
    ('[schedule]\nevery = "10x"\n', "schedule.every", "is not a duration"),
    ('[schedule]\nevery = "15m"\nprofile = "huge"\n', "schedule.profile", "is not a profile"),
    ('[schedule]\nprofile = "quick"\n', "schedule.every", "is required"),
    (f'[mysql]\npassword = "{PASSWORD}"\n', "mysql.password", "not allowed here"),
    ('[mysql]\nport = "3306"\n', "mysql.port", "is not a whole number"),
    ('[mysql]\ndefaults_file = "/nonexistent/my.cnf"\n', "mysql.defaults_file", "no such file"),
    ('[spool]\nsize = 1\n', "spool.size", "unknown key"),
    ('[spol]\n', "(top level).spol", "unknown key"),
    ('[[trigger]]\nname = "t"\nwhen = "Threads_running > AND 3"\n', "trigger 't'.when",
     "at position 19 of 'Threads_running > AND 3'"),
    ('[[trigger]]\nname = "t"\n', "trigger 't'.when", "is required"),
    ('[[trigger]]\nname = "t"\nwhen = "Uptime > 1"\nfor = 0\n', "trigger 't'.for", "out of range"),
    ('[[trigger]]\nname = "t"\nwhen = "Uptime > 1"\ncooldown = "soon"\n', "trigger 't'.cooldown",
     "is not a duration"),
    ('[[trigger]]\nname = "a b"\nwhen = "Uptime > 1"\n', "trigger[0].name", "use letters"),
    ('[[trigger]]\nname = "t"\nwhen = "Uptime > 1"\n[[trigger]]\nname = "t"\nwhen = "Uptime > 2"\n',
     "trigger[1].name", "used by two triggers"),
    ('[server]\nurl = "ftp://x"\nticket = "tk-1"\ntoken = "abc"\n', "server.url", "http:// or https://"),
    ('[server]\nurl = "http://x"\nticket = "tk-1"\n', "server.token", "is required"),
    ('[agent]\nionice = "fast"\n', "agent.ionice", "is not one of"),
    ("[spool\n", "", "not valid TOML"),
]


@pytest.mark.parametrize("text, where, words", BAD_CONFIGS,
                         ids=[f"{where}-{words}" for _text, where, words in BAD_CONFIGS])
def test_a_bad_config_names_the_file_the_key_and_the_problem(tmp_path, text, where, words):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {where}"), message
    assert words in message
    assert "\n" not in message
    assert PASSWORD not in message


def test_a_token_in_a_file_readable_by_others_is_refused(tmp_path):
    path = _write(tmp_path, '[server]\nurl = "http://127.0.0.1:1"\nticket = "tk-1"\ntoken = "s3cret"\n',
                  mode=0o644)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "chmod 600" in str(caught.value) and "s3cret" not in str(caught.value)


def test_durations_and_sizes():
    assert parse_duration("1.5s") == 1.5 and parse_duration("10m") == 600 and parse_duration(5) == 5
    assert parse_duration("500ms") == 0.5 and parse_duration("2h") == 7200 and parse_duration("x") is None
    assert parse_size("2GiB") == 2 << 30 and parse_size("500MB") == 500_000_000 and parse_size("1x") is None


def test_the_cli_refuses_a_bad_config_in_one_line_without_traceback(tmp_path):
    path = _write(tmp_path, '[[trigger]]\nname = "t"\nwhen = "(Threads_running > 5"\n')
    for action in ("run", "once", "status"):
        done = mydiag("agent", action, "--config", str(path), timeout=30)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr
        assert re.search(r"trigger 't'\.when: at position 21 .*'\)' for the '\(' at position 1", lines[0])


def test_install_service_writes_the_unit_the_repo_ships(tmp_path):
    shipped = (ROOT / "packaging" / service.UNIT_NAME).read_text()
    assert shipped == service.render()
    done = mydiag("agent", "install-service", "--config", "/etc/mydiag/agent.toml", "--unit-dir",
                  str(tmp_path), "--exec", service.DEFAULT_EXEC, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / service.UNIT_NAME).read_text() == shipped
    assert "systemctl enable --now mydiag-agent" in done.stdout
    unit = shipped.splitlines()
    for line in ("Nice=10", "IOSchedulingClass=idle", "MemoryMax=256M", "Restart=on-failure"):
        assert line in unit
