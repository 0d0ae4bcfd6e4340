"""Bash completion as a user meets it: the generated script sourced into a real bash (with
bash-completion loaded, as on an installed host), COMP_WORDS set the way readline splits a
line, the completion function called, COMPREPLY read back."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import pytest

from agent.cli import build_parser as agent_parser
from server.cli.main import build_parser as server_parser
from tests.packaging.conftest import need

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def complete(folder: Path, *lines: Sequence[str]) -> List[List[str]]:
    """COMPREPLY for each line (its words; the last is the one being completed), in one bash."""
    need("bash")
    if not BASH_COMPLETION.is_file():
        pytest.fail("bash-completion is not installed: run `bash scripts/system-deps.sh`", pytrace=False)
    body = [f"source {shlex.quote(str(BASH_COMPLETION))}"]
    for program in {words[0] for words in lines}:
        body.append(f"source {shlex.quote(str(folder / program))}")
    for words in lines:
        line = " ".join(words)
        body += [
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
            f"COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}",
            f"COMP_POINT={len(line)}",
            "COMPREPLY=()",
            f"_comp_fn=$(complete -p {shlex.quote(words[0])} | sed -E 's/.*-F ([^ ]+).*/\\1/')",
            '"$_comp_fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
            "printf '%s\\0' \"${COMPREPLY[@]}\"; printf '\\n--end--\\n'",
        ]
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(body)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    replies = done.stdout.split("\n--end--\n")[:-1]
    assert len(replies) == len(lines)
    return [sorted(r for r in reply.split("\0") if r) for reply in replies]


def one(folder: Path, *words: str) -> List[str]:
    return complete(folder, words)[0]


Command = Tuple[List[str], argparse.ArgumentParser]


def commands(name: str, parser: argparse.ArgumentParser) -> Iterator[Command]:
    yield [name], parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, child in action.choices.items():
                for words, sub in commands(name, child):
                    yield [words[0], word, *words[1:]], sub


def subcommands(parser: argparse.ArgumentParser) -> List[str]:
    return sorted(word for action in parser._actions if isinstance(action, argparse._SubParsersAction)
                  for word in action.choices)


def test_mydiag_tab_lists_every_command_and_a_prefix_completes_it(dist_completion):
    every, prefix, options = complete(dist_completion, ["mydiag", ""], ["mydiag", "col"],
                                      ["mydiag", "collect", "--pro"])
    assert every == subcommands(agent_parser()) and "self-check" in every and "session" in every
    assert prefix == ["collect"]
    assert options == ["--profile"]


def test_nested_commands_and_an_options_choices(dist_completion):
    session, ticket, profile, store, after_value = complete(
        dist_completion, ["mydiag", "session", ""], ["mydiag-server", "ticket", ""],
        ["mydiag", "collect", "--profile", ""], ["mydiag-server", "init", "--blob-store", "s"],
        ["mydiag", "collect", "--profile", "quick", "--js"])
    assert session == ["grant", "list", "replay", "revoke"]
    assert ticket == ["create"]
    assert profile == ["full", "quick", "standard"]
    assert store == ["s3"]
    assert after_value == ["--json"]


def test_every_commands_options_are_offered(dist_completion):
    cases = []
    for program, parser in (("mydiag", agent_parser()), ("mydiag-server", server_parser())):
        for words, sub in commands(program, parser):
            wanted = sorted(o for a in sub._actions if a.help != argparse.SUPPRESS for o in a.option_strings)
            cases.append((words, wanted))
    replies = complete(dist_completion, *[[*words, "-"] for words, _ in cases])
    for (words, wanted), reply in zip(cases, replies):
        assert reply == wanted, " ".join(words)


def test_a_path_option_completes_files_and_a_dir_option_folders(dist_completion, tmp_path):
    (tmp_path / "my.cnf").write_text("[client]\n")
    (tmp_path / "my-other.cnf").write_text("[client]\n")
    (tmp_path / "mybundles").mkdir()
    base = str(tmp_path / "my")
    files, split, joined, folders, bundle, not_a_path = complete(
        dist_completion,
        ["mydiag", "collect", "--defaults-file", base],
        # readline splits `--output=/x` at the `=` (COMP_WORDBREAKS): three words.
        ["mydiag", "unseal", "--identity", "=", base],
        ["mydiag", "collect", f"--defaults-file={base}"],
        ["mydiag", "collect", "--output", base],
        ["mydiag", "inspect", base],
        ["mydiag", "inspect", "x", "--show", base],
    )
    everything = sorted(str(p) for p in tmp_path.iterdir())
    assert files == everything and split == everything
    assert joined == [f"--defaults-file={p}" for p in everything]
    assert folders == [str(tmp_path / "mybundles")]
    assert bundle == everything
    assert not_a_path == []  # a member inside the bundle, not a file on this host


def test_bash_completion_loads_the_script_by_the_commands_name(dist_completion, tmp_path):
    """Installed as completions/mydiag, bash-completion's loader finds it on first use."""
    (tmp_path / "completions").mkdir()
    for name in ("mydiag", "mydiag-server"):
        (tmp_path / "completions" / name).write_text((dist_completion / name).read_text())
    script = (f"source {BASH_COMPLETION}; export BASH_COMPLETION_USER_DIR={shlex.quote(str(tmp_path))}; "
              "_completion_loader mydiag; _completion_loader mydiag-server; "
              "complete -p mydiag mydiag-server")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.dumps(done.stdout.split()) == json.dumps(
        ["complete", "-F", "_mydiag", "mydiag", "complete", "-F", "_mydiag_server", "mydiag-server"])
