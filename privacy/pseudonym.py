"""Consistent pseudonyms for host names, IP addresses, user names and schema names.

`--pseudonymize hosts,ips,users,schemas` replaces each such name by a keyed HMAC token
(`host-3f2a9c1b7d`): the same name gives the same token in every file of the bundle, in
JSON keys and values alike, and in every later bundle of this host. The key and the
token → name map stay on the customer's host (`PseudonymStore`), so only the customer
can say what a token means.

Names are learned while artifacts pass the pipeline (fields such as `user`, `host`, `db`;
slow-log headers; `'user'@'host'`), and replaced in a second pass over the staged files
once every name is known. IP addresses are found by their shape. Well-known names
(root, localhost, the system schemas) and loopback addresses stay as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

KINDS = ("hosts", "ips", "users", "schemas")
_PREFIX = {"hosts": "host", "ips": "ip", "users": "user", "schemas": "schema"}
RULE_NAMES = {kind: f"pseudonym_{_PREFIX[kind]}" for kind in KINDS}

_WELL_KNOWN = {
    "users": {
        "root", "mysql", "mariadb.sys", "mysql.sys", "mysql.session", "mysql.infoschema",
        "system user", "event_scheduler", "unauthenticated user", "unauthenticated", "public",
        "user", "host", "delayed", "none", "null",
    },
    "hosts": {
        "localhost", "localhost.localdomain", "localhost6", "ip6-localhost", "host", "user",
        "none", "null",
    },
    "schemas": {
        "mysql", "information_schema", "performance_schema", "sys", "db", "schema", "none",
        "null", "unconnected",
    },
}
_FIELDS = {
    "users": {
        "user", "username", "user_name", "master_user", "source_user", "current_user",
        "proxied_user", "definer_user",
    },
    "hosts": {
        "host", "hostname", "master_host", "source_host", "report_host", "node_name",
        "wsrep_node_name", "server_hostname", "fqdn", "nodename",
    },
    "schemas": {
        "db", "schema", "schema_name", "table_schema", "database", "database_name",
        "object_schema", "current_schema",
    },
}
_ACCOUNT_FIELDS = {"account", "grantee", "definer", "current_user"}
_PAIR_NAMES = ("variable_name", "name")
_PAIR_VALUES = ("value", "variable_value")

_IPV4 = re.compile(r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![\w]|\.[0-9])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_ACCOUNT = re.compile(r"'(?P<u>[^'\s]{1,80})'@'(?P<h>[^'\s]{1,255})'")
_TEXT_LEARN = (
    re.compile(r"User@Host: (?P<u>[^\[\s]+)\[[^\]]*\] @ (?P<h>[^\[\s]*) \["),
    _ACCOUNT,
    re.compile(r"\buser: '(?P<u>[^']+)'"),
    re.compile(r"\bhost: '(?P<h>[^']+)'"),
    re.compile(r"\bdb: '(?P<s>[^']+)'"),
    re.compile(r"\bSchema: (?P<s>[^\s]+)"),
    re.compile(r"^use (?P<s>[^\s;`]+);"),
)
_GROUP_KIND = {"u": "users", "h": "hosts", "s": "schemas"}


def parse_kinds(text: str) -> List[str]:
    """`hosts,ips` → ["hosts", "ips"]; ValueError names what is unknown."""
    kinds = [k.strip().lower() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(
            f"--pseudonymize takes a comma-separated list of {', '.join(KINDS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return sorted(set(kinds), key=KINDS.index)


def _public_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified or text.startswith("255."))


class Pseudonymizer:
    def __init__(self, key: bytes, kinds: Iterable[str]) -> None:
        self.key = key
        self.kinds = set(kinds)
        self.names: Dict[str, str] = {}
        self.mapping: Dict[str, Tuple[str, str]] = {}
        self._regex: Optional[re.Pattern[str]] = None
        self._lock = threading.Lock()

    # --- tokens ----------------------------------------------------------------------

    def token(self, kind: str, name: str) -> str:
        normal = name.lower() if kind in ("hosts", "ips") else name
        digest = hmac.new(self.key, f"{kind}\0{normal}".encode(), hashlib.sha256).hexdigest()
        token = f"{_PREFIX[kind]}-{digest[:10]}"
        self.mapping.setdefault(token, (kind, normal))
        return token

    # --- learning --------------------------------------------------------------------

    def learn(self, kind: str, name: Any) -> None:
        if kind not in self.kinds or not isinstance(name, str):
            return
        name = name.strip().strip("`'\"")
        if kind == "hosts":
            name = name.lower()
            if ":" in name and not name.startswith("["):
                name = name.rsplit(":", 1)[0]
            if _IPV4.fullmatch(name) or _public_ip(name) or "%" in name or "_" in name:
                return
        if not name or name.lower() in _WELL_KNOWN.get(kind, ()) or len(name) > 255:
            return
        with self._lock:
            key = name.lower() if kind == "hosts" else name
            if key not in self.names:
                self.names[key] = kind
                self._regex = None

    def learn_account(self, text: Any) -> None:
        if not isinstance(text, str):
            return
        found = _ACCOUNT.search(text)
        if found:
            self.learn("users", found.group("u"))
            self.learn("hosts", found.group("h"))
        elif "@" in text and " " not in text:
            user, _, host = text.rpartition("@")
            self.learn("users", user)
            self.learn("hosts", host)

    def learn_json(self, value: Any) -> None:
        if isinstance(value, dict):
            pair = next((value[k] for k in value if str(k).lower() in _PAIR_NAMES), None)
            for key, item in value.items():
                low = str(key).lower()
                for kind, fields in _FIELDS.items():
                    if low in fields:
                        self.learn(kind, item)
                    if isinstance(pair, str) and pair.lower() in fields and low in _PAIR_VALUES:
                        self.learn(kind, item)
                if low in _ACCOUNT_FIELDS:
                    self.learn_account(item)
                if isinstance(item, (dict, list)):
                    self.learn_json(item)
                elif isinstance(item, str) and "@" in item:
                    self.learn_text(item)
        elif isinstance(value, list):
            for item in value:
                self.learn_json(item)

    def learn_text(self, text: str) -> None:
        for line in text.split("\n"):
            for pattern in _TEXT_LEARN:
                for found in pattern.finditer(line):
                    for group, name in found.groupdict().items():
                        if name:
                            self.learn(_GROUP_KIND[group], name)

    # --- replacing -------------------------------------------------------------------

    def _names_regex(self) -> Optional[re.Pattern[str]]:
        with self._lock:
            if self._regex is None and self.names:
                # Names shorter than 3 characters only as whole structured values: in prose
                # they would hit parts of words (`vm` in `vm.swappiness`).
                names = sorted((n for n in self.names if len(n) >= 3), key=len, reverse=True)
                if names:
                    body = "|".join(re.escape(n) for n in names)
                    self._regex = re.compile(rf"(?<![\w$])(?:{body})(?![\w$])", re.I)
            return self._regex

    def text(self, text: str, counts: Counter) -> str:
        """`text` with every learned name and every non-loopback IP address replaced."""
        if "ips" in self.kinds:
            text = _IPV4.sub(lambda m: self._ip(m, counts), text)
            if text.count(":") >= 2:
                text = _IPV6.sub(lambda m: self._ip(m, counts), text)
        regex = self._names_regex()
        if regex is not None:
            text = regex.sub(lambda m: self._name(m.group(), counts), text)
        return text

    def _ip(self, match: re.Match[str], counts: Counter) -> str:
        value = match.group()
        if not _public_ip(value):
            return value
        counts[RULE_NAMES["ips"]] += 1
        return self.token("ips", value)

    def _name(self, name: str, counts: Counter) -> str:
        kind = self.names.get(name) or self.names.get(name.lower())
        if kind is None:
            folded = name.lower()
            hit = next((n for n in self.names if n.lower() == folded), None)
            if hit is None:
                return name
            kind, name = self.names[hit], hit
        counts[RULE_NAMES[kind]] += 1
        return self.token(kind, name)

    def exact(self, value: str, counts: Counter) -> str:
        """A whole structured value: replaced even when too short for prose."""
        kind = self.names.get(value) or self.names.get(value.lower())
        if kind is not None:
            counts[RULE_NAMES[kind]] += 1
            return self.token(kind, value)
        return self.text(value, counts)

    def json_key(self, key: str, counts: Counter) -> str:
        """A JSON key: replaced only when it is a whole name or address (`shopdb`, not `vm.x`)."""
        kind = self.names.get(key) or self.names.get(key.lower())
        if kind is not None:
            counts[RULE_NAMES[kind]] += 1
            return self.token(kind, key)
        if "ips" in self.kinds and _public_ip(key):
            counts[RULE_NAMES["ips"]] += 1
            return self.token("ips", key)
        return key

    def json(self, value: Any, counts: Counter) -> Any:
        if isinstance(value, dict):
            return {self.json_key(k, counts) if isinstance(k, str) else k: self.json(v, counts)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v, counts) for v in value]
        if isinstance(value, str):
            return self.exact(value, counts)
        return value


class PseudonymStore:
    """The key and the token → name map, in the agent's state directory (mode 0600)."""

    KEY_NAME = "pseudonym.key"
    MAP_NAME = "pseudonyms.json"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def key(self) -> bytes:
        path = self.directory / self.KEY_NAME
        if path.exists():
            return path.read_bytes()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    def load(self) -> Dict[str, Dict[str, str]]:
        path = self.directory / self.MAP_NAME
        if not path.exists():
            return {}
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    def save(self, mapping: Dict[str, Tuple[str, str]]) -> None:
        merged = self.load()
        for token, (kind, name) in mapping.items():
            merged.setdefault(token, {"kind": kind, "name": name})
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".pseudonyms-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(merged, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, self.directory / self.MAP_NAME)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def lookup(self, token: str) -> Optional[Dict[str, str]]:
        return self.load().get(token.strip())
