"""agent/selfexec: the argv of a child module, from a venv and from the single file."""

from __future__ import annotations

import sys

from agent import exitcodes, selfexec


def test_from_a_venv_a_child_is_python_dash_m(monkeypatch):
    monkeypatch.setattr(selfexec, "ENTRY", None)
    argv, extra = selfexec.module_command("agent.session.console")
    assert argv[0] == sys.executable and argv[-2:] == ["-m", "agent.session.console"] and extra == {}


def test_from_the_pyz_a_child_is_the_pyz_with_the_module_named(monkeypatch, tmp_path):
    monkeypatch.setattr(selfexec, "ENTRY", "/opt/mydiag.pyz")
    monkeypatch.setenv("MYDIAG_HOME", str(tmp_path))
    argv, extra = selfexec.module_command("agent.session.console")
    assert argv[0] == sys.executable and argv[-1] == "/opt/mydiag.pyz"
    assert extra == {"MYDIAG_PYZ_MODULE": "agent.session.console", "MYDIAG_HOME": str(tmp_path)}
    assert selfexec.cli_command().endswith(" /opt/mydiag.pyz")


def test_the_bootstrap_s_exit_codes_are_the_documented_ones():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "packaging" / "pyz_main.py"
    spec = importlib.util.spec_from_file_location("pyz_main_codes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.UNSUPPORTED == exitcodes.PYZ_UNSUPPORTED
    assert module.NO_STATE_DIR == exitcodes.PYZ_NO_STATE_DIR
