"""The man pages `make dist` ships: one per command, rendered by man(1) and groff without a
warning, holding every command and option the parsers declare (walked here, not by the
generator, so an option added without reaching its page fails), and reproducible."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from agent import exitcodes as agent_exitcodes
from agent.cli import build_parser as agent_parser
from bundle.version import __version__
from server import exitcodes as server_exitcodes
from server.cli.main import build_parser as server_parser
from tests.packaging.conftest import EPOCH, ROOT, need


def parsers() -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    def walk(name: str, parser: argparse.ArgumentParser) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for word, child in action.choices.items():
                    yield from walk(f"{name}-{word}", child)

    """(page name, parser) for every program and every command and nested command."""
    yield from walk("mydiag", agent_parser())
    yield from walk("mydiag-server", server_parser())


def render(page: Path) -> Tuple[str, str]:
    """(text, warnings) as a user's `man -l` shows the page, 80 columns."""
    need("man")
    done = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80",
                                                      "MAN_KEEP_FORMATTING": ""})
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def rendered(dist_man: Path) -> Dict[str, Tuple[str, str]]:
    return {page.stem: render(page) for page in sorted(dist_man.glob("*.1"))}


def test_every_command_has_its_page_and_no_page_is_left_over(dist_man):
    expected = {f"{name}.1" for name, _ in parsers()}
    assert {"mydiag.1", "mydiag-collect.1", "mydiag-session-grant.1", "mydiag-self-check.1",
            "mydiag-server.1", "mydiag-server-ticket-create.1"} <= expected
    assert {p.name for p in dist_man.glob("*")} == expected


def test_every_page_renders_without_a_warning_in_man_and_groff(dist_man, rendered):
    need("groff")
    for name, (text, warnings) in rendered.items():
        assert warnings == "", f"{name}.1: {warnings}"
        header = text.splitlines()[0]
        assert header.startswith(f"{name.upper()}(1)") and header.endswith(f"{name.upper()}(1)"), header
        strict = subprocess.run(["groff", "-man", "-ww", "-z", str(dist_man / f"{name}.1")],
                                capture_output=True, text=True, timeout=60)
        assert (strict.returncode, strict.stderr) == (0, ""), f"{name}.1: {strict.stderr}"


def test_every_option_and_argument_appears_in_its_page(rendered):
    for name, parser in parsers():
        text = rendered[name][0]
        assert " ".join(text.split()).count(f"{name} - ") >= 1, f"{name}: NAME line"
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            if isinstance(action, argparse._SubParsersAction):
                for word in action.choices:
                    assert f"{name}-{word}(1)" in text, f"{name} does not point at its command {word}"
                continue
            for option in action.option_strings:
                # With ASCII hyphens on screen: what a user copies from the page must work.
                assert option in text, f"{name}: {option} missing"
            if not action.option_strings:
                assert (action.metavar or action.dest) in text, f"{name}: argument {action.dest} missing"


def test_the_top_pages_list_every_exit_code_environment_and_file(rendered):
    for program, module in (("mydiag", agent_exitcodes), ("mydiag-server", server_exitcodes)):
        text = rendered[program][0]
        section = text[text.index("EXIT STATUS"):text.index("ENVIRONMENT")]
        codes = sorted({v for k, v in vars(module).items() if k.isupper() and isinstance(v, int)})
        found = sorted(int(line.split()[0]) for line in section.splitlines()[1:]
                       if line[7:8].isdigit() and line.split()[0].isdigit())
        assert found == codes, program
        assert "FILES" in text and "SEE ALSO" in text
    top = rendered["mydiag"][0]
    for variable in ("MYDIAG_HOME", "MYDIAG_DEBUG", "MYDIAG_TOKEN"):
        assert variable in top
    assert "/etc/mydiag/agent.toml" in top and "host_ed25519.key" in top
    assert f"mydiag {__version__}" in top


def test_pages_are_what_the_script_writes_and_the_same_on_every_build(dist_man, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gen_manpages", ROOT / "scripts" / "gen_manpages.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gen_manpages", module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    generated = module.pages()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in dist_man.glob("*.1")}
    assert generated == on_disk
    assert '"2023\\-11\\-14"' in on_disk["mydiag.1"].splitlines()[1]  # the date from SOURCE_DATE_EPOCH
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    undated: List[str] = module.pages()["mydiag-collect.1"].splitlines()
    assert undated[1].startswith('.TH "MYDIAG\\-COLLECT" 1 "" '), "no build date without SOURCE_DATE_EPOCH"
    assert module.pages()["mydiag-collect.1"] == "\n".join(undated) + "\n"
