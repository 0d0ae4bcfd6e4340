"""The server's data directory: where each piece of state lives, and its settings.

```
DIR/config.json    settings (mode 0600: a database URL may hold a password)
DIR/server.db      the embedded SQLite database (when no PostgreSQL URL is set)
DIR/identity.txt   the server's age identity (mode 0600), the one secret on disk
DIR/mail.key       the key that signs reply addresses and Message-IDs (mode 0600; docs/mail.md)
DIR/blobs/         sealed bundles by content hash, and uploads in progress (unless the
                   `blobs` section names an S3-compatible store: docs/storage.md)
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

from bundle.limits import Limits as BundleLimits

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
    #: What a bundle may expand to when it is verified or opened (docs/api.md, "Limits"):
    #: bytes of one member and of all members unpacked, the compression ratio against the
    #: sealed size (above a floor every bundle may reach), members, manifest bytes and
    #: nesting, bytes of a member path.
    bundle_member_bytes: int = 8 * GIB
    bundle_unpacked_bytes: int = 32 * GIB
    bundle_ratio: float = 100.0
    bundle_ratio_floor_bytes: int = 64 << 20
    bundle_members: int = 10_000
    manifest_bytes: int = 4 << 20
    manifest_depth: int = 32
    member_path_bytes: int = 255
    #: A verification that crashes (not a bundle that fails its checks) is retried after
    #: `verify_retry_seconds`, doubling each time; after `verify_attempts` the bundle is
    #: quarantined ("verification failed repeatedly").
    verify_attempts: int = 5
    verify_retry_seconds: float = 30.0
    #: Unfinished (receiving) uploads one ticket may hold at once; one more answers 429.
    max_open_uploads: int = 8
    #: The request line and all headers together; past it, 431.
    max_request_head_bytes: int = 32 * 1024
    #: One header (name and value); past it, 431.
    max_header_bytes: int = 8 * 1024
    #: Headers in one request; past it, 431.
    max_header_count: int = 64
    #: The tus `Upload-Metadata` header, its keys, and each key's and decoded value's length.
    max_metadata_bytes: int = 4096
    max_metadata_keys: int = 16
    max_metadata_key_bytes: int = 64
    max_metadata_value_bytes: int = 1024
    #: SSH gateway: connections not yet authenticated, in all and from one address; one
    #: more is closed at once.
    ssh_max_unauthenticated: int = 64
    ssh_max_unauthenticated_per_address: int = 8
    #: SSH gateway: a connection not authenticated this long after it opened is closed.
    ssh_auth_deadline_seconds: float = 15.0
    #: SSH gateway: channels open at once on one connection (each costs a thread or two).
    ssh_max_channels_per_connection: int = 8

    def bundle_limits(self) -> BundleLimits:
        """The bundle readers' bounds (bundle.limits) from these settings."""
        return BundleLimits(
            member_bytes=self.bundle_member_bytes, unpacked_bytes=self.bundle_unpacked_bytes,
            ratio=self.bundle_ratio, ratio_floor_bytes=self.bundle_ratio_floor_bytes,
            members=self.bundle_members, manifest_bytes=self.manifest_bytes,
            json_depth=self.manifest_depth, path_bytes=self.member_path_bytes)


@dataclass
class MailSettings:
    """Email both ways (docs/mail.md): the `mail` section of config.json."""

    #: The domain of the reply addresses and Message-IDs (`support+<ticket>.<mac>@domain`).
    domain: str = ""
    #: The local part before `+`: `support` gives `support@domain` and `support+…@domain`.
    local_part: str = "support"
    #: The outbound smart host (empty: nothing is mailed; replies stay pending).
    smarthost: str = ""
    smarthost_port: int = 25
    starttls: bool = True
    #: A CA certificate file to trust for the smart host's STARTTLS (default: the system's).
    smarthost_ca_file: str = ""
    #: A file with the smart host's user on its first line and the password on its second.
    auth_file: str = ""
    #: Whether mail from an address that is no customer's person opens a ticket (for
    #: `new_ticket_customer`); otherwise it is answered once, politely.
    allow_new_tickets: bool = False
    new_ticket_customer: str = "unassigned"
    #: The largest message the SMTP endpoint takes (refused at DATA past it) and IMAP reads.
    max_message_bytes: int = 50 << 20
    #: The largest attachment taken from a mail; a bigger bundle gets the upload command.
    max_attachment_bytes: int = 20 << 20
    #: MIME parts read from one message (more are counted, not read).
    max_parts: int = 500
    #: The server's address the upload command names (e.g. https://support.example.com).
    public_url: str = ""
    #: One polite answer per unknown sender within this many hours.
    notice_interval_hours: float = 24.0
    #: Outbound retries: the first after `retry_seconds`, doubling, `max_attempts` in all.
    retry_seconds: float = 60.0
    max_attempts: int = 8

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


@dataclass
class BlobSettings:
    """Where bundles, raw mail and uploads in progress live (docs/storage.md): the `blobs`
    section of config.json. No secret is kept here: an S3 store's key id and secret come
    from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or from `credentials_file`."""

    #: `local` (DIR/blobs/, the default) or `s3` (an S3-compatible object store).
    kind: str = "local"
    #: The store's URL (e.g. https://s3.eu-west-1.amazonaws.com, http://minio:9000); empty: AWS's default.
    endpoint: str = ""
    bucket: str = ""
    region: str = ""
    #: Put before every key, so that one bucket can hold several servers (e.g. `mydiag/`).
    prefix: str = ""
    #: A file (mode 0600) with the access key id on its first line and the secret on its second.
    credentials_file: str = ""
    #: Seconds to connect and to wait for each answer; attempts per request (standard-mode retries).
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_attempts: int = 3
    #: The size of one multipart part: what a PATCH holds in memory at most (S3's floor is 5 MiB).
    part_bytes: int = 8 << 20

    def describe(self, root: Optional[Path] = None) -> str:
        """The store in a log line: never a credential."""
        if self.kind != "s3":
            return f"local {root}" if root else "local"
        where = f"s3://{self.bucket}/{self.prefix}"
        return f"{where} at {safe_url(self.endpoint)}" if self.endpoint else where


@dataclass
class Config:
    recipients: List[str]
    database: str = ""
    limits: Limits = field(default_factory=Limits)
    mail: MailSettings = field(default_factory=MailSettings)
    blobs: BlobSettings = field(default_factory=BlobSettings)
    #: Reply policies and business calendars (server/support/policies.py, docs/conversations.md).
    support: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Config:
        limits = Limits(**{k: v for k, v in data.get("limits", {}).items()
                           if k in Limits.__dataclass_fields__})
        mail = MailSettings(**{k: v for k, v in (data.get("mail") or {}).items()
                               if k in MailSettings.__dataclass_fields__})
        support = data.get("support") or {}
        if not isinstance(support, dict):
            raise ValueError("support must be an object")
        blobs = BlobSettings(**{k: v for k, v in (data.get("blobs") or {}).items()
                                if k in BlobSettings.__dataclass_fields__})
        if blobs.kind not in ("local", "s3"):
            raise ValueError(f"blobs.kind must be local or s3, not {blobs.kind!r}")
        return cls(recipients=list(data["recipients"]), database=data.get("database", ""),
                   limits=limits, mail=mail, support=support, blobs=blobs)


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
    def mail_key_path(self) -> Path:
        return self.path / "mail.key"

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
