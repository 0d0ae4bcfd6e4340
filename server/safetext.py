"""Customer-controlled text made safe for a terminal or an HTTP header.

A manifest's host, a member name or a quarantine reason comes from a customer and may
hold anything: an ESC that recolours or rewrites an engineer's terminal, a CR/LF that
ends an HTTP header early, a U+2028 that breaks a line in some viewers, a bidi override
that shows text in another order than it is. Such characters are shown as visible
escapes (`\\x1b`, `\\u2028`) instead of being dropped, so the engineer still sees that
something was there. Every place that prints customer text or puts it into a header
goes through here.
"""

from __future__ import annotations

import unicodedata

#: Categories never shown raw: controls (C0, DEL, C1), format characters (bidi
#: overrides, zero-width), line and paragraph separators, surrogates, unassigned.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


#: Format characters that reorder or hide text (bidi embeddings, overrides, isolates, marks).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def has_controls(text: str) -> bool:
    """Whether `text` holds a control, separator, surrogate or bidi character (refused on input
    where one line of plain text is expected; emoji joiners and other format marks pass)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") or c in _BIDI for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str) -> str:
    """`text` with every control, format or separator character shown as an escape.

    A backslash is doubled, so an escape a customer typed cannot pass for one made here.
    """
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char) in _HIDDEN:
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


def header_value(text: str, limit: int = 500) -> str:
    """`text` fit for an HTTP header value: printable ASCII only, at most `limit` characters."""
    shown = "".join(c if " " <= c <= "~" else _escape(c) for c in visible(text))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
