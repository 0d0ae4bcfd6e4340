"""The trigger conditions' parser: text to the expression tree of agent.daemon.triggers.

The language is described there. The parser is hand-written: a bad expression is refused
at start, with what is wrong and its position (`ExpressionError.explain`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from agent.daemon.triggers import (
    OS_VALUES,
    PROCESSLIST_FIELDS,
    PROCESSLIST_VALUES,
    Arith,
    Compare,
    Const,
    DiskFree,
    Expression,
    Host,
    Logic,
    Longest,
    Negate,
    Node,
    Not,
    Processes,
    Rate,
    Status,
)

COMPARISONS = ("<=", ">=", "==", "!=", "<", ">", "=")


class ExpressionError(Exception):
    def __init__(self, message: str, text: str, position: int) -> None:
        super().__init__(message)
        self.message, self.text, self.position = message, text, position

    def explain(self) -> str:
        rest = self.text[self.position:].strip()
        found = f"found {rest[:30]!r}" if rest else "found the end"
        return f"at position {self.position + 1} of {self.text!r}: {self.message} ({found})"


# -- the parser ----------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op><=|>=|==|!=|&&|\|\||[<>=+\-*/(),.!])
    )""",
    re.VERBOSE,
)


@dataclass
class _Token:
    kind: str  # number string path name op end
    text: str
    position: int


