"""Order-preserving, keyed maps of data values, one per column.

Every value a package holds (DEFAULTs, partition bounds, statistics min/max, histogram
bounds, query literals) passes through the map of its column, learned first and frozen
before anything is written. The maps keep what the optimizer reads from values: their
order, their equality (under the column's collation) and their relative position between
the column's smallest and largest value, so selectivity estimates survive:

- numbers: x -> a*x + b with keyed a >= 1 and b, inside the column type's range (integers
  stay integers, DECIMAL keeps its scale); a falls back towards 1 when a wider map would
  not fit, and to the identity when nothing else fits (said in `entries`);
- dates and datetimes: a keyed shift by whole 4-year cycles (1461 days), so month and day
  stay and MariaDB's position of a date (its YYYYMMDD number) moves by a constant: binary
  histograms of dates stay exact;
- strings: the position of the value's first 8 bytes (casefolded and accent-folded for _ci
  collations, trailing spaces dropped for PAD SPACE ones) between the column's smallest
  and largest known value, written in base 26 as lowercase letters, then a rank among
  values of one position, then filler letters up to about the original's length;
- ENUM and SET labels by position (e01, e02, ...). NULL stays NULL.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import hmac
import math
import re
import unicodedata
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from report.share.errors import ShareError

Table = Optional[Tuple[str, str]]
_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64,
             "bool": 8, "boolean": 8}
_STRING_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "binary", "varbinary",
                 "tinyblob", "blob", "mediumblob", "longblob", "json", "nchar", "nvarchar", "uuid",
                 "inet4", "inet6"}
_TEXT_LENGTHS = {"tinytext": 255, "tinyblob": 255, "text": 65535, "blob": 65535}
_CYCLE = 1461  # days in 4 years: month and day stay (except across a non-leap 100th year)
_DATE_MIN = datetime.date(1000, 1, 1)
_DATE_MAX = datetime.date(9999, 12, 31)
_TS_MIN = datetime.datetime(1970, 1, 2)
_TS_MAX = datetime.datetime(2038, 1, 18)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_DATETIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d{1,6})?)?$")
_TIME = re.compile(r"^(-)?(\d{1,3}):(\d{1,2}):(\d{1,2})(\.\d{1,6})?$")
_NUMBER = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$")
#: Positions written with this many letters at most (26**8 > 2**37).
WIDTH = 8


class _Column:
    """One column's type facts and, once frozen, its map."""

    def __init__(self, sql_type: str, collation: Optional[str], labels: Sequence[str]) -> None:
        text = " ".join(str(sql_type).lower().split())
        m = re.match(r"^([a-z0-9_]+)\s*(?:\(([^)]*)\))?(.*)$", text)
        base = m.group(1) if m else text
        args = m.group(2) if m and m.group(2) else ""
        rest = m.group(3) if m else ""
        self.sql_type = text
        self.unsigned = "unsigned" in rest or "zerofill" in rest
        self.labels = tuple(labels)
        coll = (collation or "").lower()
        self.binary = base in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob") or \
            coll.endswith("_bin") or coll == "binary" or " binary" in rest
        self.ci = not self.binary and (coll.endswith("_ci") or "_ai_" in coll or not coll)
        self.pad = "nopad" not in coll and base not in ("varbinary", "binary") and "blob" not in base
        self.scale = 0
        self.lo: Optional[Decimal] = None
        self.hi: Optional[Decimal] = None
        self.maxlen = 255
        numbers = [int(n) for n in re.findall(r"\d+", args)]
        if base in _INT_BITS or base == "bit" or base == "year":
            self.kind = "int"
            if base == "bit":
                bits = numbers[0] if numbers else 1
                self.lo, self.hi = Decimal(0), Decimal(2 ** bits - 1)
            elif base == "year":
                self.lo, self.hi = Decimal(1901), Decimal(2155)
            else:
                bits = _INT_BITS[base]
                if self.unsigned:
                    self.lo, self.hi = Decimal(0), Decimal(2 ** bits - 1)
                else:
                    self.lo, self.hi = Decimal(-(2 ** (bits - 1))), Decimal(2 ** (bits - 1) - 1)
        elif base in ("decimal", "numeric", "dec", "fixed"):
            self.kind = "decimal"
            precision = numbers[0] if numbers else 10
            self.scale = numbers[1] if len(numbers) > 1 else 0
            top = Decimal(10) ** (precision - self.scale) - Decimal(1).scaleb(-self.scale)
            self.lo, self.hi = (Decimal(0) if self.unsigned else -top), top
        elif base in ("float", "double", "real"):
            self.kind = "float"
        elif base == "date":
            self.kind = "date"
        elif base in ("datetime", "timestamp"):
            self.kind = "datetime"
            self.scale = numbers[0] if numbers else 0
            self.timestamp = base == "timestamp"
        elif base == "time":
            self.kind = "time"
            self.scale = numbers[0] if numbers else 0
        elif base in ("enum", "set"):
            self.kind = base
        else:
            self.kind = "string"
            self.maxlen = numbers[0] if numbers and base in ("char", "varchar", "binary", "varbinary",
                                                              "nchar", "nvarchar") else \
                _TEXT_LENGTHS.get(base, 255)
            self.maxlen = max(1, min(self.maxlen, 255))
        self.timestamp = getattr(self, "timestamp", False)
        self.learned: List[Any] = []
        # the frozen map
        self.a: Any = 1
        self.b: Any = 0
        self.days = 0
        self.note = ""
        self.strings: Dict[str, str] = {}
        self.first: Dict[str, str] = {}
        self.nmin = 0
        self.nmax = 0
        self.width = WIDTH
        self.rank = 0
        self.filler = "q"


