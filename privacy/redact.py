"""The redaction pipeline: every artifact passes through it before it is written.

`Redactor.apply(path, data)` (and `Redactor.stream` for big text) chooses by member path:
JSON is parsed and redacted by structure (a key named like a secret loses its value, a
statement field is fingerprinted, every string goes through the text rules) and written
back, so a secret is never matched in its escaped form; text is redacted line by line in
blocks of bounded size, slow logs get their statements fingerprinted first, and the
contents of key files go entirely. The report counts which rule fired how often, in
total and per file, never what it removed. The JSON walk is `privacy.jsonredact`'s, the
rules over lines of text `privacy.linerules`'s; this module chooses and streams.
"""

from __future__ import annotations

import io
import re
import threading
from collections import Counter
from typing import IO, Any, Callable, Dict, List, Optional

from privacy.innodb_status import ErrorLogInnodb, InnodbStatus
from privacy.jsonredact import JsonRedaction, dump_json, json_documents
from privacy.linerules import Count, Lines
from privacy.pseudonym import Pseudonymizer
from privacy.rules import MASK
from privacy.slowlog import SlowLogStatements

__all__ = ["MASK", "Redactor", "dump_json", "json_documents", "kind_of", "redact_stream"]

#: Bytes read at a time from a stream; blocks end at a line end.
BLOCK = 1 << 20
#: A line longer than this is left out (its start and end cannot be told apart safely).
MAX_LINE = 1 << 20

OVERLONG = f"{MASK} line longer than {MAX_LINE >> 20} MiB left out"
KEY_FILE = f"{MASK} contents of a key file"

_KEY_FILE_PATH = re.compile(
    r"(?:^|/)(?:[^/]*[._-])?(?:key|keys|keyring|keyfile|keystore)(?:[._-][^/]*)?$"
    r"|\.(?:key|p12|pfx|jks|keystore|kdbx)$|(?:^|/)id_(?:rsa|dsa|ecdsa|ed25519)$",
    re.I,
)
_SLOW_LOG_PATH = re.compile(r"^logs/(?:.*/)?[^/]*slow[^/]*$", re.I)
_INNODB_STATUS_PATH = re.compile(r"^mysql/(?:.*/)?innodb_status[^/]*\.txt$")
_ERROR_LOG_PATH = re.compile(r"^logs/(?:.*/)?(?:[^/]*error[^/]*|[^/]*\.err)$", re.I)
#: Option files stay text for the rules even when their name says key (`keyring.cnf`).
_OPTION_FILE = re.compile(r"\.(?:cnf|conf|ini|service)$", re.I)


