"""Keyed, deterministic pseudonyms for every identifier of a share package.

HMAC-SHA256(key, kind, the name casefolded) gives `t_3f2a9c1b7d`: the same name gives
the same pseudonym in every file of the package and in every later package made with the
same key, and nobody without the key can tell the name back (the map stays private).
Columns are mapped by name alone, not per table, so an unqualified reference keeps
meaning the same column; tables and views share one namespace (a view is a table in a
query). `PRIMARY`, the primary key's fixed name, is kept. Two names that would get one
pseudonym get a longer one, deterministically: a collision is never silent.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Dict, List, Optional, Set, Tuple

KINDS = ("schema", "table", "view", "column", "index", "constraint", "partition", "alias")
_PREFIX = {"schema": "s_", "table": "t_", "view": "v_", "column": "c_", "index": "i_",
           "constraint": "k_", "partition": "p_", "alias": "a_"}
#: Kinds that share one namespace, and the one their pseudonym is made in.
_SPACE = {"view": "table"}
KEPT = {("index", "primary")}


class NameMap:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._by: Dict[Tuple[str, str], str] = {}
        self._taken: Dict[str, Tuple[str, str]] = {}
        self._entries: List[Dict[str, str]] = []
        self._any: Dict[str, str] = {}

    def name(self, kind: str, original: str) -> str:
        if kind not in _PREFIX:
            raise ValueError(f"unknown kind of name {kind!r}")
        folded = original.casefold()
        if (kind, folded) in KEPT:
            return original
        space = _SPACE.get(kind, kind)
        found = self._by.get((kind, folded))
        if found is not None:
            return found
        digest = hmac.new(self._key, f"{space}\0{folded}".encode(), hashlib.sha256).hexdigest()
        length = 10
        while True:
            public = _PREFIX[kind] + digest[:length]
            owner = self._taken.get(public)
            if owner is None or owner == (space, folded):
                break
            length += 2  # a collision: a longer pseudonym, the same for this name every time
        self._taken[public] = (space, folded)
        self._by[(kind, folded)] = public
        self._entries.append({"kind": kind, "original": original, "public": public})
        self._any.setdefault(folded, public)
        return public

    def known(self, original: str) -> Optional[str]:
        """The pseudonym of `original` if it was mapped (of any kind), else None."""
        if original.casefold() == "primary":
            return original
        return self._any.get(original.casefold())

    def originals(self) -> Set[str]:
        return {entry["original"] for entry in self._entries}

    def entries(self) -> List[Dict[str, str]]:
        return [dict(entry) for entry in self._entries]
