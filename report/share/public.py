"""`mydiag report BUNDLE --public`: the report for a write-up, with nothing that names the
customer: schema and table names through the share NameMap (the pseudonyms a share package
of this host uses), host names, IP addresses and user names as tokens (`host-…`, `ip-…`,
`user-…`), then the leak scan over the result (a leak refuses it).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

from report.share import leaks

#: Members read for names (bounded: the biggest members hold samples, not names).
MAX_MEMBER = 8 << 20
_TABLE_KEYS = frozenset({"table", "table_name", "object_name", "space_table", "name_of_table"})
_SCHEMA_KEYS = frozenset({"schema", "schema_name", "table_schema", "db", "db_name", "database",
                          "database_name", "object_schema", "current_schema", "space_schema"})
_IP = re.compile(r"(?<![\w.:])(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})"
                 r"(?![\w]|\.[0-9])")
_SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


class Publisher:
    """What the bundle names, learned once; `text` and `value` replace it everywhere."""

    def __init__(self, bundle: Any, key: bytes) -> None:
        from privacy.pseudonym import Pseudonymizer
        from report.share.names import NameMap

        self.names = NameMap(key)
        self.people = Pseudonymizer(key, ("hosts", "ips", "users", "schemas"))
        self.tables: Dict[str, str] = {}
        self._learn(bundle)
        self._replacements: Dict[str, str] = {}
        for name, kind in self.people.names.items():
            if kind == "schemas":
                self._replacements[name.casefold()] = self.names.name("schema", name)
            else:
                self._replacements[name.casefold()] = self.people.token(kind, name)
        for table in self.tables:
            self._replacements.setdefault(table.casefold(), self.names.name("table", table))
        body = "|".join(re.escape(n) for n in sorted(self._replacements, key=len, reverse=True))
        self._regex = re.compile(rf"(?<![\w$])(?:{body})(?![\w$])", re.I) if body else None
        self.needles: List[leaks.Needle] = [
            leaks.Needle(n, {"schemas": "schema name", "hosts": "host name", "users": "user name"}
                         .get(k, "name"), identifier=False)
            for n, k in self.people.names.items()]
        self.needles += [leaks.Needle(t, "table name", identifier=False) for t in self.tables]
        self.needles += leaks.bundle_needles(bundle)

    def _learn(self, bundle: Any) -> None:
        for member in sorted(bundle.files):
            data = bundle.files[member]
            if len(data) > MAX_MEMBER or not member.endswith((".json", ".jsonl")):
                continue
            rows = bundle.jsonl(member) if member.endswith(".jsonl") else [bundle.json(member)]
            for row in rows:
                if row is None:
                    continue
                self.people.learn_json(row)
                if not member.startswith("mysql/"):
                    continue
                for schema, table in _names(row):
                    if schema is not None:
                        self.people.learn("schemas", schema)
                    if table is not None:
                        self.tables[table] = schema or ""
        share = bundle.json("mysql/share.json")
        if isinstance(share, dict):
            for obj in share.get("objects") or []:
                if isinstance(obj, dict) and isinstance(obj.get("name"), str):
                    self.tables[obj["name"]] = str(obj.get("schema") or "")
                    if isinstance(obj.get("schema"), str):
                        self.people.learn("schemas", obj["schema"])
        for name in list(self.tables):
            if name.casefold() in _SYSTEM_SCHEMAS or len(name) > 64 or len(name.strip()) < 2:
                del self.tables[name]

    def text(self, text: str) -> str:
        text = _IP.sub(self._ip, text)
        if self._regex is None:
            return text
        return self._regex.sub(lambda m: self._replacements.get(m.group(0).casefold(), m.group(0)), text)

    def _ip(self, match: re.Match[str]) -> str:
        found = match.group(0)
        try:
            address = ipaddress.ip_address(found)
        except ValueError:
            return found
        if address.is_loopback or address.is_unspecified:
            return found
        return self.people.token("ips", found)

    def value(self, value: Any, depth: int = 0) -> Any:
        """A JSON-able value with every string (keys too) through `text`."""
        if depth > 64:
            return None
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v, depth + 1)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, depth + 1) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def scan(self, name: str, text: str) -> leaks.Scan:
        return leaks.scan({name: text.encode("utf-8", "replace")}, self.needles)


def _names(value: Any, depth: int = 0) -> Iterable[Tuple[Optional[str], Optional[str]]]:
    """(schema, table) pairs named by the usual keys anywhere in a member."""
    if depth > 32:
        return
    if isinstance(value, dict):
        schema = next((value[k] for k in value if str(k).lower() in _SCHEMA_KEYS
                       and isinstance(value[k], str)), None)
        table = next((value[k] for k in value if str(k).lower() in _TABLE_KEYS
                      and isinstance(value[k], str)), None)
        if table is not None or schema is not None:
            yield schema, table
        for item in value.values():
            if isinstance(item, (dict, list)):
                yield from _names(item, depth + 1)
    elif isinstance(value, list):
        for item in value[:100_000]:
            yield from _names(item, depth + 1)


def publish_text(bundle: Any, text: str, key: bytes) -> Tuple[str, leaks.Scan]:
    """The report text pseudonymized, and the leak scan of the result."""
    publisher = Publisher(bundle, key)
    out = publisher.text(text)
    return out, publisher.scan("the report", out)


def publish_value(bundle: Any, value: Any, key: bytes, dumps: Any) -> Tuple[str, leaks.Scan]:
    """A JSON report pseudonymized before it is written (`dumps`), and the scan of the text."""
    publisher = Publisher(bundle, key)
    out = dumps(publisher.value(value))
    return out, publisher.scan("the JSON report", out)
