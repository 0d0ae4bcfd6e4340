"""How an option written in a file compares with the value the server runs with.

Option files say `innodb-buffer-pool-size = 1G`, `skip-name-resolve`, `log-bin`;
SHOW GLOBAL VARIABLES says `innodb_buffer_pool_size 1073741824`, `skip_name_resolve ON`,
`log_bin ON`. Names differ by dashes, prefixes (`loose-`, `skip-`, `enable-`,
`disable-`) and unique abbreviations; values by size suffixes, boolean spellings,
float precision, list order and relative paths.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

from collectors.mysql.optionfile import normalize_key

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe])b?\s*$", re.I)
_NUMBER = re.compile(r"^\s*-?\d+(?:\.\d+)?(?:e[-+]?\d+)?\s*$", re.I)
_MULTIPLIER = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}
#: Old spellings still accepted in option files (MySQL's unique-prefix rule, renamed options).
ALIASES = {"key_buffer": "key_buffer_size", "thread_cache": "thread_cache_size",
           "sort_buffer": "sort_buffer_size", "read_buffer": "read_buffer_size",
           "table_cache": "table_open_cache", "log_slow_queries": "slow_query_log"}
TRUE = frozenset({"on", "1", "true", "yes", "enabled", "force"})
FALSE = frozenset({"off", "0", "false", "no", "disabled"})


def variable_name(option: str, variables: Dict[str, object]) -> Tuple[Optional[str], Optional[str]]:
    """The server variable an option sets, and the value a prefix implies (ON/OFF) if any.

    `skip-name-resolve` sets `skip_name_resolve` (a variable of its own) but
    `skip-log-bin` turns `log_bin` OFF; `key_buffer` is short for `key_buffer_size`.
    Other abbreviations are not guessed: `user` is an option, not short for `userstat`.
    """
    name = normalize_key(option).replace("-", "_")
    if name in variables:
        return name, None
    for prefix, implied in (("skip_", "OFF"), ("disable_", "OFF"), ("enable_", "ON")):
        if name.startswith(prefix) and name[len(prefix):] in variables:
            return name[len(prefix):], implied
    alias = ALIASES.get(name)
    return (alias, None) if alias in variables else (None, None)


def to_bytes(value: str) -> Optional[int]:
    """`512M` -> 536870912; a plain number stays itself; None when not a size."""
    match = _SIZE.match(value)
    if match:
        return int(float(match.group(1)) * _MULTIPLIER[match.group(2).lower()])
    if _NUMBER.match(value) and "." not in value and "e" not in value.lower():
        return int(value)
    return None


def same(configured: Optional[str], running: object) -> bool:
    """True when the file's value and the running value mean the same thing."""
    run = "" if running is None else str(running).strip()
    if configured is None:
        # A bare option (`skip-name-resolve`, `log-bin`) switches a boolean on.
        return run.lower() in TRUE or run == ""
    conf = configured.strip()
    if conf.lower() == run.lower():
        return True
    if run.lower() in TRUE | FALSE:
        if conf.lower() in TRUE | FALSE:
            return (conf.lower() in TRUE) == (run.lower() in TRUE)
        # An option given a value (`log-bin=binlog`) turns its boolean variable on.
        return run.lower() in TRUE and conf != ""
    size, run_number = to_bytes(conf), to_bytes(run)
    if size is not None and run_number is not None:
        return size == run_number
    if _NUMBER.match(conf) and _NUMBER.match(run):
        return abs(float(conf) - float(run)) < 1e-9 * max(1.0, abs(float(run)))
    if "," in conf or "," in run:
        return _same_list(conf, run)
    return _same_path(conf, run)


def _same_list(conf: str, run: str) -> bool:
    wanted = {t.strip().upper() for t in conf.split(",") if t.strip()}
    actual = {t.strip().upper() for t in run.split(",") if t.strip()}
    # `optimizer_switch=index_merge=off` changes one flag; the server lists them all.
    if wanted and all("=" in t for t in wanted):
        return wanted <= actual
    return wanted == actual


def _same_path(conf: str, run: str) -> bool:
    def clean(path: str) -> str:
        path = path.rstrip("/") or "/"
        return path[2:] if path.startswith("./") else path

    conf, run = clean(conf), clean(run)
    if conf == run:
        return True
    # A relative file value is relative to the datadir; the server may print it absolute.
    return not conf.startswith("/") and run.startswith("/") and run.endswith("/" + conf)
