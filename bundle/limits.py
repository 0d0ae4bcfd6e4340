"""How far a bundle may expand when it is read: the bounds every reader applies.

A bundle is a few kilobytes of zstd that can claim to hold terabytes, a manifest that
can be a gigabyte of zeros, or millions of empty members. Every reader of a bundle (the
server's verifier, `bundle open`, `mydiag verify` and `inspect`) streams it under these
bounds and stops the moment one is crossed, before the bytes behind it are decompressed:
member sizes are known from their tar headers, so a member over the limit is refused
without reading it. The support server sets them in its config (`limits`); the agent's
commands use the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

#: The largest pax or GNU long-name header: they hold a path and a few numbers, and
#: the standard library reads each one into memory whole.
MAX_EXTENSION_HEADER = 4 * KIB
#: Extension headers in a row before a member (pax global, pax, long name, long link).
MAX_EXTENSION_CHAIN = 4
#: The largest zstd window a bundle may need (mydiag writes 2 MiB at level 6): the
#: decompressor allocates it up front, whatever the frame claims.
MAX_ZSTD_WINDOW = 32 * MIB


@dataclass(frozen=True)
class Limits:
    #: Bytes of one member once unpacked.
    member_bytes: int = 8 * GIB
    #: Bytes of all members together once unpacked.
    unpacked_bytes: int = 32 * GIB
    #: Unpacked bytes per byte of the file as received (sealed or plain): the compression
    #: ratio past which a bundle is a bomb; applies above `ratio_floor_bytes`.
    ratio: float = 100.0
    #: Unpacked bytes any bundle may have whatever its ratio (small bundles of repetitive
    #: JSON compress far better than big ones).
    ratio_floor_bytes: int = 64 * MIB
    #: Members, manifest and signature included.
    members: int = 10_000
    #: Bytes of manifest.json (and of manifest.sig).
    manifest_bytes: int = 4 * MIB
    #: Nesting of arrays and objects in manifest.json (the top object is depth 1).
    json_depth: int = 32
    #: UTF-8 bytes of one member path.
    path_bytes: int = 255

    def unpacked_allowed(self, packed_bytes: Optional[int]) -> int:
        """The unpacked total a file of `packed_bytes` may reach (None: not known)."""
        if packed_bytes is None:
            return self.unpacked_bytes
        by_ratio = max(self.ratio_floor_bytes, int(self.ratio * packed_bytes))
        return min(self.unpacked_bytes, by_ratio)


DEFAULT = Limits()
