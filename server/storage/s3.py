"""The S3-compatible blob store: blobs as objects, uploads in progress as multipart uploads.

Keys (under the configured prefix):

```
sha256/<aa>/<sha256>                      a blob (sealed bundle, raw mail, report), written once
staging/<upload>/state-<size>.json        an upload's parts and tail at `size` bytes
staging/<upload>/tail-<start>-<end>       the bytes after the last part (less than one part)
staging/<upload>/whole                    the multipart upload's key: the finished upload
```

S3 parts must be at least 5 MiB (all but the last) and tus PATCH bodies come in any
size, so the bytes after the last full part are kept as a small object of their own, the
tail. A writer opened at offset N reads `state-N` (what was there when offset N was
committed), drops every other state, tail and abandoned multipart upload (a PATCH that
died), reads the tail into memory, and sends a part each time `part_bytes` have
gathered (sent by a thread of the writer while the body keeps coming, one part in flight);
`close` waits for it, writes the new tail and `state-<new size>`, and only then does the
caller commit the new offset. Nothing of an upload is held by a process between
requests, so another process resumes it. A part number a dead PATCH used is uploaded
again (S3 keeps the last), and the completion names exactly the parts of the final state.

A process holds at most one part (plus one body chunk) of memory per PATCH in flight, and
never a temp file for an upload. `staging_digest` completes the multipart upload and
reads it back once (a hash's state cannot be stored): one more read of the upload, only
when the PATCHes did not all come to one process (tus.finish uses their running hash
otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from server.config import BlobSettings, ConfigError
from server.storage.blobs import _ID, _SHA, BlobStore, StagingWriter, StoreUnavailable

log = logging.getLogger("mydiag.server")
#: The smallest part S3 takes (all but the last).
MIN_PART = 5 << 20
#: A single CopyObject takes at most 5 GiB; past this, boto3's managed copy goes by parts.
COPY_THRESHOLD = 4 << 30
_STATE = re.compile(r"state-(\d{20})\.json$")
_MISSING = ("NoSuchKey", "404", "NotFound", "NoSuchUpload")


def credentials(settings: BlobSettings) -> Dict[str, str]:
    """The key id and secret from `credentials_file` (mode 0600, two lines); empty means
    boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, a role)."""
    if not settings.credentials_file:
        return {}
    path = Path(settings.credentials_file)
    try:
        mode = path.stat().st_mode
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the S3 credentials file {path}: {exc.strerror or exc}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise ConfigError(f"the S3 credentials file {path} is readable by others: chmod 600 it")
    if len(lines) < 2 or not lines[0].strip() or not lines[1].strip():
        raise ConfigError(f"the S3 credentials file {path} must hold the access key id on its first "
                          "line and the secret on its second")
    return {"aws_access_key_id": lines[0].strip(), "aws_secret_access_key": lines[1].strip()}


def make_client(settings: BlobSettings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": max(1, settings.max_attempts)},
        connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
        signature_version="s3v4", max_pool_connections=32,
        # Path-style addressing for an endpoint of one's own (MinIO, Ceph, s3rver): no DNS per bucket.
        s3={"addressing_style": "path" if settings.endpoint else "auto"},
        # Checksums only where S3 requires them: many S3-compatible stores refuse the newer
        # trailing checksums; every part and object is still MD5/SigV4-checked on the way.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=settings.endpoint or None,
                          region_name=settings.region or "us-east-1", config=config,
                          **credentials(settings))


@contextlib.contextmanager
def calling(what: str) -> Iterator[None]:
    """Turn the client's errors into the store's: FileNotFoundError for a missing key,
    StoreUnavailable for everything else (after boto3's own bounded retries)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _MISSING:
            raise FileNotFoundError(errno.ENOENT, f"{what}: not in the blob store") from None
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        raise StoreUnavailable(f"the blob store refused {what} ({status} {code})") from None
    except (BotoCoreError, HTTPError, ConnectionError) as exc:
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise StoreUnavailable(f"the blob store did not answer {what} ({type(exc).__name__}: {text})") \
            from None


class S3Store(BlobStore):
    def __init__(self, settings: BlobSettings, scratch: Path, client: Any = None) -> None:
        if not settings.bucket:
            raise ConfigError("the s3 blob store needs a bucket (blobs.bucket in config.json)")
        if settings.part_bytes < MIN_PART:
            raise ConfigError(f"blobs.part_bytes must be at least {MIN_PART} (S3's smallest part)")
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.part_bytes = settings.part_bytes
        self.scratch = Path(scratch)
        self.client = client or make_client(settings)

    def describe(self) -> str:
        return self.settings.describe()

    # Keys ---------------------------------------------------------------------------------

    def blob_key(self, sha256: str) -> str:
        if not _SHA.match(sha256):
            raise ValueError("bad sha256")
        return f"{self.prefix}sha256/{sha256[:2]}/{sha256}"

    def staging_prefix(self, upload_id: str) -> str:
        if not _ID.match(upload_id):
            raise ValueError("bad upload id")
        return f"{self.prefix}staging/{upload_id}/"

    def state_key(self, upload_id: str, size: int) -> str:
        return f"{self.staging_prefix(upload_id)}state-{size:020d}.json"

    def tail_key(self, upload_id: str, start: int, end: int) -> str:
        return f"{self.staging_prefix(upload_id)}tail-{start:020d}-{end:020d}"

    def whole_key(self, upload_id: str) -> str:
        return f"{self.staging_prefix(upload_id)}whole"

    # Small helpers over the client ----------------------------------------------------------

    def list_keys(self, prefix: str) -> List[str]:
        keys: List[str] = []
        token = None
        with calling(f"a listing of {prefix}"):
            while True:
                extra = {"ContinuationToken": token} if token else {}
                page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **extra)
                keys += [item["Key"] for item in page.get("Contents", [])]
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    return keys

    def get_bytes(self, key: str) -> bytes:
        with calling(f"reading {key}"):
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
            with contextlib.closing(reply["Body"]) as body:
                return body.read()

    def put_bytes(self, key: str, data: bytes) -> None:
        with calling(f"writing {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def head(self, key: str) -> Optional[int]:
        """The object's size, None when there is none."""
        try:
            with calling(f"looking up {key}"):
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except FileNotFoundError:
            return None

    def delete_keys(self, keys: List[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            with calling(f"deleting {len(batch)} objects"):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def abort(self, upload_id: str, multipart: str) -> None:
        """Drop an abandoned multipart upload's parts (best effort: some stores, s3rver among
        them, refuse AbortMultipartUpload; a bucket lifecycle rule then reclaims them)."""
        try:
            with calling("aborting a multipart upload"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.whole_key(upload_id),
                                                   UploadId=multipart)
        except (StoreUnavailable, FileNotFoundError) as exc:
            log.debug("upload %s: multipart %s not aborted: %s", upload_id, multipart, exc)

    # Uploads in progress ------------------------------------------------------------------

    def states(self, upload_id: str) -> Dict[int, str]:
        """The upload's recorded states by size: one per committed offset, and maybe one
        from a PATCH that died before its offset was committed."""
        found = {}
        for key in self.list_keys(self.staging_prefix(upload_id)):
            match = _STATE.search(key)
            if match:
                found[int(match.group(1))] = key
        return found

    def load_state(self, upload_id: str, size: int) -> Dict[str, Any]:
        if size == 0:
            try:
                return json.loads(self.get_bytes(self.state_key(upload_id, 0)))
            except FileNotFoundError:
                return empty_state()
        try:
            return json.loads(self.get_bytes(self.state_key(upload_id, size)))
        except FileNotFoundError:
            raise StoreUnavailable(f"the blob store holds no record of upload {upload_id} at "
                                   f"{size} bytes (the store lost objects?)") from None

    def staging_size(self, upload_id: str) -> int:
        return max(self.states(upload_id), default=0)

    def staging_writer(self, upload_id: str, offset: int) -> StagingWriter:
        return S3StagingWriter(self, upload_id, offset)

    def drop_others(self, upload_id: str, keep: Dict[str, Any]) -> None:
        """Remove what PATCHes that died left beside the state `keep` (offset `keep['size']`)."""
        stale = []
        kept_tail = self.tail_key(upload_id, *keep["tail"]) if keep.get("tail") else None
        for key in self.list_keys(self.staging_prefix(upload_id)):
            match = _STATE.search(key)
            if match and int(match.group(1)) != keep["size"]:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    other = json.loads(self.get_bytes(key))
                    if other.get("upload") and other["upload"] != keep.get("upload"):
                        self.abort(upload_id, other["upload"])
                stale.append(key)
            elif "/tail-" in key and key != kept_tail:
                stale.append(key)
        if stale:
            self.delete_keys(stale)

    def seal(self, upload_id: str) -> int:
        """Complete the upload's multipart upload as `whole` (once; again is a no-op): its size."""
        whole = self.whole_key(upload_id)
        size = self.head(whole)
        if size is not None:
            return size
        sizes = self.states(upload_id)
        if not sizes:
            raise FileNotFoundError(errno.ENOENT, f"upload {upload_id}: nothing staged in the blob store")
        state = self.load_state(upload_id, max(sizes))
        tail = self.tail_key(upload_id, *state["tail"]) if state.get("tail") else None
        if not state["parts"]:
            with calling(f"copying {tail or 'an empty upload'} to {whole}"):
                if tail:
                    self.client.copy_object(Bucket=self.bucket, Key=whole,
                                            CopySource={"Bucket": self.bucket, "Key": tail})
                else:
                    self.client.put_object(Bucket=self.bucket, Key=whole, Body=b"")
        else:
            parts = [{"PartNumber": n, "ETag": etag} for n, _size, etag in state["parts"]]
            if tail:
                data = self.get_bytes(tail)
                number = len(parts) + 1
                with calling(f"sending the last part of upload {upload_id}"):
                    reply = self.client.upload_part(Bucket=self.bucket, Key=whole, UploadId=state["upload"],
                                                    PartNumber=number, Body=data)
                parts.append({"PartNumber": number, "ETag": reply["ETag"]})
            with calling(f"completing upload {upload_id}"):
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=whole, UploadId=state["upload"],
                                                      MultipartUpload={"Parts": parts})
        size = self.head(whole)
        if size != state["size"]:
            raise StoreUnavailable(f"upload {upload_id}: the store made {size} bytes of {state['size']}")
        return size

    def staging_digest(self, upload_id: str) -> str:
        self.seal(upload_id)
        digest = hashlib.sha256()
        with self.reader(self.whole_key(upload_id)) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def discard_staging(self, upload_id: str) -> None:
        keys = self.list_keys(self.staging_prefix(upload_id))
        for key in keys:
            if _STATE.search(key):
                with contextlib.suppress(FileNotFoundError, ValueError):
                    multipart = json.loads(self.get_bytes(key)).get("upload")
                    if multipart:
                        self.abort(upload_id, multipart)
        if keys:
            self.delete_keys(keys)

    def promote(self, upload_id: str, sha256: str) -> None:
        target = self.blob_key(sha256)
        if self.head(target) is not None:
            self.discard_staging(upload_id)
            return
        size = self.seal(upload_id)
        self.copy(self.whole_key(upload_id), target, size)
        self.discard_staging(upload_id)

    def copy(self, source: str, target: str, size: int) -> None:
        from boto3.s3.transfer import TransferConfig

        with calling(f"copying {source} to {target}"):
            if size <= COPY_THRESHOLD:
                self.client.copy_object(Bucket=self.bucket, Key=target,
                                        CopySource={"Bucket": self.bucket, "Key": source})
            else:
                self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target,
                                 Config=TransferConfig(multipart_threshold=COPY_THRESHOLD,
                                                       multipart_chunksize=1 << 30))

    # Blobs --------------------------------------------------------------------------------

    def put_file(self, path: Path, sha256: str) -> None:
        from boto3.s3.transfer import TransferConfig

        target = self.blob_key(sha256)
        if self.head(target) is not None:
            return
        # Streamed from the file by parts (never whole in memory); the object appears only
        # when complete, so a reader never sees half of it.
        config = TransferConfig(multipart_threshold=self.part_bytes, multipart_chunksize=self.part_bytes,
                                max_concurrency=4)
        with calling(f"storing {target}"):
            self.client.upload_file(str(path), self.bucket, target, Config=config)

    def reader(self, key: str) -> io.BufferedReader:
        return io.BufferedReader(ObjectReader(self, key), buffer_size=1 << 20)

    def open(self, sha256: str) -> io.BufferedReader:
        return self.reader(self.blob_key(sha256))

    @contextlib.contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        key = self.blob_key(sha256)
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{sha256[:12]}-", suffix=".blob", dir=self.scratch)
        try:
            with self.reader(key) as source, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def exists(self, sha256: str) -> bool:
        return self.head(self.blob_key(sha256)) is not None

    def check(self) -> None:
        """One request that proves the bucket is there and these credentials may use it."""
        probe = f"{self.prefix}.mydiag-probe"
        self.put_bytes(probe, b"mydiag\n")
        self.delete_keys([probe])


def empty_state() -> Dict[str, Any]:
    return {"size": 0, "upload": None, "parts": [], "tail": None}


class S3StagingWriter(StagingWriter):
    """Appends to an upload in the store from `offset`; see the module docstring."""

    remote = True

    def __init__(self, store: S3Store, upload_id: str, offset: int) -> None:  # noqa: D107 - no super()
        self.store = store
        self.upload_id = upload_id
        self.written = 0
        self._broken = False
        self._closed = False
        self._flushed = False
        #: The part being sent while the next one fills (number, size, future), and its thread.
        self._pending: Optional[Tuple[int, int, Future]] = None
        self._sender: Optional[ThreadPoolExecutor] = None
        state = store.load_state(upload_id, offset)
        store.drop_others(upload_id, state)
        self._multipart: Optional[str] = state.get("upload")
        self._parts: List[Tuple[int, int, str]] = [tuple(p) for p in state["parts"]]
        self._base = offset
        tail = store.get_bytes(store.tail_key(upload_id, *state["tail"])) if state["tail"] else b""
        self._buffer = bytearray(tail)
        self._parts_end = offset - len(self._buffer)

    def write(self, data: bytes) -> None:
        if self._broken or self._closed:
            raise StoreUnavailable("this upload's writer failed earlier; the PATCH is dropped")
        self._buffer += data
        self.written += len(data)
        if len(self._buffer) >= self.store.part_bytes:
            try:
                self._send_part()
            except BaseException:
                self._broken = True
                raise

    def _send_part(self) -> None:
        """Hand the full buffer to the sender thread, so the body keeps coming while it goes
        out; one part in flight at most (memory: two parts)."""
        self._wait_part()
        store = self.store
        if self._multipart is None:
            with calling(f"starting a multipart upload for {self.upload_id}"):
                started = store.client.create_multipart_upload(Bucket=store.bucket,
                                                               Key=store.whole_key(self.upload_id))
            self._multipart = started["UploadId"]
        number = len(self._parts) + 1
        data, self._buffer = self._buffer, bytearray()  # handed over as is: no copy of the part
        self._parts_end += len(data)
        self._flushed = True
        if self._sender is None:
            self._sender = ThreadPoolExecutor(1, thread_name_prefix=f"part-{self.upload_id[:8]}")
        self._pending = (number, len(data), self._sender.submit(self._upload_part, number, data))

    def _upload_part(self, number: int, data: bytearray) -> str:
        store = self.store
        with calling(f"sending part {number} of upload {self.upload_id}"):
            return store.client.upload_part(Bucket=store.bucket, Key=store.whole_key(self.upload_id),
                                            UploadId=self._multipart, PartNumber=number, Body=data)["ETag"]

    def _wait_part(self) -> None:
        if self._pending is not None:
            number, size, future = self._pending
            self._pending = None
            self._parts.append((number, size, future.result()))

    def close(self) -> None:
        """Record what was written (tail, then state): after this the caller may commit.
        A writer that failed records nothing; the upload stays at its committed offset."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._broken:
                self._wait_part()  # a part that failed fails the PATCH: nothing is recorded
        except BaseException:
            self._broken = True
            raise
        finally:
            if self._sender is not None:
                self._sender.shutdown(wait=True)
        if self._broken or (self.written == 0 and not self._flushed):
            self._buffer = bytearray()
            return
        store = self.store
        size = self._base + self.written
        tail = [self._parts_end, size] if self._buffer else None
        if tail:
            store.put_bytes(store.tail_key(self.upload_id, *tail), bytes(self._buffer))
        self._buffer = bytearray()
        state = {"size": size, "upload": self._multipart, "parts": [list(p) for p in self._parts],
                 "tail": tail}
        store.put_bytes(store.state_key(self.upload_id, size), json.dumps(state).encode())


class ObjectReader(io.RawIOBase):
    """One object as a seekable stream: a GET from the position, read in pieces, reopened
    (with a Range) after a seek. Nothing is asked of the store until the first read."""

    def __init__(self, store: S3Store, key: str) -> None:
        super().__init__()
        self.store = store
        self.key = key
        self._pos = 0
        self._size: Optional[int] = None
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        if self._size is None:
            found = self.store.head(self.key)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, f"{self.key}: not in the blob store")
            self._size = found
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size() + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        if target != self._pos:
            self._drop_body()
            self._pos = target
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._size is not None and self._pos >= self._size:
            return 0
        if self._body is None:
            extra = {"Range": f"bytes={self._pos}-"} if self._pos else {}
            try:
                with calling(f"reading {self.key}"):
                    reply = self.store.client.get_object(Bucket=self.store.bucket, Key=self.key, **extra)
            except StoreUnavailable as exc:
                if "InvalidRange" in str(exc) or "416" in str(exc):
                    return 0  # at or past the end
                raise
            self._body = reply["Body"]
            if self._size is None:
                self._size = self._pos + int(reply["ContentLength"])
        with calling(f"reading {self.key}"):
            data = self._body.read(len(buffer))
        if not data:
            self._drop_body()
            if self._size is not None and self._pos < self._size:
                raise StoreUnavailable(f"the blob store cut {self.key} short at {self._pos} bytes")
            return 0
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