def kind_of(path: str) -> str:
    """How a member is redacted: json, jsonl, keyfile, slowlog, innodb, errorlog or text."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".jsonl"):
        return "jsonl"
    if _KEY_FILE_PATH.search(path) and not _OPTION_FILE.search(path):
        return "keyfile"
    if _SLOW_LOG_PATH.search(path):
        return "slowlog"
    if _INNODB_STATUS_PATH.search(path):
        return "innodb"
    if _ERROR_LOG_PATH.search(path):
        return "errorlog"
    return "text"


class Redactor:
    """Applies the rules to every member and counts what fired, in total and per file."""

    def __init__(self, pseudonymizer: Optional[Pseudonymizer] = None) -> None:
        self.pseudonymizer = pseudonymizer
        self._counts: Counter[str] = Counter()
        self._files: Dict[str, Counter[str]] = {}
        self._lock = threading.Lock()

    # --- counting --------------------------------------------------------------------

    def counter(self, path: str) -> Count:
        with self._lock:
            per_file = self._files.setdefault(path, Counter())

        def count(rule: str, n: int) -> None:
            per_file[rule] += n
            self._counts[rule] += n

        return count

    def report(self) -> Dict[str, int]:
        return dict(sorted(self._counts.items()))

    def file_report(self, path: str) -> Dict[str, int]:
        return dict(sorted(self._files.get(path, Counter()).items()))

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            if old in self._files:
                self._files[new] = self._files.pop(old)

    # --- members ---------------------------------------------------------------------

    def apply(self, path: str, data: bytes) -> bytes:
        """The redacted bytes of member `path`."""
        kind = kind_of(path)
        count = self.counter(path)
        if kind in ("json", "jsonl"):
            parsed = json_documents(data, kind)
            if parsed is not None:
                return self._json_out(path, parsed, kind, data, count)
        out = io.BytesIO()
        self.stream(path, io.BytesIO(data), out)
        return out.getvalue()

    def stream(self, path: str, src: IO[bytes], dst: IO[bytes]) -> int:
        """Redact text from `src` to `dst` in bounded memory; return the bytes written."""
        kind = kind_of(path)
        count = self.counter(path)
        if kind == "keyfile":
            while src.read(BLOCK):
                pass
            count("key_file", 1)
            body = (KEY_FILE + "\n").encode()
            dst.write(body)
            return len(body)
        learn = self.pseudonymizer.learn_text if self.pseudonymizer is not None else None
        return _stream(src, dst, count, kind=kind, learn=learn)

    def text(self, text: str, path: str = "manifest.json") -> str:
        """Redact a piece of text (an error message, a note) counted under `path`."""
        return Lines(self.counter(path)).block(text)

    def value(self, value: Any, path: str = "manifest.json") -> Any:
        """Redact a JSON-like value counted under `path`."""
        return JsonRedaction(self.counter(path), path).walk(value)

    def _json_out(
        self, path: str, documents: List[Any], kind: str, raw: bytes, count: Count
    ) -> bytes:
        walker = JsonRedaction(count, path)
        clean = [walker.walk(doc) for doc in documents]
        if self.pseudonymizer is not None:
            for doc in clean:
                self.pseudonymizer.learn_json(doc)
        return dump_json(clean, kind, raw)


#: What reduces statements and InnoDB's record dumps before the line rules run, by kind.
_STAGES: Dict[str, Callable[[Count], Any]] = {
    "slowlog": SlowLogStatements, "innodb": InnodbStatus, "errorlog": ErrorLogInnodb,
}


def _stream(
    src: IO[bytes], dst: IO[bytes], count: Count, *, kind: str = "text",
    learn: Optional[Callable[[str], None]] = None,
) -> int:
    lines = Lines(count)
    stage = _STAGES.get(kind)
    slow: Optional[Any] = stage(count) if stage is not None else None
    written = 0
    buffer = b""
    skipping = False

    def emit(block: bytes) -> None:
        nonlocal written
        text = block.decode("utf-8", "surrogateescape")
        if slow is not None:
            text = slow.block(text)
        if learn is not None:
            learn(text)
        data = lines.block(text).encode("utf-8", "surrogateescape")
        dst.write(data)
        written += len(data)

    while True:
        chunk = src.read(BLOCK)
        if not chunk:
            break
        buffer += chunk
        if skipping:
            cut = buffer.find(b"\n")
            if cut < 0:
                buffer = b""
                continue
            buffer = buffer[cut + 1:]
            skipping = False
        cut = buffer.rfind(b"\n")
        if cut >= 0:
            emit(buffer[:cut + 1])
            buffer = buffer[cut + 1:]
        if len(buffer) > MAX_LINE:
            count("overlong_line", 1)
            emit((OVERLONG + "\n").encode())
            buffer = b""
            skipping = True
    if buffer and not skipping:
        emit(buffer)
    if slow is not None:
        tail: List[str] = []
        slow.flush(tail)
        if tail:
            data = lines.block("".join(tail)).encode("utf-8", "surrogateescape")
            dst.write(data)
            written += len(data)
    return written


def redact_stream(src: IO[bytes], dst: IO[bytes], *, statements: bool = False) -> Dict[str, int]:
    """Redact a big text stream line by line in bounded memory; return rule → count.

    With `statements`, the input is a slow log and its statements become fingerprints.
    """
    counts: Counter[str] = Counter()

    def count(rule: str, n: int) -> None:
        counts[rule] += n

    _stream(src, dst, count, kind="slowlog" if statements else "text")
    return dict(sorted(counts.items()))
