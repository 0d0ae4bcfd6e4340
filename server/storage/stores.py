"""Which blob store a data directory uses: the local folder, or an S3-compatible store.

Apart from blobs.py (the interface and the local folder) and s3.py (which imports the
interface), so that neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from server.config import BlobSettings
from server.storage.blobs import BlobStore, LocalStore


def open_store(root: Path, settings: Optional[BlobSettings] = None,
               scratch: Optional[Path] = None) -> BlobStore:
    """The store config.json's `blobs` section names: the directory `root` unless it says s3
    (then `scratch` holds `local_copy` files while they are used)."""
    if settings is None or settings.kind == "local":
        return LocalStore(root)
    from server.storage.s3 import S3Store

    return S3Store(settings, Path(scratch or root))