def _fold(col: _Column, text: str) -> str:
    if col.ci:
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        text = text.casefold()
    if col.pad:
        text = text.rstrip(" ")
    return text


def _number_of(text: str) -> int:
    return int.from_bytes(text.encode("utf-8", "surrogatepass")[:8].ljust(8, b"\0"), "big")


def _letters(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, digit = divmod(n, 26)
        out.append(_LETTERS[digit])
    return "".join(reversed(out))


def _parse_datetime(text: str) -> Optional[datetime.datetime]:
    m = _DATETIME.match(text.strip())
    if not m:
        return None
    try:
        frac = m.group(7) or ""
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        return datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4) or 0),
                                 int(m.group(5) or 0), int(m.group(6) or 0), micro)
    except ValueError:
        return None


def _decimal(value: Any) -> Optional[Decimal]:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.match(value) and len(value) < 200:
        try:
            return Decimal(value.strip())
        except decimal.InvalidOperation:
            return None
    return None


def quote(text: str) -> str:
    """A SQL string literal (quotes doubled, backslashes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''").replace("\0", "\\0") + "'"


class ValueMaps:
    """The maps of every column's values (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        self._key = bytes(key)
        self._columns: Dict[Tuple[Table, str], _Column] = {}
        self._loose: List[Any] = []
        self._frozen = False

    # --- learning ------------------------------------------------------------------------

    def declare(self, table: Tuple[str, str], column: str, sql_type: str,
                collation: Optional[str] = None, labels: Sequence[str] = ()) -> None:
        if self._frozen:
            raise RuntimeError("ValueMaps.declare after freeze")
        self._columns[(tuple(table), column.casefold())] = _Column(sql_type, collation, labels)

    def learn(self, table: Any, column: Optional[str], value: Any) -> None:
        if self._frozen:
            raise RuntimeError("ValueMaps.learn after freeze")
        if value is None:
            return
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        col = self._column(table, column)
        if col is None:
            self._loose.append(value)
        else:
            col.learned.append(value)

    def freeze(self) -> None:
        if self._frozen:
            return
        for (table, name), col in self._columns.items():
            self._freeze(table, name, col)
        self._frozen = True

    def _column(self, table: Any, column: Optional[str]) -> Optional[_Column]:
        if table is None or column is None:
            return None
        return self._columns.get((tuple(table), column.casefold()))

    def _draw(self, *parts: Any) -> int:
        text = "\0".join(str(p) for p in parts).encode("utf-8", "surrogatepass")
        return int.from_bytes(hmac.new(self._key, text, hashlib.sha256).digest()[:8], "big")

    def _freeze(self, table: Table, name: str, col: _Column) -> None:
        kind = col.kind
        if kind in ("int", "decimal", "float"):
            self._freeze_number(table, name, col)
        elif kind in ("date", "datetime"):
            self._freeze_date(table, name, col)
        elif kind == "time":
            col.b = Decimal(self._draw(table, name, "time") % 36000 + 3600)
        elif kind == "string":
            self._freeze_string(table, name, col)

    def _freeze_number(self, table: Table, name: str, col: _Column) -> None:
        numbers = [d for d in (_decimal(v) for v in col.learned) if d is not None]
        seed = self._draw(table, name, "affine")
        if col.kind == "float":
            col.a = 1.5 + (seed % 2000) / 1000.0
            span = float(max(numbers) - min(numbers)) if numbers else 1.0
            col.b = float((seed >> 16) % 9973 + 17) * max(1.0, span / 100.0)
            if col.unsigned or (numbers and min(numbers) >= 0):
                col.b = abs(col.b)
            return
        lo_v, hi_v = (min(numbers), max(numbers)) if numbers else (Decimal(0), Decimal(0))
        span = hi_v - lo_v
        unit = Decimal(1).scaleb(-col.scale)
        want_b = (Decimal((seed >> 8) % 9000 + 1000) * max(Decimal(1), span)).quantize(unit)
        if (seed >> 40) % 2:
            want_b = -want_b
        for a in range(2 + seed % 7, 0, -1):
            b_min = (col.lo - a * lo_v).quantize(unit, rounding=decimal.ROUND_CEILING)
            b_max = (col.hi - a * hi_v).quantize(unit, rounding=decimal.ROUND_FLOOR)
            if b_min > b_max:
                continue
            b = min(max(want_b, b_min), b_max)
            if b == 0:
                b = min(b_max, unit * (1 + seed % 97)) if b_max > 0 else max(b_min, -unit * (1 + seed % 97))
            col.a, col.b = a, b
            if a == 1 and b == 0:
                col.note = "identity: the known values fill the column's range"
            elif a == 1:
                col.note = "a = 1: a wider map would leave the column's range"
            return
        col.a, col.b, col.note = 1, Decimal(0), "identity: the known values fill the column's range"

    def _freeze_date(self, table: Table, name: str, col: _Column) -> None:
        moments = [d for d in (_parse_datetime(str(v)) for v in col.learned) if d is not None]
        seed = self._draw(table, name, "days")
        k = 1 + seed % 7
        lo, hi = (_TS_MIN, _TS_MAX) if col.timestamp else \
            (datetime.datetime(1000, 1, 1), datetime.datetime(9999, 12, 31, 23, 59, 59))
        first, last = (min(moments), max(moments)) if moments else (datetime.datetime(2000, 1, 1),) * 2
        for cycles in (k if (seed >> 20) % 2 else -k, -k if (seed >> 20) % 2 else k):
            for c in range(abs(cycles), 0, -1):
                shift = datetime.timedelta(days=_CYCLE * c * (1 if cycles > 0 else -1))
                try:
                    if lo <= first + shift and last + shift <= hi:
                        col.days = shift.days
                        return
                except OverflowError:
                    continue
        col.days = 0
        col.note = "identity: no whole 4-year shift keeps the dates in the type's range"

    def _freeze_string(self, table: Table, name: str, col: _Column) -> None:
        first: Dict[str, str] = {}
        for value in col.learned:
            text = value if isinstance(value, str) else _text(value)
            first.setdefault(_fold(col, text), text)
        keys = sorted(first)
        col.first = first
        seed = self._draw(table, name, "filler")
        col.filler = "".join(_LETTERS[(seed >> (5 * i)) % 26] for i in range(12))
        if not keys:
            return
        col.nmin, col.nmax = _number_of(keys[0]), _number_of(keys[-1])
        width = min(WIDTH, col.maxlen)
        for _ in range(6):
            codes = [self._position(col, k, width) for k in keys]
            run, longest = 1, 1
            for i in range(1, len(codes)):
                run = run + 1 if codes[i] == codes[i - 1] else 1
                longest = max(longest, run)
            rank = 0 if longest == 1 else math.ceil(math.log(longest, 26) + 1e-9)
            if width + rank <= col.maxlen:
                break
            if width == 1:
                raise ShareError(f"a column of type {col.sql_type} holds more distinct values than its "
                                 "length can write as synthetic strings")
            width = max(1, col.maxlen - rank)
        col.width, col.rank = width, rank
        counter = 0
        for i, k in enumerate(keys):
            counter = counter + 1 if i and codes[i] == codes[i - 1] else 0
            text = codes[i] + (_letters(counter, rank) if rank else "")
            target = min(col.maxlen, max(len(first[k]), 1))
            if len(text) < target:
                text += (col.filler * (target // len(col.filler) + 1))[: target - len(text)]
            col.strings[k] = text

    @staticmethod
    def _position(col: _Column, key: str, width: int) -> str:
        return _letters(ValueMaps._scaled(col, _number_of(key), width), width)

    @staticmethod
    def _scaled(col: _Column, number: int, width: int) -> int:
        top = 26 ** width - 1
        if col.nmax == col.nmin:
            return top // 2
        fraction = (number - col.nmin) / (col.nmax - col.nmin)
        return int(round(min(1.0, max(0.0, fraction)) * top))

    # --- mapping -------------------------------------------------------------------------

    def value(self, table: Any, column: Optional[str], value: Any) -> Any:
        """The mapped value, of the same Python type class as `value`."""
        if value is None:
            return None
        if not self._frozen:
            raise RuntimeError("ValueMaps.value before freeze")
        col = self._column(table, column)
        if col is None:
            return self._loose_value(value)
        kind = col.kind
        if kind in ("int", "decimal", "float"):
            return self._map_number(col, value)
        if kind in ("date", "datetime"):
            return self._map_date(col, value)
        if kind == "time":
            return self._map_time(col, value)
        if kind in ("enum", "set"):
            text = _text(value)
            if kind == "set" and isinstance(value, str):
                return ",".join(self._label(col, part) for part in text.split(",") if part != "")
            mapped = self._label(col, text)
            return mapped if isinstance(value, str) else value
        text = value if isinstance(value, str) else _text(value)
        mapped = self._map_string(col, text)
        return mapped

    def sql(self, table: Any, column: Optional[str], value: Any) -> str:
        """The mapped value as a SQL literal."""
        mapped = self.value(table, column, value)
        if mapped is None:
            return "NULL"
        if isinstance(mapped, str):
            return quote(mapped)
        if isinstance(mapped, float):
            return repr(mapped)
        return str(mapped)

    def label(self, table: Any, column: str, label: str) -> str:
        col = self._column(table, column)
        if col is None:
            return self._loose_value(label)
        return self._label(col, label)

    def loose(self, value: Any) -> str:
        """SQL literal for a value with no known column: numbers below a million stay (they are
        limits and offsets, not customer data), others become keyed values of their shape."""
        mapped = self._loose_value(value)
        if mapped is None:
            return "NULL"
        return quote(mapped) if isinstance(mapped, str) else str(mapped)

    def at(self, table: Any, column: str, fraction: float) -> Any:
        """A value of the mapped space at `fraction` (0..1) between the column's mapped smallest
        and largest known string (synthetic rows); None for other kinds."""
        col = self._column(table, column)
        if col is None or col.kind != "string":
            return None
        width = col.width
        n = int(round(min(1.0, max(0.0, fraction)) * (26 ** width - 1)))
        return _letters(n, width)

    def kind(self, table: Any, column: str) -> Optional[str]:
        """The kind of a declared column (int, decimal, float, date, datetime, time, enum, set,
        string), None when undeclared."""
        col = self._column(table, column)
        return None if col is None else col.kind

    def column_range(self, table: Any, column: str) -> Optional[Tuple[Decimal, Decimal]]:
        """The numeric range of a declared integer or DECIMAL column's type."""
        col = self._column(table, column)
        if col is None or col.lo is None or col.hi is None:
            return None
        return (col.lo, col.hi)

    def affine(self, table: Any, column: str) -> Optional[Tuple[Any, Any]]:
        """(a, b) of a number column's map x -> a*x + b (synthetic rows stay on its lattice)."""
        col = self._column(table, column)
        if col is None or col.kind not in ("int", "decimal", "float"):
            return None
        return (col.a, col.b)

    def originals(self) -> Set[str]:
        found = {_text(v) for col in self._columns.values() for v in col.learned}
        found |= {_text(v) for v in self._loose}
        return {v for v in found if v != ""}

    def entries(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        ordered = sorted(self._columns.items(), key=lambda item: (str(item[0][0]), item[0][1]))
        for (table, name), col in ordered:
            where = ".".join(table) if table else None
            seen: Set[str] = set()
            for v in col.learned:
                shown = _text(v)
                if shown in seen:
                    continue
                seen.add(shown)
                entry: Dict[str, Any] = {"table": where, "column": name, "original": shown,
                                         "public": _text(self.value(table, name, v))}
                if col.note:
                    entry["note"] = col.note
                out.append(entry)
        seen = set()
        for v in self._loose:
            shown = _text(v)
            if shown not in seen:
                seen.add(shown)
                out.append({"table": None, "column": None, "original": shown,
                            "public": _text(self._loose_value(v))})
        return out

    # --- the kinds -----------------------------------------------------------------------

    def _map_number(self, col: _Column, value: Any) -> Any:
        number = _decimal(value)
        if number is None:
            return self._loose_value(value)
        if col.kind == "float":
            mapped_f = float(number) * col.a + col.b
            if isinstance(value, str):
                return repr(mapped_f)
            return mapped_f if isinstance(value, float) else Decimal(repr(mapped_f))
        mapped = number * col.a + col.b
        if col.lo is not None and col.hi is not None:
            mapped = min(max(mapped, col.lo), col.hi)
        if isinstance(value, int):
            return int(mapped)
        if isinstance(value, float):
            return float(mapped)
        if isinstance(value, Decimal):
            return mapped
        if col.kind == "decimal" and col.scale:
            return format(mapped.quantize(Decimal(1).scaleb(-col.scale)), "f")
        return format(mapped.quantize(Decimal(1)) if mapped == mapped.to_integral_value() else mapped, "f")

    def _map_date(self, col: _Column, value: Any) -> Any:
        text = _text(value)
        moment = _parse_datetime(text)
        if moment is None:
            return text if text.strip("0-: .") == "" else self._loose_value(value)
        try:
            moved = moment + datetime.timedelta(days=col.days)
        except OverflowError:
            moved = moment
        stripped = text.strip()
        if col.kind == "date" or (len(stripped) <= 10 and " " not in stripped and "T" not in stripped):
            return moved.strftime("%Y-%m-%d") if moved.year >= 1000 else \
                f"{moved.year:04d}-{moved.month:02d}-{moved.day:02d}"
        shown = f"{moved.year:04d}-{moved.month:02d}-{moved.day:02d} {moved.hour:02d}:{moved.minute:02d}:" \
                f"{moved.second:02d}"
        if "." in stripped or col.scale:
            digits = max(col.scale, len(stripped.rsplit(".", 1)[1]) if "." in stripped else 0)
            if digits:
                shown += "." + f"{moved.microsecond:06d}"[:digits]
        return shown

    def _map_time(self, col: _Column, value: Any) -> Any:
        text = _text(value)
        m = _TIME.match(text.strip())
        if not m:
            number = _decimal(value)
            return self._loose_value(value) if number is None else self._map_seconds(col, number, value)
        seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))
        if m.group(1):
            seconds = -seconds
        total = max(-3020399, min(3020399, seconds + int(col.b)))
        sign = "-" if total < 0 else ""
        total = abs(total)
        return f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}{m.group(5) or ''}"

    def _map_seconds(self, col: _Column, number: Decimal, value: Any) -> Any:
        mapped = number + col.b
        return int(mapped) if isinstance(value, int) else str(mapped)

    def _label(self, col: _Column, label: str) -> str:
        folded = label.casefold()
        for i, known in enumerate(col.labels, 1):
            if known == label or known.casefold() == folded:
                return f"e{i:02d}"
        if label.isdigit() and 0 < int(label) <= len(col.labels):
            return f"e{int(label):02d}"
        return "e00"

    def _map_string(self, col: _Column, text: str) -> str:
        key = _fold(col, text)
        found = col.strings.get(key)
        if found is not None:
            return found
        code = self._position(col, key, col.width) + ("a" * col.rank)
        target = min(col.maxlen, max(len(text), 1))
        if len(code) < target:
            code += (col.filler * (target // len(col.filler) + 1))[: target - len(code)]
        return code

    def _loose_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        number = _decimal(value)
        if number is not None and not isinstance(value, str):
            if abs(number) < 1_000_000:
                return value
            digits = len(str(abs(int(number))))
            drawn = self._draw("loose", _text(value)) % (9 * 10 ** (digits - 1)) + 10 ** (digits - 1)
            drawn = -drawn if number < 0 else drawn
            return drawn if isinstance(value, int) else type(value)(drawn)
        text = _text(value)
        if text == "":
            return ""
        seed = self._draw("loose", text)
        out = []
        for i in range(min(len(text), 255)):
            if i % 12 == 0:
                seed = self._draw("loose", text, i)
            out.append(_LETTERS[(seed >> (5 * (i % 12))) % 26])
        return "".join(out)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