def _tokens(text: str) -> List[_Token]:
    found: List[_Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            found.append(_Token("end", "", position))
            return found
        if (text[position] == "/" and len(found) >= 2 and found[-1].text == "("
                and found[-2].text.lower() == "disk_free_pct"):
            # A bare path is only read as one right after `disk_free_pct(`: elsewhere '/' divides.
            end = position
            while end < len(text) and not text[end].isspace() and text[end] not in "()\"',":
                end += 1
            found.append(_Token("path", text[position:end], position))
            position = end
            continue
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            if text[position] in "\"'":
                raise ExpressionError("a string is not closed", text, position)
            raise ExpressionError(f"unexpected character {text[position]!r}", text, position)
        kind = match.lastgroup or "op"
        start = match.start(kind)
        found.append(_Token(kind, match.group(kind), start))
        position = match.end()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, message: str, token: Optional[_Token] = None) -> ExpressionError:
        return ExpressionError(message, self.text, (token or self.token).position)

    def advance(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.token
        return (token.kind == "name" and token.text.upper() in words) or (
            token.kind == "op" and token.text in {"AND": ("&&",), "OR": ("||",),
                                                  "NOT": ("!",)}.get(words[0], ()))

    def expect(self, text: str, what: str) -> _Token:
        if self.token.kind == "op" and self.token.text == text:
            return self.advance()
        raise self.fail(f"expected {what}")

    def parse(self) -> Expression:
        if self.token.kind == "end":
            raise self.fail("the condition is empty")
        start = self.token
        root = self.disjunction()
        if self.token.kind != "end":
            if self.token.kind == "op" and self.token.text == ")":
                raise self.fail("this ')' has no matching '('")
            raise self.fail("expected AND, OR, a comparison or the end")
        if root.kind != "truth":
            raise self.fail("a condition needs a comparison, like `Threads_running > 50`", start)
        return Expression(self.text, root)

    def disjunction(self) -> Node:
        return self._logic("or", "OR", self.conjunction)

    def conjunction(self) -> Node:
        return self._logic("and", "AND", self.negation)

    def _logic(self, op: str, word: str, part: Callable[[], Node]) -> Node:
        start = self.token
        parts = [part()]
        while self.keyword(word):
            self.advance()
            begin = self.token
            parts.append(part())
            self._truth(parts[-1], begin, word)
        if len(parts) == 1:
            return parts[0]
        self._truth(parts[0], start, word)
        return Logic(op, parts)

    def _truth(self, node: Node, token: _Token, word: str) -> None:
        if node.kind != "truth":
            raise self.fail(f"{word} joins comparisons; this is a number (compare it with < > <= >=)",
                            token)

    def negation(self) -> Node:
        if self.keyword("NOT"):
            self.advance()
            begin = self.token
            operand = self.negation()
            self._truth(operand, begin, "NOT")
            return Not(operand)
        return self.comparison()

    def comparison(self) -> Node:
        start = self.token
        left = self.sum()
        if self.token.kind == "op" and self.token.text in COMPARISONS:
            op_token = self.advance()
            if left.kind != "number":
                raise self.fail("a comparison compares numbers, not conditions", start)
            begin = self.token
            right = self.sum()
            if right.kind != "number":
                raise self.fail("a comparison compares numbers, not conditions", begin)
            if self.token.kind == "op" and self.token.text in COMPARISONS:
                raise self.fail("comparisons do not chain: join them with AND")
            return Compare(op_token.text, left, right)
        return left

    def sum(self) -> Node:
        return self._arith(("+", "-"), self.product)

    def product(self) -> Node:
        return self._arith(("*", "/"), self.unary)

    def _arith(self, ops: Tuple[str, ...], part: Callable[[], Node]) -> Node:
        start = self.token
        node = part()
        while self.token.kind == "op" and self.token.text in ops:
            op = self.advance().text
            begin = self.token
            right = part()
            for side, where in ((node, start), (right, begin)):
                if side.kind != "number":
                    raise self.fail(f"'{op}' needs numbers, not a condition", where)
            node = Arith(op, node, right)
        return node

    def unary(self) -> Node:
        if self.token.kind == "op" and self.token.text == "-":
            self.advance()
            return Negate(self.unary())
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Const(float(token.text))
        if token.kind == "op" and token.text == "(":
            self.advance()
            node = self.disjunction()
            self.expect(")", f"')' for the '(' at position {token.position + 1}")
            return node
        if token.kind == "name" and token.text.upper() not in ("AND", "OR", "NOT"):
            return self.name()
        if token.kind == "end":
            raise self.fail("the condition ends too early: expected a number or a name")
        raise self.fail("expected a number, a name or '('")

    def name(self) -> Node:
        token = self.advance()
        word = token.text
        lower = word.lower()
        if self.token.kind == "op" and self.token.text == ".":
            if lower != "processlist":
                raise self.fail(f"{word!r} has no fields (only processlist.state/command/user do)")
            self.advance()
            member = self.token
            if member.kind != "name" or member.text.lower() not in PROCESSLIST_FIELDS:
                raise self.fail("expected state, command or user after 'processlist.'")
            self.advance()
            self.expect("(", f'\'(\' and a quoted value, like processlist.{member.text}("…")')
            value = self._string('a quoted value like "Waiting for table metadata lock"')
            self.expect(")", "')'")
            return Processes(member.text.lower(), value)
        if self.token.kind == "op" and self.token.text == "(":
            self.advance()
            if lower == "rate":
                argument = self.token
                if argument.kind != "name":
                    raise self.fail("rate() takes a status counter's name, like rate(Com_select)")
                self.advance()
                self.expect(")", "')' after the counter's name")
                return Rate(argument.text)
            if lower == "disk_free_pct":
                argument = self.token
                if self.token.kind == "path":
                    path = self.advance().text
                else:
                    path = self._string('a path, like disk_free_pct("/var/lib/mysql")')
                if not path.startswith("/"):
                    raise self.fail("disk_free_pct() needs an absolute path", argument)
                self.expect(")", "')' after the path")
                return DiskFree(path)
            raise self.fail(f"unknown function {word!r} (known: rate, disk_free_pct, "
                            "processlist.state/command/user)", token)
        if lower in OS_VALUES:
            return Host(lower)
        if lower in PROCESSLIST_VALUES:
            return Longest()
        if lower in ("rate", "disk_free_pct"):
            raise self.fail(f"{lower} needs '(' and an argument")
        if lower == "processlist":
            raise self.fail("expected processlist.state(…), processlist.command(…) or processlist.user(…)")
        return Status(word)

    def _string(self, what: str) -> str:
        if self.token.kind != "string":
            raise self.fail(f"expected {what}")
        return self.advance().text[1:-1]


def parse(text: str) -> Expression:
    """Parse a condition; ExpressionError says what is wrong and where."""
    return _Parser(text).parse()
