"""A customer-like schema for `mydiag share` (issue 16), generated at test time.

Every name (schema, tables, columns, indexes, partitions, the view) and every string value
carries a random token, so a leak of any of them can be searched for in any encoding. The
three slow SELECTs have plans that the optimizer takes from the statistics alone (no index
dive into the data), so transplanted statistics reproduce them and other statistics change
them; `flip_*` proves the latter on the real server:

- `range`: a range vs a full scan. An IN list longer than eq_range_index_dive_limit (set to
  8 on the server) is estimated from the index's rows per key, so a region index with many
  distinct values gives a range scan and one with few a full scan; through a view.
- `join_order`: two tables joined on a key both have indexed; the smaller drives, by the
  row counts of InnoDB's persistent statistics (one side RANGE-partitioned by year).
- `index_choice`: a join on two columns of `payments`, each with its own index; the ref
  access takes the index with more distinct values (n_diff_pfx01).
- `unreproducible`: a table with transient statistics (STATS_PERSISTENT=0): its plan comes
  from the data itself, which no package carries.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Sequence, Set, Tuple

#: performance_schema with the statement history MariaDB needs for samples with literals.
SERVER_ARGS = [
    "--performance-schema=ON",
    "--performance-schema-consumer-events-statements-current=ON",
    "--performance-schema-consumer-events-statements-history=ON",
    "--performance-schema-consumer-events-statements-history-long=ON",
    "--eq-range-index-dive-limit=8",
]
CUSTOMERS = 4000
INVOICES = 16000
PAYMENTS = 6000
REGIONS = 400


@dataclass
class Scenario:
    token: str
    schema: str
    names: Dict[str, str]
    queries: Dict[str, str]
    #: Every original identifier and string value: none may be in a public package.
    secrets: Set[str] = field(default_factory=set)

    def n(self, key: str) -> str:
        return self.names[key]


def scenario() -> Scenario:
    token = secrets.token_hex(3)

    def name(base: str) -> str:
        return f"{base}_{token}"

    keys = ("customers", "invoices", "payments", "probes", "ledger", "vip", "email", "region",
            "tier", "acct", "invoice_no", "issued", "amount", "ref_a", "ref_b", "probe_a",
            "probe_b", "ix_region", "ix_email", "ix_ref_a", "ix_ref_b", "ix_ledger_k", "ledger_k",
            "note", "p_old", "p_mid", "p_max")
    names = {k: name(k) for k in keys}
    names["customers"] = f"acme_customer_accounts_{token}"
    names["email"] = f"contact_email_{token}"
    schema = f"acme_billing_{token}"
    q = {k: f"`{v}`" for k, v in names.items()}
    regions = [_region(token, i) for i in range(12)]
    queries = {
        "range": f"SELECT {q['acct']}, {q['email']} FROM {q['vip']} WHERE {q['region']} IN ("
                 + ", ".join(f"'{r}'" for r in regions) + ")",
        "join_order": f"SELECT c.{q['email']}, i.{q['amount']} FROM {q['customers']} c JOIN"
                      f" {q['invoices']} i ON i.{q['acct']} = c.{q['acct']}",
        "index_choice": f"SELECT p.{q['amount']} FROM {q['probes']} r JOIN {q['payments']} p"
                        f" ON p.{q['ref_a']} = r.{q['probe_a']} AND p.{q['ref_b']} = r.{q['probe_b']}",
        "unreproducible": f"SELECT {q['note']} FROM {q['ledger']} WHERE {q['ledger_k']}"
                          " BETWEEN 100 AND 2600",
    }
    found = Scenario(token, schema, names, queries)
    found.secrets = {schema, *names.values(), *regions, *(_email(token, i) for i in range(0, CUSTOMERS, 97)),
                     _email(token, 1), _email(token, CUSTOMERS), f"note-{token}", f"@mail-{token}.example"}
    return found


def _region(token: str, i: int) -> str:
    return f"rg{token}{i:03d}"


def _email(token: str, i: int) -> str:
    return f"person{i:05d}.{token}@mail-{token}.example"


def build(instance: Any, s: Scenario) -> None:
    """Create the schema and its data, persist the statistics, run every query twice."""
    n, t = s.names, s.token
    q = {k: f"`{v}`" for k, v in n.items()}
    instance.sql(
        f"CREATE DATABASE `{s.schema}`", f"USE `{s.schema}`",
        f"CREATE TABLE {q['customers']} ({q['acct']} INT NOT NULL PRIMARY KEY,"
        f" {q['email']} VARCHAR(80) NOT NULL, {q['region']} CHAR(12) NOT NULL,"
        f" {q['tier']} TINYINT NOT NULL, KEY {q['ix_region']} ({q['region']}),"
        f" UNIQUE KEY {q['ix_email']} ({q['email']})) ENGINE=InnoDB",
        f"INSERT INTO {q['customers']} SELECT seq, CONCAT('person', LPAD(seq, 5, '0'), '.{t}@mail-{t}"
        f".example'), CONCAT('rg{t}', LPAD(seq % {REGIONS}, 3, '0')), seq % 4 FROM seq_1_to_{CUSTOMERS}",
        f"CREATE TABLE {q['invoices']} ({q['acct']} INT NOT NULL, {q['invoice_no']} INT NOT NULL,"
        f" {q['issued']} DATE NOT NULL, {q['amount']} DECIMAL(10,2) NOT NULL,"
        f" PRIMARY KEY ({q['acct']}, {q['invoice_no']}, {q['issued']})) ENGINE=InnoDB"
        f" PARTITION BY RANGE (YEAR({q['issued']})) (PARTITION {q['p_old']} VALUES LESS THAN (2024),"
        f" PARTITION {q['p_mid']} VALUES LESS THAN (2025), PARTITION {q['p_max']} VALUES LESS THAN MAXVALUE)",
        f"INSERT INTO {q['invoices']} SELECT seq % {CUSTOMERS} + 1, seq, '2023-01-01' + INTERVAL"
        f" (seq % 900) DAY, (seq * 37) % 10000 / 7 FROM seq_1_to_{INVOICES}",
        f"CREATE TABLE {q['payments']} (id INT NOT NULL PRIMARY KEY, {q['ref_a']} INT NOT NULL,"
        f" {q['ref_b']} INT NOT NULL, {q['amount']} INT NOT NULL, KEY {q['ix_ref_a']} ({q['ref_a']}),"
        f" KEY {q['ix_ref_b']} ({q['ref_b']})) ENGINE=InnoDB",
        f"INSERT INTO {q['payments']} SELECT seq, seq % 6, seq % 3000, seq FROM seq_1_to_{PAYMENTS}",
        f"CREATE TABLE {q['probes']} (id INT NOT NULL PRIMARY KEY, {q['probe_a']} INT NOT NULL,"
        f" {q['probe_b']} INT NOT NULL) ENGINE=InnoDB",
        f"INSERT INTO {q['probes']} SELECT seq, seq % 6, seq * 7 FROM seq_1_to_40",
        f"CREATE TABLE {q['ledger']} (id INT NOT NULL PRIMARY KEY, {q['ledger_k']} INT NOT NULL,"
        f" {q['note']} VARCHAR(40) NOT NULL, KEY {q['ix_ledger_k']} ({q['ledger_k']}))"
        " ENGINE=InnoDB STATS_PERSISTENT=0",
        f"INSERT INTO {q['ledger']} SELECT seq, seq, CONCAT('note-{t}-', seq) FROM seq_1_to_3000",
        f"CREATE VIEW {q['vip']} AS SELECT {q['acct']}, {q['email']}, {q['region']} FROM"
        f" {q['customers']} WHERE {q['tier']} >= 2",
        f"ANALYZE TABLE {q['customers']}, {q['invoices']}, {q['payments']}, {q['probes']}",
        f"ANALYZE TABLE {q['customers']} PERSISTENT FOR COLUMNS ({q['email']}, {q['tier']}) INDEXES ()",
    )
    run_queries(instance, s)


def run_queries(instance: Any, s: Scenario, times: int = 2) -> None:
    conn = instance.connect(database=s.schema)
    with conn, conn.cursor() as cur:
        for _ in range(times):
            for sql in s.queries.values():
                cur.execute(sql)
                cur.fetchall()


def explain(instance: Any, s: Scenario, query: str) -> Dict[str, Any]:
    conn = instance.connect(database=s.schema)
    with conn, conn.cursor() as cur:
        cur.execute("EXPLAIN FORMAT=JSON " + s.queries[query])
        return json.loads(cur.fetchone()[0])


def plan(explain_json: Dict[str, Any]) -> List[Tuple[str, str, str]]:
    """(table, access type, key) in join order, from a MariaDB EXPLAIN FORMAT=JSON."""
    found: List[Tuple[str, str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            table = node.get("table")
            if isinstance(table, dict) and "access_type" in table:
                found.append((str(table.get("table_name")), str(table["access_type"]),
                              str(table.get("key") or "")))
            for key, value in node.items():
                if key != "table" or not (isinstance(value, dict) and "access_type" in value):
                    walk(value)
                else:
                    walk({k: v for k, v in value.items() if isinstance(v, (dict, list))})
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(explain_json)
    return found


# --- the leak check, the test's own -------------------------------------------------


def encodings(value: str) -> Dict[str, Set[bytes]]:
    """`value` as it could appear in a file: raw, case-folded, SQL- and JSON-escaped, hex,
    base64 (at each of the three alignments inside a longer blob)."""
    raw = value.encode()
    out: Dict[str, Set[bytes]] = {
        "raw": {raw},
        "casefold": {value.casefold().encode(), value.lower().encode(), value.upper().encode()},
        "sql_escaped": {value.replace("\\", "\\\\").replace("'", "''").encode(),
                        value.replace("\\", "\\\\").replace("'", "\\'").encode(),
                        value.replace("`", "``").encode()},
        "json_escaped": {json.dumps(value)[1:-1].encode(),
                         json.dumps(value, ensure_ascii=False)[1:-1].encode()},
        "hex": {raw.hex().encode(), raw.hex().upper().encode()},
        "base64": set(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        # Only the characters whose six bits all come from the value's own bytes.
        start, stop = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        piece = encoded[start:stop]
        if len(piece) >= 8:
            out["base64"].add(piece)
    return out


def leaks(files: Dict[str, bytes], originals: Iterable[str], minimum: int = 6) -> List[Tuple[str, str, str]]:
    """(file, original, encoding) for every original found in any file, in any encoding;
    case-insensitive for the text encodings."""
    found = []
    lowered = {path: data.lower() for path, data in files.items()}
    for original in sorted(set(originals)):
        if len(original) < minimum:
            continue
        for kind, forms in encodings(original).items():
            for form in forms:
                for path, data in files.items():
                    hay = data if kind == "base64" else lowered[path]
                    needle = form if kind == "base64" else form.lower()
                    if needle and needle in hay:
                        found.append((path, original, kind))
    return sorted(set(found))


def set_statistics(instance: Any, s: Scenario, table: str, *, n_rows: int = 0,
                   n_diff: Sequence[Tuple[str, int]] = ()) -> None:
    """Overwrite InnoDB's persistent statistics of one table (and the EITS rows of its
    indexes) and reload them: what the optimizer would see with other statistics."""
    name = s.names[table]
    statements = [f"USE `{s.schema}`"]
    like = f"{name}#P#%"
    if n_rows:
        parts = instance.sql(f"SELECT COUNT(*) FROM mysql.innodb_table_stats WHERE database_name = "
                             f"'{s.schema}' AND (table_name = '{name}' OR table_name LIKE '{like}')")[0][0]
        statements.append(f"UPDATE mysql.innodb_table_stats SET n_rows = {n_rows // max(parts, 1)}"
                          f" WHERE database_name = '{s.schema}' AND (table_name = '{name}'"
                          f" OR table_name LIKE '{like}')")
    for index, value in n_diff:
        statements.append(f"UPDATE mysql.innodb_index_stats SET stat_value = {value} WHERE"
                          f" database_name = '{s.schema}' AND table_name = '{name}' AND index_name ="
                          f" '{s.names[index]}' AND stat_name = 'n_diff_pfx01'")
    # MariaDB 10.11 does not reload edited statistics at FLUSH TABLE (measured): a
    # RENAME there and back evicts the table's cached definition, and the next open reads them.
    statements.append(f"RENAME TABLE `{name}` TO `{name}_x`, `{name}_x` TO `{name}`")
    instance.sql(*statements)


def members(folder: Any) -> Dict[str, bytes]:
    """Every file under a package folder, by relative path."""
    from pathlib import Path

    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
