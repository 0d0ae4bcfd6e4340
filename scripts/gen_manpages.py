"""Man pages for `mydiag` and `mydiag-server`, written from their argparse parsers.

    python scripts/gen_manpages.py --out build/man

writes mydiag.1, one mydiag-<command>.1 per command and nested command
(mydiag-session-grant.1), and the same for mydiag-server. Every name, option, metavar,
choice and help line comes from the parsers (agent.cli.build_parser(),
server.cli.main.build_parser()), the exit codes from agent/exitcodes.py and
server/exitcodes.py (their `#:` comments), so a page cannot drift from the program.

The roff is written here rather than by argparse-manpage: that tool makes one page per
program with the subcommands inlined, knows nothing of exit codes, and would be one more
build dependency for some 200 lines of man(7). The output is reproducible: the date is
SOURCE_DATE_EPOCH's (UTC) when set, and otherwise left out, so nothing in a page changes
between two builds of the same tree.

gen_completion.py walks the parsers with `commands()` from this file too.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bundle.version import FORMAT_VERSION, __version__  # noqa: E402

#: What argparse calls the default option group (3.9 and 3.10+ differ).
_DEFAULT_GROUPS = ("options", "optional arguments")
_POSITIONAL_GROUP = "positional arguments"
_MANUAL = "mydiag manual"

#: Punctuation the help texts use, as plain roff (the rest of non-ASCII becomes \[uXXXX]).
_GLYPHS = {"\u2026": "...", "\u2192": "\\(->", "\u2190": "\\(<-", "\u2014": "\\(em", "\u2013": "\\(en",
           "\u2019": "'", "\u2018": "`", "\u201c": "\\(lq", "\u201d": "\\(rq", "\u00d7": "\\(mu",
           "\u2264": "\\(<=", "\u2265": "\\(>=", "\u00a0": "\\ "}

#: What the programs read from their environment, per program.
ENVIRONMENT = {
    "mydiag": [
        ("MYDIAG_HOME", "The state directory (host key, pinned recipients, spool, pseudonym map, "
                        "session records). Default: /var/lib/mydiag for root, "
                        "~/.local/share/mydiag for anyone else."),
        ("MYDIAG_DEBUG", "When set, an internal error shows its Python traceback instead of the "
                         "one-line message (exit status 1)."),
        ("MYDIAG_TOKEN", "The ticket's upload token for upload, enroll, collect --upload and "
                         "session grant, when neither --token-file nor --token is given (a "
                         "token on the command line is visible to other users)."),
        ("HOME", "Where ~/.my.cnf ([client] and [mydiag] groups) and the default state "
                 "directory of a non-root user are looked for."),
        ("PATH", "Where the optional tools are found: gdb or eu-stack (--stacks), age, zstd, "
                 "ssh, systemctl, journalctl. `mydiag self-check` says which exist."),
    ],
    "mydiag-server": [
        ("MYDIAG_DEBUG", "When set, an internal error shows its Python traceback."),
        ("MYDIAG_PUBLIC_URL", "The address engineers and customers open (e.g. "
                              "https://support.example.com), for links in mail and the web pages."),
        ("MYDIAG_WEB_IDLE_HOURS", "A web session unused this long ends (default 12)."),
        ("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY", "The S3 blob store's credentials when "
                                                     "init was not given --s3-credentials-file."),
    ],
}

def files(program: str) -> List[Tuple[str, str]]:
    """What the program reads and writes, named by the modules that own each path."""
    if program == "mydiag":
        from agent.daemon import service
        from agent.home import HOST_KEY_NAME

        return [
            ("/var/lib/mydiag/", "The state directory of root and of the systemd service "
                                 "(MYDIAG_HOME overrides it)."),
            ("~/.local/share/mydiag/", "The state directory of any other user."),
            (f"$MYDIAG_HOME/{HOST_KEY_NAME}", "This host's signing key (`mydiag keys`)."),
            (service.DEFAULT_CONFIG, "The scheduled agent's configuration (`mydiag agent`)."),
            (f"{service.DEFAULT_UNIT_DIR}/{service.UNIT_NAME}",
             "The systemd unit of the scheduled agent, as `mydiag agent install-service` writes it "
             "(a package installs its own in the system unit folder)."),
            ("~/.my.cnf", "Connection options, [client] and [mydiag] groups, unless --defaults-file "
                          "names another file."),
        ]
    from server.config import CONFIG, IDENTITY, SQLITE

    return [
        (f"DATA/{CONFIG}", "The data directory's settings, written by `mydiag-server init`."),
        (f"DATA/{IDENTITY}", "The server's age identity: bundles are sealed to its recipient."),
        (f"DATA/{SQLITE}", "The SQLite database, unless init was given --database postgresql://..."),
        ("DATA/blobs/", "Bundles and uploads, unless the blob store is S3."),
    ]


@dataclass
class Command:
    """One page: a program or a (nested) command of it."""

    words: Tuple[str, ...]
    parser: argparse.ArgumentParser
    summary: str
    children: List[Command] = field(default_factory=list)

    @property
    def page(self) -> str:
        return "-".join(self.words)

    @property
    def options(self) -> List[argparse.Action]:
        return [a for a in self.parser._actions
                if a.option_strings and a.help != argparse.SUPPRESS]

    @property
    def positionals(self) -> List[argparse.Action]:
        return [a for a in self.parser._actions if not a.option_strings
                and not isinstance(a, argparse._SubParsersAction) and a.help != argparse.SUPPRESS]


def commands(parser: argparse.ArgumentParser, words: Tuple[str, ...], summary: str = "") -> Command:
    """The command tree under `parser`, in the order the parser declares it."""
    node = Command(words, parser, summary or parser.description or "")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                node.children.append(commands(child, words + (name,), helps.get(name, "")))
    return node


def walk(node: Command) -> Iterator[Command]:
    yield node
    for child in node.children:
        yield from walk(child)


def programs() -> List[Command]:
    """Both programs' command trees."""
    from agent.cli import build_parser as agent_parser
    from server.cli.main import build_parser as server_parser

    return [commands(agent_parser(), ("mydiag",), "safe MySQL diagnostics for asynchronous support"),
            commands(server_parser(), ("mydiag-server",), "the mydiag support server")]


