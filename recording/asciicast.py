"""Session recordings: asciicast v2 (plays with `asciinema play`), hash-chained beside it.

A recording of one engineer channel is two files:

```
N.cast    asciicast v2: a JSON header line, then one `[seconds, "o"|"i", text]` line
          per event: "o" what the engineer was shown, "i" what they typed or sent
N.chain   checkpoints of a running SHA-256 over the cast's lines: `LINE HEX` lines, and
          `END LINE HEX` when the recording was closed properly
```

chain(0) = SHA-256("mydiag-asciicast-chain-v1\\n" + header line); chain(n) =
SHA-256(chain(n-1) + line n), lines with their newline. A checkpoint is written at most
once per second of session time and at the end, so an edited or removed line breaks the
next checkpoint (found to within a second), and lines cut off the end contradict the
END line. The chain lives beside the cast because the stock player reads exactly three
fields per event. Whoever can rewrite both files can forge both: the final head is
therefore also kept apart from them (the server's append-only audit log, the agent's
session state) and `verify(…, anchor=…)` compares against it.

Both sides (agent and server gateway) feed the same events through `Recorder` and get
byte-identical files: times are integral microseconds, text is decoded from UTF-8 with
a decoder per stream (a character split between two reads stays whole), invalid bytes
become U+FFFD as on a terminal.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple

SEED = b"mydiag-asciicast-chain-v1\n"
CHECKPOINT_MICROS = 1_000_000
CAST = ".cast"
CHAIN = ".chain"


def seconds(micros: int) -> str:
    """Microseconds as the decimal seconds written into an event (exact, no float)."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def header_line(width: int, height: int, started: float, title: str, env: Dict[str, str],
                extra: Dict[str, Any]) -> bytes:
    """The asciicast v2 header; `mydiag` carries what the player ignores (who, why, what)."""
    header = {"version": 2, "width": max(1, int(width)), "height": max(1, int(height)),
              "timestamp": int(started), "title": title, "env": env, "mydiag": extra}
    return (json.dumps(header, sort_keys=True, ensure_ascii=True) + "\n").encode()


# Printable ASCII and the three whitespace escapes: what most terminal output is made of.
_PLAIN = bytes(range(0x20, 0x7F)) + b"\n\r\t"


def _plain_json(data: bytes) -> Optional[bytes]:
    """`json.dumps(data.decode())` as bytes without its quotes, computed with a few C-speed
    passes, for output that is plain ASCII text; None for anything else (the general path).
    Each pass over a large read allocates: as few as possible."""
    if data.translate(None, _PLAIN):
        return None
    body = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return body.replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t")


class Chain:
    def __init__(self, header: bytes) -> None:
        self.head = hashlib.sha256(SEED + header).digest()
        self.lines = 0

    def add(self, line: bytes) -> None:
        digest = hashlib.sha256(self.head)
        digest.update(line)
        self.head = digest.digest()
        self.lines += 1


