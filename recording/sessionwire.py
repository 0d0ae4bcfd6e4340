"""The frames the server's SSH gateway and the agent exchange over one engineer channel.

The gateway opens a `forwarded-tcpip` channel to the agent for each engineer channel
and relays. Each frame is one type byte, a 4-byte big-endian length and the payload.
Events the agent records carry the time it recorded them (8-byte microseconds since the
part began), so the gateway writes a byte-identical copy of the recording while the
session runs.

gateway -> agent: OPEN (JSON: engineer, command, pty, part), INPUT (bytes the engineer
sent), WINCH (JSON: cols, rows), EOF (the engineer's stdin ended), CLOSE (they left).
agent -> gateway: HEADER (the cast's header line), OUT/ERR (micros + bytes for the
engineer's stdout/stderr), TYPED (micros + the input as recorded), EXIT (JSON: status,
reason), END (JSON: lines, head: the recording's final chain head).

Beside those channels the agent holds one control channel per tunnel: JSON objects, one a
line (ping/pong, end/ack); `control_line` writes one and `control_messages` reads them.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

OPEN, INPUT, WINCH, EOF, CLOSE = b"N", b"I", b"W", b"E", b"C"
HEADER, OUT, ERR, TYPED, EXIT, END = b"H", b"O", b"R", b"T", b"X", b"Z"

MAX_PAYLOAD = 4 << 20

# SSH transport tuning both ends of the tunnel use. AES-GCM only: OpenSSH then picks it
# (its first choice, chacha20, is not in paramiko), and one AEAD pass per packet is what
# makes a session's throughput comparable to OpenSSH's.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
WINDOW = 16 << 20
PACKET = 256 << 10
_HEAD = struct.Struct(">cI")
_MICROS = struct.Struct(">Q")


class WireError(Exception):
    """The peer sent something that is not a frame."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return _HEAD.pack(kind, len(payload)) + payload


def json_frame(kind: bytes, data: Any) -> bytes:
    return frame(kind, json.dumps(data, sort_keys=True).encode())


def timed(kind: bytes, micros: int, data: bytes) -> bytes:
    return _HEAD.pack(kind, 8 + len(data)) + _MICROS.pack(micros) + data


def split_timed(payload: bytes) -> Tuple[int, memoryview]:
    """(micros, the data) of a timed frame; the data is a view, not a copy."""
    if len(payload) < 8:
        raise WireError("a timed frame shorter than its time")
    return _MICROS.unpack_from(payload)[0], memoryview(payload)[8:]


def parse_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        raise WireError("a JSON frame that is not JSON") from None


class Reader:
    """Frames from a `recv(n) -> bytes` source (a paramiko channel); b"" means closed."""

    def __init__(self, recv: Callable[[int], bytes], chunk: int = 1 << 20) -> None:
        self._recv = recv
        self._chunk = chunk
        self._buf = bytearray()
        self._pos = 0

    def next(self) -> Optional[Tuple[bytes, bytes]]:
        """The next (type, payload), or None once the source has closed."""
        while True:
            available = len(self._buf) - self._pos
            if available >= _HEAD.size:
                kind, length = _HEAD.unpack_from(self._buf, self._pos)
                if length > MAX_PAYLOAD:
                    raise WireError(f"a frame of {length} bytes")
                if available >= _HEAD.size + length:
                    start = self._pos + _HEAD.size
                    payload = bytes(memoryview(self._buf)[start:start + length])
                    self._pos = start + length
                    if self._pos > (1 << 20):
                        del self._buf[:self._pos]
                        self._pos = 0
                    return kind, payload
            data = self._recv(self._chunk)
            if not data:
                return None
            self._buf += data


def control_line(message: Dict[str, Any]) -> bytes:
    """One message of a tunnel's control channel, as sent."""
    return (json.dumps(message) + "\n").encode()


def control_messages(recv: Callable[[int], bytes], heard: Optional[Callable[[], None]] = None,
                     limit: Optional[int] = None) -> Iterator[Dict[str, Any]]:
    """The messages of a control channel until it closes, or until more than `limit` bytes
    wait without a line end. `heard` is called on each read that brought bytes; a line that
    is not a JSON object is passed over. What `recv` raises reaches the caller."""
    buffer = b""
    while True:
        data = recv(4096)
        if not data:
            return
        if heard is not None:
            heard()
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                yield message
        if limit is not None and len(buffer) > limit:
            return
