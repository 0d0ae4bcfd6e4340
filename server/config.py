"""The server's data directory: where each piece of state lives, and its settings.

```
DIR/config.json    settings (mode 0600: a database URL may hold a password)
DIR/server.db      the embedded SQLite database (when no PostgreSQL URL is set)
DIR/identity.txt   the server's age identity (mode 0600), the one secret on disk
DIR/blobs/         sealed bundles by content hash, and uploads in progress
DIR/tmp/           scratch space for verification
```
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

CONFIG = "config.json"
IDENTITY = "identity.txt"
SQLITE = "server.db"

GIB = 1 << 30


class ConfigError(Exception):
    """The data directory is missing or unusable: the message says what to do."""


@dataclass
class Limits:
    #: The largest single upload (tus `Tus-Max-Size`).
    max_upload_bytes: int = 4 * GIB
    #: All bundles and uploads in progress of one ticket together.
    max_ticket_bytes: int = 20 * GIB
    #: An upload nobody touches for this long expires (tus expiration extension).
    upload_expiry_hours: float = 24.0
    #: How long a customer upload token stays valid.
    token_days: float = 30.0


@dataclass
class Config:
    recipients: List[str]
    database: str = ""
    limits: Limits = field(default_factory=Limits)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Config:
        limits = Limits(**{k: v for k, v in data.get("limits", {}).items()
                           if k in Limits.__dataclass_fields__})
        return cls(recipients=list(data["recipients"]), database=data.get("database", ""),
                   limits=limits)


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def identity_path(self) -> Path:
        return self.path / IDENTITY

    @property
    def blobs(self) -> Path:
        return self.path / "blobs"

    @property
    def tmp(self) -> Path:
        return self.path / "tmp"

    def database_url(self, config: Config, override: Optional[str] = None) -> str:
        return override or config.database or f"sqlite:///{self.path.resolve() / SQLITE}"

    def exists(self) -> bool:
        return self.config_path.exists()

    def load(self) -> Config:
        try:
            return Config.from_dict(json.loads(self.config_path.read_text()))
        except FileNotFoundError:
            raise ConfigError(
                f"{self.path} is not a mydiag-server data directory "
                f"(create one with `mydiag-server init --data {self.path}`)"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.config_path} is damaged ({exc})") from None

    def save(self, config: Config) -> None:
        write_private(self.config_path, json.dumps(config.to_dict(), indent=2).encode() + b"\n")


def write_private(path: Path, data: bytes) -> None:
    """Create `path` readable by its owner only, from the first byte on."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def safe_url(url: str) -> str:
    """A database URL fit for a log line: any password replaced by `***`."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