class Recorder:
    """Writes one recording. Events are encoded, hashed and written on a thread of the
    recorder's own (a slow disk never stalls the session's data path), in the order
    `event` was called: callers serialize their calls in the order they send."""

    QUEUE = 4

    def __init__(self, base: Path, header: bytes) -> None:
        self.cast_path = base.with_suffix(CAST)
        self.chain_path = base.with_suffix(CHAIN)
        self.cast_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._cast = os.open(self.cast_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._chain_file = os.open(self.chain_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                                   0o600)
        self.chain = Chain(header)
        self.bytes = len(header)
        self._decoders = {"o": codecs.getincrementaldecoder("utf-8")("replace"),
                          "i": codecs.getincrementaldecoder("utf-8")("replace")}
        self._last_checkpoint = 0
        self.closed = False
        self.error: Optional[OSError] = None
        os.write(self._cast, header)
        self._checkpoint()
        self._queue: queue.Queue = queue.Queue(self.QUEUE)
        self._writer = threading.Thread(target=self._drain, name=f"recorder-{base.name}", daemon=True)
        self._writer.start()

    def event(self, kind: str, micros: int, data: bytes) -> None:
        """Record `data` ("o" shown, "i" typed) at `micros` since the start."""
        if not self.closed:
            self._queue.put((kind, micros, data))

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self._write(*item)
                except OSError as exc:
                    # Kept for close(): the caller decides (the session goes on being relayed).
                    self.error = exc

    def _write(self, kind: str, micros: int, data: bytes) -> None:
        data = bytes(data)
        decoder = self._decoders[kind]
        body = _plain_json(data) if not decoder.getstate()[0] else None
        if body is None:
            text = decoder.decode(data)
            if not text:
                return
            body = json.dumps(text).encode()[1:-1]
        elif not data:
            return
        self._line(b"".join((f"[{seconds(micros)}, \"{kind}\", \"".encode(), body, b"\"]\n")))
        if micros - self._last_checkpoint >= CHECKPOINT_MICROS:
            self._last_checkpoint = micros
            self._checkpoint()

    def _line(self, line: bytes) -> None:
        os.write(self._cast, line)
        self.chain.add(line)
        self.bytes += len(line)

    def _checkpoint(self, end: bool = False) -> None:
        mark = "END " if end else ""
        os.write(self._chain_file, f"{mark}{self.chain.lines} {self.chain.head.hex()}\n".encode())

    def close(self, micros: int) -> Tuple[int, str]:
        """Write what is queued and what the decoders hold, then the END checkpoint;
        (lines, head hex). Raises the OSError that stopped the recording, if one did."""
        if not self.closed:
            self.closed = True
            self._queue.put(None)
            self._writer.join()
            try:
                if self.error is None:
                    for kind, decoder in self._decoders.items():
                        rest = decoder.decode(b"", final=True)
                        if rest:
                            self._line(f"[{seconds(micros)}, \"{kind}\", {json.dumps(rest)}]\n".encode())
                    self._checkpoint(end=True)
                    os.fsync(self._cast)
                    os.fsync(self._chain_file)
            except OSError as exc:
                self.error = exc
            finally:
                os.close(self._cast)
                os.close(self._chain_file)
        if self.error is not None:
            raise self.error
        return self.chain.lines, self.chain.head.hex()


# -- reading ------------------------------------------------------------------------


@dataclass
class Verdict:
    """What `verify` found. `ok` only when every checkpoint and the END line hold."""

    path: Path
    lines: int = 0
    head: str = ""
    complete: bool = False
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.complete

    def describe(self) -> str:
        if self.ok:
            return f"{self.path.name}: verified ({self.lines} events, chain head {self.head[:16]}…)"
        if not self.problems:
            return (f"{self.path.name}: NOT VERIFIED: the recording has no END checkpoint (it was cut "
                    f"off, e.g. by a crash); {self.lines} events read")
        return f"{self.path.name}: TAMPERED: " + "; ".join(self.problems)


def _checkpoints(path: Path) -> Tuple[List[Tuple[int, str]], Optional[Tuple[int, str]], List[str]]:
    points: List[Tuple[int, str]] = []
    end: Optional[Tuple[int, str]] = None
    problems: List[str] = []
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return [], None, [f"the chain file {path.name} is missing"]
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split()
        is_end = bool(words) and words[0] == "END"
        if is_end:
            words = words[1:]
        if len(words) != 2 or not words[0].isdigit() or len(words[1]) != 64:
            problems.append(f"{path.name} line {number} is malformed")
            continue
        point = (int(words[0]), words[1].lower())
        if end is not None:
            problems.append(f"{path.name} goes on after its END line")
        if is_end:
            end = point
        else:
            points.append(point)
    return points, end, problems


def verify(cast: Path, anchor: Optional[str] = None) -> Verdict:
    """Recompute the chain over `cast` and hold it against its checkpoints (and `anchor`,
    the head kept elsewhere, when given)."""
    verdict = Verdict(cast)
    points, end, problems = _checkpoints(cast.with_suffix(CHAIN))
    verdict.problems += problems
    expected = {n: h for n, h in points}
    last_good = 0
    with open(cast, "rb") as handle:
        header = handle.readline()
        chain = Chain(header)
        if expected.get(0, chain.head.hex()) != chain.head.hex():
            verdict.problems.append("the header was changed")
        for line in handle:
            chain.add(line)
            want = expected.get(chain.lines)
            if want is not None:
                if want != chain.head.hex():
                    verdict.problems.append(
                        f"events {last_good + 1}-{chain.lines} were changed or removed")
                    break
                last_good = chain.lines
    verdict.lines, verdict.head = chain.lines, chain.head.hex()
    if verdict.problems:
        return verdict
    beyond = [n for n in expected if n > chain.lines]
    if beyond:
        verdict.problems.append(f"events after {chain.lines} were removed (checkpoint at {max(beyond)})")
    if end is not None:
        verdict.complete = True
        if end[0] != chain.lines or end[1] != chain.head.hex():
            verdict.problems.append(
                f"the recording ends at event {chain.lines}, its END checkpoint says {end[0]}"
                if end[0] != chain.lines else "the events since the last checkpoint were changed")
    if anchor is not None and anchor != chain.head.hex():
        verdict.problems.append("the chain head differs from the one kept apart from the files "
                                "(both files were rewritten)")
    return verdict


def header(cast: Path) -> Dict[str, Any]:
    with open(cast, "rb") as handle:
        data = json.loads(handle.readline() or b"{}")
    return data if isinstance(data, dict) else {}


def events(cast: Path) -> Iterator[Tuple[float, str, str]]:
    with open(cast, "rb") as handle:
        handle.readline()
        for raw in handle:
            try:
                moment, kind, text = json.loads(raw)
            except (ValueError, TypeError):
                continue
            yield float(moment), str(kind), str(text)


class Typing:
    """Turns keystrokes into the lines they typed: Enter ends a line, Backspace and
    Ctrl-U edit it, Ctrl-C abandons it, escape sequences (arrows) are dropped."""

    def __init__(self) -> None:
        self.line: List[str] = []
        self._escape = ""

    def feed(self, text: str) -> List[str]:
        done: List[str] = []
        for char in text:
            if self._escape:
                self._escape += char
                if (len(self._escape) == 2 and char not in "[O") or (
                        len(self._escape) > 2 and ("@" <= char <= "~")) or len(self._escape) > 16:
                    self._escape = ""
                continue
            if char == "\x1b":
                self._escape = char
            elif char in "\r\n":
                if self.line or char == "\r":
                    done.append("".join(self.line))
                self.line = []
            elif char in "\x7f\x08":
                if self.line:
                    self.line.pop()
            elif char == "\x15":
                self.line = []
            elif char == "\x03":
                if self.line:
                    done.append("".join(self.line) + " ^C")
                self.line = []
            elif char == "\x04":
                if not self.line:
                    done.append("^D")
            elif char == "\t" or char >= " ":
                self.line.append(char)
        return done


def commands(cast: Path) -> List[Tuple[float, str]]:
    """What was typed in the recording, line by line, with the time each line was sent;
    a one-command channel (`ssh … SESSION -- COMMAND`) starts with its command."""
    found: List[Tuple[float, str]] = []
    command = (header(cast).get("mydiag") or {}).get("command")
    if command:
        found.append((0.0, str(command)))
    typing = Typing()
    last = 0.0
    for moment, kind, text in events(cast):
        last = moment
        if kind == "i":
            found += [(moment, line) for line in typing.feed(text) if line.strip()]
    if typing.line:
        found.append((last, "".join(typing.line) + "  (not sent)"))
    return found


def play(cast: Path, out: IO[bytes], speed: float = 1.0, idle_limit: Optional[float] = 2.0,
         instant: bool = False) -> None:
    """Write what the engineer saw to `out`, with the original pauses (capped at
    `idle_limit`, divided by `speed`) unless `instant`."""
    previous = 0.0
    for moment, kind, text in events(cast):
        if kind != "o":
            continue
        if not instant:
            delay = moment - previous
            if idle_limit is not None:
                delay = min(delay, idle_limit)
            if delay > 0:
                out.flush()
                time.sleep(delay / max(speed, 0.01))
        previous = moment
        out.write(text.encode("utf-8", "replace"))
    out.flush()


def parts(folder: Path) -> List[Path]:
    """The recordings of one session, in the order they were made."""
    found = [p for p in folder.glob(f"*{CAST}") if p.stem.isdigit()]
    return sorted(found, key=lambda p: int(p.stem))


def clock(seconds_in: float) -> str:
    """`HH:MM:SS` of a moment in a recording."""
    whole = int(seconds_in)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def replay(casts: List[Path], anchors: Dict[str, str], prog: str, *, list_commands: bool = False,
           speed: float = 1.0, instant: bool = False) -> bool:
    """Verify every part (each verdict to stderr, after `prog: `), then play it to stdout
    or list what was typed; True when every part verified. Shared by `mydiag session
    replay` (the customer's copy) and `mydiag-server session replay` (the server's)."""
    import sys

    verified = True
    for cast in casts:
        verdict = verify(cast, anchors.get(cast.name))
        verified = verified and verdict.ok
        print(f"{prog}: {verdict.describe()}", file=sys.stderr, flush=True)
        head = header(cast).get("mydiag") or {}
        if list_commands:
            print(f"# part {cast.stem}: {head.get('engineer')} ({head.get('mode')}), {head.get('purpose')}",
                  flush=True)
            for moment, line in commands(cast):
                print(f"{clock(moment)}  {line}", flush=True)
        else:
            play(cast, sys.stdout.buffer, speed=speed, instant=instant)
    return verified
