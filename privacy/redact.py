"""The redaction pipeline: every artifact passes through it before it is written.

`Redactor.apply(path, data)` (and `Redactor.stream` for big text) chooses by member path:
JSON is parsed and redacted by structure (a key named like a secret loses its value, a
statement field is fingerprinted, every string goes through the text rules) and written
back, so a secret is never matched in its escaped form; text is redacted line by line in
blocks of bounded size, slow logs get their statements fingerprinted first, and the
contents of key files go entirely. The report counts which rule fired how often, in
total and per file, never what it removed.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter
from typing import IO, Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from privacy.fingerprint import fingerprint
from privacy.innodb_status import ErrorLogInnodb, InnodbStatus
from privacy.pseudonym import Pseudonymizer
from privacy.rules import (
    MASK,
    NEEDLES,
    OPTIONS_FIRST,
    PROBE_RULES,
    RULES,
    TOOL_SECRET_FLAGS,
    USER_PASSWORD_FLAGS,
    Rule,
    benign_value,
    is_secret_name,
    looks_like_option,
    placeholder,
    tool_of,
)
from privacy.slowlog import SlowLogStatements

__all__ = ["MASK", "Redactor", "redact_stream"]

#: Bytes read at a time from a stream; blocks end at a line end.
BLOCK = 1 << 20
#: A line longer than this is left out (its start and end cannot be told apart safely).
MAX_LINE = 1 << 20

OVERLONG = f"{MASK} line longer than {MAX_LINE >> 20} MiB left out"
KEY_FILE = f"{MASK} contents of a key file"

#: JSON keys whose string value is SQL text: reduced to a fingerprint anywhere, and
#: (the generic names) in MySQL members only.
STATEMENT_KEYS = frozenset({
    "sql_text", "query_sample_text", "digest_text", "current_statement", "last_statement",
    "trx_query",
})
MYSQL_STATEMENT_KEYS = STATEMENT_KEYS | {"info", "statement", "query", "argument", "sql"}
#: Rows that name a setting in one field and hold its value in another.
_PAIR_NAMES = ("variable_name", "name", "option", "key", "variable", "option_name", "setting")
_PAIR_VALUES = (
    "value", "variable_value", "val", "current_value", "file_value", "running_value",
    "global_value", "session_value", "default_value",
)

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
_PEM_BEGIN = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]{1,60})-----(?P<body>.*?)(?P<end>-----END (?P=kind)-----|$)"
)
_PEM_BODY = re.compile(
    r"\s*[\"']?[A-Za-z0-9+/=]*(?:\\n)?[\"',]*\s*|\s*(?:Proc-Type|DEK-Info|Comment):.*"
)

Count = Callable[[str, int], None]


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
        return _Json(self.counter(path), path).walk(value)

    def _json_out(
        self, path: str, documents: List[Any], kind: str, raw: bytes, count: Count
    ) -> bytes:
        walker = _Json(count, path)
        clean = [walker.walk(doc) for doc in documents]
        if self.pseudonymizer is not None:
            for doc in clean:
                self.pseudonymizer.learn_json(doc)
        return dump_json(clean, kind, raw)


def dump_json(documents: List[Any], kind: str, raw: bytes) -> bytes:
    """Serialize like the collector did: indented when the original was, one per line for JSONL."""
    if kind == "jsonl":
        return "".join(json.dumps(doc, sort_keys=True, default=str) + "\n" for doc in documents).encode()
    indent = 2 if b"\n " in raw[:4096] else None
    body = json.dumps(documents[0], indent=indent, sort_keys=True, default=str)
    return (body + ("\n" if raw.endswith(b"\n") else "")).encode()


def json_documents(data: bytes, kind: str) -> Optional[List[Any]]:
    try:
        text = data.decode("utf-8")
        if kind == "json":
            return [json.loads(text)]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


class _Json:
    """Structured redaction of one JSON document."""

    def __init__(self, count: Count, path: str) -> None:
        self.count = count
        self.lines = Lines(count)
        self.statement_keys = MYSQL_STATEMENT_KEYS if path.startswith("mysql/") else STATEMENT_KEYS

    def walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._dict(value)
        if isinstance(value, list):
            if value and all(isinstance(v, str) for v in value):
                return self._argv(value)
            return [self.walk(v) for v in value]
        if isinstance(value, str):
            return self._string(value)
        return value

    def _string(self, value: str) -> str:
        self.lines.in_pem = False
        return self.lines.block(value)

    def _dict(self, value: Dict[Any, Any]) -> Dict[Any, Any]:
        pair_name = next(
            (v for k, v in value.items() if str(k).lower() in _PAIR_NAMES and isinstance(v, str)),
            None,
        )
        secret_pair = pair_name is not None and is_secret_name(pair_name)
        out: Dict[Any, Any] = {}
        for key, item in value.items():
            low = str(key).lower()
            if _scalar(item) and (
                (is_secret_name(str(key)) and not benign_value(str(item), str(key)))
                or (secret_pair and low in _PAIR_VALUES and not benign_value(str(item), pair_name))
            ):
                self.count("secret_field", 1)
                out[key] = MASK
            elif low in self.statement_keys and isinstance(item, str):
                reduced = fingerprint(item)
                if reduced != " ".join(item.split()):
                    self.count("statement_fingerprint", 1)
                out[key] = self._string(reduced)
            else:
                out[key] = self.walk(item)
        return out

    def _argv(self, argv: List[str]) -> List[str]:
        """A command line as a list: `--password x`, `-pSECRET`, `sshpass -p x` and
        `curl -u user:x` need their neighbours."""
        tool = any(re.search(r"mysql|mariadb|backup|dump", a, re.I) for a in argv[:2])
        out: List[str] = []
        secret_next = ""
        flags: Tuple[str, ...] = ()
        options_first: FrozenSet[str] = frozenset()
        previous = ""
        for arg in argv:
            if secret_next and not looks_like_option(arg) and not benign_value(arg):
                out.append(self._tool_value(secret_next, arg))
                secret_next = previous = ""
                continue
            secret_next = ""
            program = tool_of(arg)
            if program is not None:
                flags = TOOL_SECRET_FLAGS[program]
                options_first = OPTIONS_FIRST.get(program, frozenset())
            elif options_first and not arg.startswith("-") and previous not in options_first:
                # The command the tool runs begins: its flags are its own (`ssh -p 22`).
                flags, options_first = (), frozenset()
            previous = arg
            if tool and len(arg) > 2 and arg.startswith("-p"):
                self.count("command_line_secret", 1)
                out.append("-p" + MASK)
                continue
            attached = next((f for f in flags if arg.startswith(f) and len(arg) > len(f)
                             and (len(f) == 2 or arg[len(f)] == "=")), None)
            if attached is not None and arg not in flags:
                value = arg[len(attached):]
                sep = "=" if value.startswith("=") else ""
                out.append(attached + sep + self._tool_value(attached, value[len(sep):]))
                continue
            flag = re.fullmatch(r"--?([A-Za-z][\w.-]*)", arg)
            if arg in flags:
                secret_next = arg
            elif flag and is_secret_name(flag.group(1)):
                secret_next = "--password"
            out.append(self._string(arg))
        return out

    def _tool_value(self, flag: str, value: str) -> str:
        if flag in USER_PASSWORD_FLAGS:
            user, colon, secret = value.partition(":")
            if not colon or placeholder(secret):
                return self._string(value)
            self.count("command_line_secret", 1)
            return user + ":" + MASK
        self.count("command_line_secret", 1)
        return MASK


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


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