def exit_codes(module_path: Path) -> List[Tuple[int, str]]:
    """(code, meaning) from an exitcodes module: each `NAME = N` and the `#:` lines above it."""
    codes: List[Tuple[int, str]] = []
    comment: List[str] = []
    for line in module_path.read_text().splitlines():
        stripped = line.strip()
        match = re.match(r"^[A-Z_]+\s*=\s*(\d+)\s*$", stripped)
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
        elif match:
            codes.append((int(match.group(1)), " ".join(comment) or "Success."))
            comment = []
        else:
            comment = []
    return codes


def text(value: str) -> str:
    """Running text as roff: escapes, one line, `code` in bold, no line starting a request."""
    value = " ".join(value.split())
    value = value.replace("\\", "\\e").replace("-", "\\-")
    value = "".join(_GLYPHS.get(ch, ch) if ord(ch) < 128 or ch in _GLYPHS else f"\\[u{ord(ch):04X}]"
                    for ch in value)
    value = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", value)
    return "\\&" + value if value[:1] in (".", "'") else value


def quoted(value: str) -> str:
    """A macro argument."""
    return '"' + text(value).replace('"', "\\(dq") + '"'


def sentence(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        return value
    value = value[0].upper() + value[1:]
    return value if value.endswith((".", "!", "?")) else value + "."


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(parser.prog, width=100_000)


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = _formatter(parser)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return " ".join(formatter.format_help().split())


def option_head(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """`-o, --output DIR` as roff: names bold, the value's metavar italic."""
    formatter = _formatter(parser)
    if action.option_strings:
        value = ""
        if action.nargs != 0:
            value = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
        names = ", ".join(f"\\fB{text(name)}\\fR" for name in action.option_strings)
        return names + (f" \\fI{text(value)}\\fR" if value else "")
    metavar = formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
    return f"\\fI{text(metavar)}\\fR"


def option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    return sentence(_formatter(parser)._expand_help(action))


def _date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return ""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%d")


def _manual(page: str) -> str:
    """The header's middle: left out where the page's title, twice, leaves no room for it in
    80 columns (man would print them over each other)."""
    return _MANUAL if 2 * len(f"{page}(1)") + len(_MANUAL) + 4 <= 80 else ""


def _section_title(title: Optional[str]) -> str:
    return "OPTIONS" if title in _DEFAULT_GROUPS or not title else title


def render(node: Command, program: Command) -> str:
    """The man page of `node`, a command of `program` (or the program itself)."""
    parser, name = node.parser, " ".join(node.words)
    top = node is program
    lines = [
        f'.\\" Generated by scripts/gen_manpages.py from {program.page}\'s argparse parser: do not edit.',
        f".TH {quoted(node.page.upper())} 1 {quoted(_date())} {quoted(f'mydiag {__version__}')} "
        f"{quoted(_manual(node.page))}",
        # No hyphenation and ragged right: option names and page names stay whole.
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{text(node.page)} \\- {text(node.summary.rstrip('.'))}",
        ".SH SYNOPSIS",
        f"\\fB{text(name)}\\fR {text(usage(parser)[len(parser.prog):])}",
        ".SH DESCRIPTION",
    ]
    description = parser.description or node.summary
    lines.append(text(sentence(description)))
    if top:
        lines += [".PP", text(f"{node.page} {__version__} reads and writes bundle format {FORMAT_VERSION}; "
                              f"`{node.page} --version` says both.")]
    if parser.epilog:
        lines += [".PP", text(parser.epilog)]
    if node.children:
        lines.append(".SH COMMANDS")
        for child in walk(node):
            if child is node:
                continue
            lines += [".TP", f"\\fB{text(' '.join(child.words[1:]))}\\fR",
                      text(sentence(child.summary)) + f" See \\fB{text(child.page)}\\fR(1)."]
    groups = [g for g in parser._action_groups
              if any(a in g._group_actions for a in node.options + node.positionals)]
    for group in sorted(groups, key=lambda g: g.title != _POSITIONAL_GROUP):
        title = "ARGUMENTS" if group.title == _POSITIONAL_GROUP else _section_title(group.title)
        if title in ("ARGUMENTS", "OPTIONS"):
            lines.append(f".SH {title}")
        else:
            if not any(line == ".SH OPTIONS" for line in lines):
                lines.append(".SH OPTIONS")
            lines.append(f".SS {quoted(sentence(title).rstrip('.'))}")
        for action in group._group_actions:
            if action in node.options or action in node.positionals:
                lines += [".TP", option_head(parser, action)]
                help_text = option_help(parser, action)
                if help_text:
                    lines.append(text(help_text))
    if top:
        package = "agent" if node.page == "mydiag" else "server"
        lines.append(".SH EXIT STATUS")
        for code, meaning in exit_codes(ROOT / package / "exitcodes.py"):
            lines += [".TP", f"\\fB{code}\\fR", text(meaning)]
        lines.append(".SH ENVIRONMENT")
        for variable, meaning in ENVIRONMENT[node.page]:
            lines += [".TP", f"\\fB{text(variable)}\\fR", text(meaning)]
        lines.append(".SH FILES")
        for path, meaning in files(node.page):
            lines += [".TP", f"\\fI{text(path)}\\fR", text(meaning)]
    else:
        lines += [".SH EXIT STATUS", f"As for \\fB{text(program.page)}\\fR(1)."]
    lines += [".SH SEE ALSO", _see_also(node, program)]
    return "\n".join(lines) + "\n"


def _see_also(node: Command, program: Command) -> str:
    pages: List[str] = []
    if node is program:
        pages = [child.page for child in walk(node) if child is not node]
        pages.append("mydiag-server" if node.page == "mydiag" else "mydiag")
    else:
        pages.append(program.page)
        parent = "-".join(node.words[:-1])
        if parent != program.page:
            pages.append(parent)
        pages += [child.page for child in node.children]
    return ",\n".join(f"\\fB{text(page)}\\fR(1)" for page in pages)


def pages() -> Dict[str, str]:
    """File name -> page text, for every page of both programs."""
    out: Dict[str, str] = {}
    for program in programs():
        for node in walk(program):
            out[f"{node.page}.1"] = render(node, program)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Write the man pages of mydiag and mydiag-server.")
    parser.add_argument("--out", required=True, type=Path, help="the folder to write NAME.1 into")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = pages()
    for stale in args.out.glob("mydiag*.1"):
        if stale.name not in written:
            stale.unlink()
    for name, page in written.items():
        (args.out / name).write_text(page, encoding="utf-8")
    print(f"{len(written)} man pages in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
