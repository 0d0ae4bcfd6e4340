"""Pinned recipients, like SSH's known_hosts: a ticket's age recipients, trusted on first use.

The first upload to a ticket fetches its recipients from the server and writes them to
`<home>/pinned_recipients.json`. Later uploads seal to the pinned ones and refuse
loudly when the server names others: a changed key may be a server that was replaced,
or someone in the middle, and only the support team can say which.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, List

from agent.home import home

PINS = "pinned_recipients.json"


class RecipientChanged(Exception):
    """The server's recipients differ from the pinned ones; the message says what to do."""


def pins_path() -> Path:
    return home() / PINS


def _load(path: Path) -> Dict[str, Dict]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise RecipientChanged(f"{path} is damaged; remove it to pin the recipients afresh") from None
    return data if isinstance(data, dict) else {}


def pinned(server: str, ticket: str, offered: List[str]) -> List[str]:
    """The recipients to seal to: pinned ones, after checking the server still offers them."""
    path = pins_path()
    pins = _load(path)
    key = f"{server} {ticket}"
    entry = pins.get(key)
    if entry is None:
        if not offered:
            raise RecipientChanged(f"{server} names no recipient for ticket {ticket}; cannot seal")
        pins[key] = {"recipients": sorted(offered), "pinned": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                            time.gmtime())}
        _save(path, pins)
        return sorted(offered)
    if sorted(offered) != entry["recipients"]:
        raise RecipientChanged(
            f"the recipients of ticket {ticket} on {server} CHANGED since they were pinned on "
            f"{entry.get('pinned', '?')} (pinned {', '.join(entry['recipients'])}; the server now says "
            f"{', '.join(sorted(offered)) or 'none'}). Nothing was sent. Confirm the change with "
            f"support by another channel, then remove the line for this ticket from {path}"
        )
    return list(entry["recipients"])


def _save(path: Path, pins: Dict[str, Dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
