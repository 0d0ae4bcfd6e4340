"""HTML mail to plain text with the standard library's html.parser: no markup survives.

Only text nodes are kept (entities decoded); script, style, head, template and the like
are dropped with their content; block elements end lines; links keep their address in
brackets so an engineer sees where they point. The result is text: whatever looks like
markup in it was text in the mail (`&lt;b&gt;`) and is escaped wherever it is shown.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import List, Optional, Tuple

_DROP = frozenset({"script", "style", "head", "title", "template", "noscript", "object", "iframe",
                   "svg", "math", "select", "textarea"})
_BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
                    "pre", "table", "ul", "ol", "hr", "section", "article", "header", "footer", "dd", "dt"})
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Text(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.out: List[str] = []
        self.size = 0
        self.limit = limit
        self.dropping = 0
        self.quote = 0
        self.link: Optional[str] = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        if tag in _DROP:
            self.dropping += 1
        elif tag in _BLOCK:
            self._add("\n")
            if tag == "blockquote":
                self.quote += 1
            elif tag == "li":
                self._add("- ")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self.link = href if href.startswith(("http://", "https://", "mailto:")) else None

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        if tag in _BLOCK:
            self._add("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            self.dropping = max(0, self.dropping - 1)
        elif tag in _BLOCK:
            if tag == "blockquote":
                self.quote = max(0, self.quote - 1)
            self._add("\n")
        elif tag == "a" and self.link:
            self._add(f" [{self.link}]")
            self.link = None

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            if self.quote:
                data = data.replace("\n", "\n" + "> " * self.quote)
                if not self.out or self.out[-1].endswith("\n"):
                    data = "> " * self.quote + data.lstrip()
            self._add(data)

    def _add(self, text: str) -> None:
        if self.size < self.limit:
            self.out.append(text)
            self.size += len(text)


def to_text(html: str, limit: int = 1 << 20) -> str:
    parser = _Text(limit)
    try:
        parser.feed(html[: limit * 4])
        parser.close()
    except (AssertionError, ValueError):  # html.parser on hopeless input: keep what it read
        pass
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(parser.out).splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
