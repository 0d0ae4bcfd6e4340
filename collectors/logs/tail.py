"""The end of a file, read by seeking: memory and time stay bounded whatever the file's size."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


@dataclass
class Tail:
    path: str
    data: bytes
    #: The file's size when read; bytes written after that are not included.
    size: int
    #: Where `data` starts in the file (after the partial first line was dropped).
    offset: int
    mtime: float

    @property
    def truncated(self) -> bool:
        return self.offset > 0

    def describe(self) -> str:
        if not self.truncated:
            return f"{self.path}: whole file ({_size(self.size)})"
        return f"{self.path}: {_size(self.size)}, only the last {_size(len(self.data))} included"


class NotRegularFile(OSError):
    pass


def read_tail(path: str, limit: int) -> Tail:
    """The last `limit` bytes of `path`, starting at a line boundary when cut.

    Raises OSError (PermissionError, FileNotFoundError, NotRegularFile) when it cannot.
    """
    # Non-blocking open: a FIFO in the log's place must not hang the collector.
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"{path} is not a regular file")
        size = info.st_size
        start = max(0, size - max(limit, 0))
        handle.seek(start)
        data = handle.read(size - start)
    offset = start
    if start > 0:
        # The first line was cut in the middle: drop it rather than show half a line.
        newline = data.find(b"\n")
        cut = newline + 1 if newline >= 0 else len(data)
        data, offset = data[cut:], start + cut
    return Tail(path, data, size, offset, info.st_mtime)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"
