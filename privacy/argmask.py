"""A command line the last look would refuse, with what it would take for a secret masked.

For a record of another program's arguments (the process table), where one odd argument
must cost that argument, not the bundle. The redaction rules still do their work first: an
argument they would mask (`--password=x`, `-px`, `sshpass -p x`) is left for them, so they
mask it the way they always do and count it. Only what the last look would still find after
them is masked here: the argument's value (`--opt=<redacted>`) or the whole argument, and a
line still flagged after that keeps only the program's name.
"""

from __future__ import annotations

import json
from typing import List, Tuple

from privacy.jsonredact import JsonRedaction
from privacy.lint import _TOKEN, lint_line, random_looking

MASK = "<redacted>"


def _flagged(args: List[str]) -> bool:
    return bool(lint_line(" ".join(args)) or lint_line(json.dumps(args)))


def _after_rules(args: List[str]) -> List[str]:
    return JsonRedaction(lambda rule, n: None, "os/processes.jsonl").walk(list(args))


def _suspect(arg: str) -> bool:
    return bool(lint_line(arg)) or any(random_looking(t) for t in _TOKEN.findall(arg))


def _masked(arg: str) -> str:
    name, sep, _ = arg.partition("=")
    if sep and not _suspect(name) and not lint_line(f"{name}={MASK}"):
        return f"{name}={MASK}"
    return MASK


def mask_arguments(args: List[str]) -> Tuple[List[str], bool]:
    """The arguments, with what the rules leave that still looks secret masked; and whether
    anything was."""
    if not args:
        return list(args), False
    redacted = _after_rules(args)
    if not _flagged(redacted):
        return list(args), False
    if len(redacted) != len(args):  # the rules keep one output per argument; be safe if not
        return [args[0], MASK], True
    kept = [args[0]] + [_masked(arg) if _suspect(after) else arg
                        for arg, after in zip(args[1:], redacted[1:])]
    if _flagged(_after_rules(kept)):
        kept = [args[0], MASK]
    return kept, True
