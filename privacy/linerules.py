"""The always-on rules over whole lines of text, block by block.

`Lines.block` runs `privacy.rules.RULES` only on the lines of a block that hold one of
the rules' needles (or a probe's match), and keeps between blocks the one piece of state
a line cannot carry: a PEM block whose body goes on over the next lines, which goes
whole. Every match a rule replaces is counted under the rule's name.
"""

from __future__ import annotations

import re
from typing import Callable, List, Tuple

from privacy.rules import NEEDLES, PROBE_RULES, RULES, Rule

#: Counts a rule's replacements: (rule name, how many).
Count = Callable[[str, int], None]

_PEM_BEGIN = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]{1,60})-----(?P<body>.*?)(?P<end>-----END (?P=kind)-----|$)"
)
_PEM_BODY = re.compile(
    r"\s*[\"']?[A-Za-z0-9+/=]*(?:\\n)?[\"',]*\s*|\s*(?:Proc-Type|DEK-Info|Comment):.*"
)


class Lines:
    """Redacts blocks of whole lines; keeps the state a PEM block needs between blocks."""

    def __init__(self, count: Count) -> None:
        self.count = count
        self.in_pem = False
        self._rules: List[Rule] = [rule for rule in RULES if rule.name != "pem_block"]

    def _apply(self, rule: Rule, line: str) -> str:
        """`rule` over `line`, matches never overlapping a secret.

        A match the rule leaves alone (`name: …` where `name` is no secret's name)
        consumes nothing: the search goes on one character later, so the
        `password=value` inside its value is still found.
        """
        out: List[str] = []
        done = at = 0
        while at <= len(line):
            match = rule.pattern.search(line, at)
            if match is None:
                break
            replaced = rule.render(match)
            if replaced is None:
                at = match.start() + 1
                continue
            self.count(rule.name, 1)
            out.append(line[done:match.start()])
            out.append(replaced)
            done = match.end()
            at = max(done, match.start() + 1)
        if not out:
            return line
        out.append(line[done:])
        return "".join(out)

    def block(self, text: str) -> str:
        """Redact `text` (whole lines; a last line without its end is fine)."""
        spans = self._marked(text)
        if not spans and not self.in_pem:
            return text
        out: List[str] = []
        cursor = self._skip_pem(text, 0) if self.in_pem else 0
        for start, end in spans:
            if start < cursor:
                continue
            out.append(text[cursor:start])
            out.append(self.line(text[start:end]))
            cursor = end
            if self.in_pem and end < len(text):
                out.append("\n")
                cursor = self._skip_pem(text, end + 1)
        out.append(text[cursor:])
        return "".join(out)

    def _marked(self, text: str) -> List[Tuple[int, int]]:
        """The (start, end) of every line holding a needle or a probe match, in order."""
        low = text.lower()
        spans = set()
        for needle in NEEDLES:
            pos = low.find(needle)
            while pos >= 0:
                start = low.rfind("\n", 0, pos) + 1
                end = low.find("\n", pos)
                end = len(low) if end < 0 else end
                spans.add((start, end))
                pos = low.find(needle, end)
        for rule in PROBE_RULES:
            assert rule.probe is not None
            found = rule.probe.search(text)
            while found:
                start = text.rfind("\n", 0, found.start()) + 1
                end = text.find("\n", found.end())
                end = len(text) if end < 0 else end
                spans.add((start, end))
                found = rule.probe.search(text, end)
        return sorted(spans)

    def line(self, line: str) -> str:
        """Every rule on one line (no line end inside)."""
        low = line.lower()
        if "-----begin" in low:
            line = _PEM_BEGIN.sub(self._pem, line)
            low = line.lower()
        for rule in self._rules:
            if not any(n in low for n in rule.needles) and (
                rule.probe is None or not rule.probe.search(line)
            ):
                continue
            new = self._apply(rule, line)
            if new != line:
                line = new
                low = line.lower()
        return line

    def _pem(self, match: re.Match[str]) -> str:
        self.count("pem_block", 1)
        # No END on this line: the key's body follows on the next lines.
        self.in_pem = not match.group("end")
        return f"<redacted:pem {match.group('kind').strip().lower()}>"

    def _skip_pem(self, text: str, start: int) -> int:
        """Drop the lines of an open PEM block from `start`; return where to go on."""
        while self.in_pem and start < len(text):
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
            line = text[start:end]
            if "-----END " in line:
                self.in_pem = False
            elif not _PEM_BODY.fullmatch(line):
                self.in_pem = False
                return start
            start = end + 1
        return min(start, len(text))
