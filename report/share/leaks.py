"""The leak scan: nothing of the customer's may be in a public package.

Needles are every original name and value the maps learned, and the host names, IP
addresses and user names of the bundle. Each is looked for in every form it could take in
a file: as written, in any letter case, SQL-escaped (quotes doubled, backslashes escaped),
JSON-escaped (`\\uXXXX`), as hex of its UTF-8 bytes (`0x…`, `X'…'`, either case), base64 (at
each of the three byte alignments) and URL-encoded.

Names are matched as whole tokens in SQL files (`stat_name` is not the column `name`), and
elsewhere as substrings when at least 4 characters long, as whole words when shorter.
Pseudonyms (`t_3f2a9c1b7d`) are masked before substring matching: their hex digits are ours.
Single characters, numbers shorter than MIN_NUMBER digits, and words of the package's own
vocabulary (SQL keywords, EXPLAIN's words, the README's fixed text) say nothing about a
customer and are not needles; `Scan.unscanned` counts them.

A finding names the file, the kind of needle and the form, never the value.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

#: Numbers with fewer digits than this are not needles: row counts, lengths and limits in a
#: package equal small original values by nature.
MIN_NUMBER = 8
#: Pseudonyms the share maps and the privacy pipeline write: masked before substring scans.
PSEUDONYM = re.compile(r"\b(?:[stvcikpa]_[0-9a-f]{10}(?:_\d+)?|(?:host|ip|user|schema)-[0-9a-f]{10})\b")
_WORD = re.compile(r"[\w$]+")
_IPV4 = re.compile(r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![\w]|\.[0-9])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
SQL_SUFFIXES = (".sql", ".test")

#: SQL's and EXPLAIN's own words, and the statistics tables' columns: never customer data.
_VOCABULARY_TEXT = """
a accessible add after against aggregate algorithm all alter always analyze and any as asc ascii
auto_increment avg avg_row_length before begin between bigint binary bit blob bool boolean both btree
by cascade case cast change char character charset check checksum collate collation column columns
comment commit compact compressed constraint create cross current current_timestamp data database
databases date datetime day decimal declare default definer delete desc describe deterministic
distinct div double drop dual dynamic else elseif enable enclosed end engine enum escaped exists
explain false fetch first fixed float flush for force foreign format from full fulltext function
generated global group hash having high_priority hour if ignore in index inner insert int integer
interval into invoker is join json key key_block_size keys kill last left less like limit linear
lines list load local localtime lock long longblob longtext low_priority match maxvalue mediumblob
mediumint mediumtext merge minute mod mode modifies month natural no not null numeric of on only
optimize option or order outer over partition partitions persistent primary procedure range read
real redundant references regexp rename repeat replace restrict return returns revoke right rlike
row row_format rows schema schemas second security select separator sequence session set share
show signed simple smallint spatial sql sql_mode start starting stats_auto_recalc stats_persistent
stats_sample_pages status stored straight_join string subpartition subpartitions system table
tables temporary temptable terminated text than then time timestamp tinyblob tinyint tinytext to
trailing trigger true truncate undefined union unique unsigned update usage use using utf8 utf8mb3
utf8mb4 value values varbinary varchar varying view virtual when where while with write xor year
zerofill innodb memory myisam aria seq latin1 cp1251 general_ci unicode_ci bin
query_block select_id nested_loop table_name access_type possible_keys key_length used_key_parts
ref filtered attached_condition index_condition using_index loops r_loops r_rows r_filtered
r_total_time_ms cost cost_info read_cost eval_cost prefix_cost data_read_per_join used_columns
rows_examined_per_scan rows_produced_per_join const func eq_ref fulltext ref_or_null unique_subquery
index_subquery index_merge message materialized subqueries having_condition filesort temporary_table
block_nl_join buffer_type buffer_size join_type flat bnl bnlh bka bkah incremental outer_ref_condition
database_name last_update n_rows clustered_index_size sum_of_other_index_sizes index_name stat_name
stat_value sample_size stat_description n_diff_pfx01 n_leaf_pages size db_name cardinality
column_name min_value max_value nulls_ratio avg_length avg_frequency hist_size hist_type histogram
prefix_arity double_prec_hb single_prec_hb json_hb cost_name cost_value engine_name device_type
server_cost engine_cost mysqltest echo test repro
"""
VOCABULARY = frozenset(_VOCABULARY_TEXT.split())


@dataclass(frozen=True)
class Needle:
    text: str
    #: What it is, for the message: "table name", "value", "host name", "IP address", "user name"…
    kind: str
    #: Names: whole tokens in SQL; values, hosts, addresses and users: anywhere.
    identifier: bool = True


@dataclass(frozen=True)
class Leak:
    file: str
    kind: str
    form: str

    def __str__(self) -> str:
        return f"{self.file}: a {self.kind} ({self.form})"


@dataclass
class Scan:
    leaks: List[Leak] = field(default_factory=list)
    needles: int = 0
    unscanned: int = 0

    @property
    def clean(self) -> bool:
        return not self.leaks

    def summary(self) -> str:
        """One line naming each file and kind of leak (never a value)."""
        shown = sorted({str(leak) for leak in self.leaks})
        more = f" and {len(shown) - 6} more" if len(shown) > 6 else ""
        return "; ".join(shown[:6]) + more


def wanted(needle: Needle, vocabulary: Iterable[str] = ()) -> bool:
    """False for what cannot identify a customer: one character, a short number, a word
    the package writes itself."""
    text = needle.text.strip()
    if len(text) < 2:
        return False
    if _NUMBER.fullmatch(text):
        return sum(c.isdigit() for c in text) >= MIN_NUMBER
    folded = text.casefold()
    return folded not in VOCABULARY and folded not in vocabulary


def forms(text: str) -> List[Tuple[str, str]]:
    """(form name, encoded text) for every encoding the scan compares, casefolded: matched
    against casefolded file text. Base64 is separate (case matters there: `base64_forms`)."""
    out: Dict[str, str] = {}
    variants = dict.fromkeys([text, text.casefold(), text.upper(), text.lower()])
    for variant in variants:
        out.setdefault(variant.casefold(), "as written")
        escaped = variant.replace("\\", "\\\\").replace("'", "''").replace('"', '""')
        out.setdefault(escaped.casefold(), "SQL-escaped")
        out.setdefault(variant.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"').casefold(),
                       "SQL-escaped")
        out.setdefault(json.dumps(variant)[1:-1].casefold(), "JSON-escaped")
        out.setdefault(json.dumps(variant, ensure_ascii=False)[1:-1].casefold(), "JSON-escaped")
        raw = variant.encode("utf-8", "surrogatepass")
        out.setdefault("0x" + raw.hex(), "hex")
        out.setdefault("x'" + raw.hex() + "'", "hex")
        out.setdefault(urllib.parse.quote(variant, safe="").casefold(), "URL-encoded")
        out.setdefault(urllib.parse.quote_plus(variant, safe="").casefold(), "URL-encoded")
    return [(form, encoded) for encoded, form in out.items() if encoded]


def base64_forms(text: str) -> List[str]:
    """The base64 characters that the needle's bytes alone decide, at each of the three
    alignments it can start at inside a longer encoded blob (at least 4 characters)."""
    found: List[str] = []
    for variant in dict.fromkeys([text, text.casefold(), text.upper()]):
        raw = variant.encode("utf-8", "surrogatepass")
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
            start = (8 * shift + 5) // 6
            end = (8 * (shift + len(raw))) // 6
            core = encoded[start:end]
            if len(core) >= 4 and core not in found:
                found.append(core)
    return found


class _Matcher:
    """The encoded forms of some needles, compiled: long ones as substrings, short ones as
    whole words, base64 case-sensitively."""

    def __init__(self, needles: List[Needle]) -> None:
        self.long: Dict[str, Tuple[str, str]] = {}
        self.short: Dict[str, Tuple[str, str]] = {}
        self.b64: Dict[str, str] = {}
        for needle in needles:
            for form, encoded in forms(needle.text):
                target = self.long if len(encoded) >= 4 else self.short
                target.setdefault(encoded, (needle.kind, form))
            for encoded in base64_forms(needle.text):
                self.b64.setdefault(encoded, needle.kind)
        self._long = _alternation(self.long, whole=False)
        self._short = _alternation(self.short, whole=True)
        self._b64 = _alternation(self.b64, whole=False)

    def find(self, name: str, text: str) -> Iterator[Leak]:
        masked = PSEUDONYM.sub(" ", text)
        folded = masked.casefold()
        for pattern, table in ((self._long, self.long), (self._short, self.short)):
            if pattern is not None:
                for match in pattern.finditer(folded):
                    kind, form = table[match.group(0)]
                    yield Leak(name, kind, form)
        if self._b64 is not None:
            for match in self._b64.finditer(masked):
                yield Leak(name, self.b64[match.group(0)], "base64")


class Scanner:
    """Needles compiled once; `scan` any number of files."""

    def __init__(self, needles: Iterable[Needle], vocabulary: Iterable[str] = ()) -> None:
        words = {w.casefold() for w in vocabulary}
        self.unscanned = 0
        kept: Dict[Tuple[str, bool], Needle] = {}
        for needle in needles:
            if not wanted(needle, words):
                self.unscanned += 1
                continue
            kept.setdefault((needle.text.casefold(), needle.identifier), needle)
        self.needles = list(kept.values())
        #: Whole tokens of SQL files: casefolded name → kind.
        self._tokens = {n.text.casefold(): n.kind for n in self.needles if n.identifier}
        self._names = _Matcher([n for n in self.needles if n.identifier])
        self._values = _Matcher([n for n in self.needles if not n.identifier])

    def scan(self, files: Dict[str, bytes]) -> Scan:
        result = Scan(needles=len(self.needles), unscanned=self.unscanned)
        seen: Set[Leak] = set()
        for name in sorted(files):
            for leak in self.scan_file(name, files[name]):
                if leak not in seen:
                    seen.add(leak)
                    result.leaks.append(leak)
        return result

    def scan_file(self, name: str, data: bytes) -> Iterator[Leak]:
        """Values, hosts and users anywhere in the text; names as whole tokens in SQL (and
        as substrings in its strings, comments and literals), as substrings elsewhere."""
        text = data.decode("utf-8", "replace")
        yield from self._values.find(name, text)
        if not name.endswith(SQL_SUFFIXES):
            yield from self._names.find(name, text)
            return
        rest: List[str] = []
        for kind, piece in _raw_segments(text):
            if kind in ("word", "name"):
                value = piece[1:-1].replace("``", "`") if kind == "name" else piece
                hit = self._tokens.get(value.casefold())
                if hit is not None:
                    yield Leak(name, hit, "a whole SQL name")
                # Literals stay (0x…, and the x of x'…'); names and keywords do not.
                keep = kind == "word" and (piece[:1].isdigit() or piece in ("x", "X", "b", "B"))
                rest.append(piece if keep else " ")
            else:
                rest.append(piece)
        yield from self._names.find(name, "".join(rest))


def scan(files: Dict[str, bytes], needles: Iterable[Needle], vocabulary: Iterable[str] = ()) -> Scan:
    return Scanner(needles, vocabulary).scan(files)


def _alternation(table: Dict[str, Any], whole: bool) -> Optional[re.Pattern[str]]:
    if not table:
        return None
    body = "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True))
    if whole:
        body = rf"(?<![\w$])(?:{body})(?![\w$])"
    return re.compile(body)


# --- a tolerant SQL lexer --------------------------------------------------------------


def segments(sql: str) -> Iterator[Tuple[str, str]]:
    """(kind, text) pieces covering all of `sql`: word, name (a backquoted name's inside),
    string (a quoted string's inside, as written), comment, space, other. It never refuses
    text: the leak scan and the statement splitter must see everything."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in " \t\r\n\f\v":
            j = i + 1
            while j < n and sql[j] in " \t\r\n\f\v":
                j += 1
            yield "space", sql[i:j]
        elif c == "#" or (sql.startswith("--", i) and (i + 2 >= n or sql[i + 2] in " \t\r\n\f\v")):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            yield "comment", sql[i:j]
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            yield "comment", sql[i:j]
        elif c == "`":
            j = i + 1
            while j < n:
                if sql[j] == "`":
                    if j + 1 < n and sql[j + 1] == "`":
                        j += 2
                        continue
                    break
                j += 1
            yield "name", sql[i + 1:j]
            j += 1
        elif c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            yield "string", sql[i + 1:min(j, n)]
            j += 1
        else:
            match = _WORD.match(sql, i)
            if match:
                j = match.end()
                yield "word", match.group(0)
            else:
                j = i + 1
                yield "other", c
        i = max(j, i + 1)


def statements(sql: str) -> List[str]:
    """`sql` split on the `;` that end statements (never one inside a string, a name or a
    comment), comments dropped, each statement as written otherwise."""
    out: List[str] = []
    current: List[str] = []
    for kind, piece in _raw_segments(sql):
        if kind == "other" and piece == ";":
            text = "".join(current).strip()
            if text:
                out.append(text)
            current = []
        elif kind == "comment":
            current.append(" ")
        else:
            current.append(piece)
    text = "".join(current).strip()
    if text:
        out.append(text)
    return out


def _raw_segments(sql: str) -> Iterator[Tuple[str, str]]:
    """`segments`, with each quoted piece given back with its quotes (as in the text)."""
    position = 0
    for kind, piece in segments(sql):
        if kind in ("name", "string"):
            end = position + len(piece) + 2
            yield kind, sql[position:end]
            position = end
        else:
            yield kind, piece
            position += len(piece)


# --- the bundle's own needles ------------------------------------------------------------

_PEOPLE_MEMBERS = ("mysql/accounts.json", "mysql/processlist.json", "mysql/processlist.jsonl",
                   "mysql/identity.json", "mysql/replication/replica_hosts.json",
                   "mysql/replication/replica_status.jsonl", "mysql/global_variables.json")


def bundle_needles(bundle: Any) -> List[Needle]:
    """Host names, IP addresses and user names the bundle holds: the manifest's host, the
    accounts and processlist members, and the OS members."""
    from privacy.pseudonym import Pseudonymizer

    learner = Pseudonymizer(b"\0" * 32, ("hosts", "users"))
    found: List[Needle] = []
    host = bundle.host
    if host:
        found.append(Needle(host, "host name", identifier=False))
        short = host.split(".")[0]
        if short != host:
            found.append(Needle(short, "host name", identifier=False))
    members = [m for m in bundle.files if m in _PEOPLE_MEMBERS or (m.startswith("os/") and m.endswith(
        (".json", ".jsonl")))]
    addresses: Set[str] = set()
    for member in ["manifest.json"] + sorted(members):
        if member.endswith(".jsonl"):
            for row in bundle.jsonl(member):
                learner.learn_json(row)
        else:
            value = bundle.json(member)
            if value is not None:
                learner.learn_json(value)
        text = bundle.text(member) or ""
        for pattern in (_IPV4, _IPV6):
            for match in pattern.finditer(text):
                if _identifying_ip(match.group(0)):
                    addresses.add(match.group(0))
    for name, kind in learner.names.items():
        found.append(Needle(name, "host name" if kind == "hosts" else "user name", identifier=False))
    found += [Needle(a, "IP address", identifier=False) for a in sorted(addresses)]
    return found


def _identifying_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified or address.is_multicast
                or str(address) in ("255.255.255.255",) or address.is_link_local)
