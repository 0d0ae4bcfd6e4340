"""A granted session as the customer's side knows it, and what one channel asks of its holder.

Both ends of the customer's side share these: the tunnel (`tunnel.Holder` holds the
session) and each engineer channel it serves (`channel.Host`). They live here, below
both, so that neither imports the other's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol


@dataclass
class Grant:
    id: str
    engineer: str
    mode: str
    purpose: str
    ticket: str
    server: str
    host: str
    expires: float
    gateway_host: str
    gateway_port: int
    host_key: str

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Grant:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def to_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def join_command(self) -> str:
        return f"ssh -p {self.gateway_port} {self.engineer}@{self.gateway_host} {self.id}"


class SessionHolder(Protocol):
    """What one engineer channel asks of whoever holds its session (`tunnel.Holder`)."""

    grant: Grant
    folder: Path
    spec: Optional[Dict[str, Any]]
    log: Callable[[str], None]

    def refusal(self, engineer: str) -> Optional[str]: ...

    def enlist(self, host: Any) -> bool: ...

    def forget(self, host: Any) -> None: ...

    def finished(self, host: Any, status: int, lines: int, head: str) -> None: ...
