"""Which backend a store URI names: `s3://bucket[/prefix]`, `file:///path` or a plain path.

The backends import `ml.runtime.store` (their base class and errors); this module imports the
backends, so nothing imports in a circle. The S3 ones are imported when a URI names S3: botocore
and boto3 cost a worker ~100 ms of start-up it need not pay for a local store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from ml.runtime.local_store import LocalStore
from ml.runtime.store import (
    DEFAULT_MAX_OBJECT_BYTES,
    WRITER_MAX_OBJECT_BYTES,
    ArtifactReader,
    ArtifactStore,
    StoreError,
    StoreTimeouts,
)


def open_store(uri: str, timeouts: StoreTimeouts | None = None) -> ArtifactStore:
    """A store to write (training, promotion): S3 through boto3, or a local directory."""
    location = _location(uri)
    if isinstance(location, tuple):
        from ml.runtime.s3_store import S3Store  # boto3: the service reads through S3Reader

        return S3Store(*location, timeouts=timeouts or StoreTimeouts())
    return LocalStore(location, max_object_bytes=WRITER_MAX_OBJECT_BYTES)


def open_reader(
    uri: str,
    timeouts: StoreTimeouts | None = None,
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
) -> ArtifactReader:
    """The same stores, read-only: S3 through `S3Reader` (no boto3 client in the service)."""
    location = _location(uri)
    if isinstance(location, tuple):
        from ml.runtime.s3_reader import S3Reader  # botocore's signer: only for an S3 store

        timeouts = timeouts or StoreTimeouts()
        return S3Reader(*location, timeouts=timeouts, max_object_bytes=max_object_bytes)
    return LocalStore(location, max_object_bytes=max_object_bytes)


def _location(uri: str) -> tuple[str, str] | Path:
    """(bucket, prefix) of an s3:// URI, or the directory of a file:// URI or plain path."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"store URI {uri!r} has no bucket; expected s3://bucket/prefix")
        return parsed.netloc, parsed.path
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "":
        return Path(uri)
    raise StoreError(f"store URI {uri!r}: scheme {parsed.scheme!r} is not s3:// or file://")
