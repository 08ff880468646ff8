"""The artifact store: immutable model versions and a compare-and-swap production pointer.

The layout (which keys a version holds) is in `ml.runtime.layout`; the backends are
`LocalStore` (`ml.runtime.local_store`) and `S3Store` (`ml.runtime.s3_store`), chosen by
`open_store`. A version's files are uploaded before the pointer names it, and the pointer
carries the sha256 of that version's manifest, so a reader that follows the pointer never sees a
half-written version. Two writers of the pointer cannot silently overwrite each other: on S3 each
write is conditional (`If-None-Match: *` to create, `If-Match: <etag>` to replace); locally a
file lock plus an atomic rename does the same.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ml.runtime.layout import (
    BUNDLE_FILES,
    HISTORY_PREFIX,
    MODELS_PREFIX,
    POINTER_KEY,
    SIGNATURES_DIR,
    signature_key,
    version_key,
)
from ml.runtime.untrusted_json import NotJsonObject, parse_object


class StoreError(Exception):
    """The store could not do what was asked; the message says what and where."""


class StoreUnavailable(StoreError):
    """The store could not be reached (network, endpoint, credentials)."""


class ObjectNotFound(StoreError):
    pass


class ObjectExists(StoreError):
    pass


class ObjectTooLarge(StoreError):
    """An object over the reader's size limit, or not a regular file: refused, not read."""


class NotModified(StoreError):
    """A conditional read found the object unchanged (HTTP 304)."""


class PointerConflict(StoreError):
    """Somebody else changed production.json since we read it."""


class InvalidPointer(StoreError):
    """production.json is there but is not a pointer this code can follow."""


class NoProductionModel(StoreError):
    """The store has no production.json: nothing has been promoted yet."""


@dataclass(frozen=True)
class Pointer:
    """What production.json says: the live version and how it got there."""

    version: str
    manifest_sha256: str
    previous_version: str | None
    promoted_at: str
    promoted_by: str = "unknown"
    action: str = "promote"  # promote | force-promote | rollback
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Pointer:
        try:
            pointer = cls(**parse_object(data))
        except (NotJsonObject, TypeError) as exc:
            raise InvalidPointer(f"{POINTER_KEY} is not a valid pointer: {exc}") from None
        # getattr, not asdict: asdict deep-copies `details`, and a pointer nested a few
        # hundred levels deep there would raise RecursionError.
        wrong = [
            name
            for name, types in POINTER_FIELD_TYPES.items()
            if not isinstance(getattr(pointer, name), types)
        ]
        if wrong:
            raise InvalidPointer(f"{POINTER_KEY} is not a valid pointer: wrong type for {wrong}")
        return pointer


POINTER_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "version": str,
    "manifest_sha256": str,
    "previous_version": (str, type(None)),
    "promoted_at": str,
    "promoted_by": str,
    "action": str,
    "details": dict,
}


@dataclass(frozen=True)
class PointerState:
    """The pointer as read, with the ETag to compare-and-swap against (None: no pointer yet)."""

    pointer: Pointer | None
    etag: str | None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# Every read is bounded: anyone who can write the bucket can write a 1 GiB manifest (each
# worker once read one whole, on every poll, to 1.14 GB RSS). The real files of the `make run`
# model: manifest.json ~130 KB, model.npz ~115 KB, production.json and a signature < 1 KB.
DEFAULT_MAX_OBJECT_BYTES = 16 * 1024 * 1024
POINTER_MAX_BYTES = 64 * 1024
SIGNATURE_MAX_BYTES = 64 * 1024
# Training and promotion write (and read back) the joblib audit copies too, which grow with
# the model: their stores allow far more than the service's reader.
WRITER_MAX_OBJECT_BYTES = 4 * 1024**3
# One signature per signing key; more than this under one version is junk, not rotation.
MAX_SIGNATURE_FILES = 16


class ArtifactReader(ABC):
    """What the service needs of a store: it reads, and never writes."""

    uri: str
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES

    @abstractmethod
    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; `ObjectTooLarge` past `max_bytes` (at most the reader's own
        `max_object_bytes`), before more than that is read."""

    def read_limit(self, max_bytes: int | None) -> int:
        return self.max_object_bytes if max_bytes is None else min(max_bytes, self.max_object_bytes)

    def too_large(self, key: str, size: int | str, limit: int) -> ObjectTooLarge:
        return ObjectTooLarge(
            f"{self.uri}/{key} is {size} bytes; the limit for it is {limit} bytes "
            "(FRAUD_STORE_MAX_OBJECT_BYTES, or the size the signed manifest states)"
        )

    @abstractmethod
    def list_keys(self, prefix: str, limit: int | None = None) -> list[str]:
        """The keys under `prefix`, sorted; with `limit`, no more than that many are listed
        (the first the store lists), so a prefix someone filled is not read whole."""

    @abstractmethod
    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        """The pointer and its ETag; None when `if_none_match` is given and still current."""

    def current_pointer(self) -> PointerState:
        state = self.read_pointer()
        assert state is not None  # no if_none_match: always an answer
        return state


class ArtifactStore(ArtifactReader):
    """A store that training and promotion write to, with create-only objects and a
    compare-and-swap pointer."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> None:
        """Create `key`; raise ObjectExists if it is already there."""

    @abstractmethod
    def swap_pointer(self, pointer: Pointer, expected_etag: str | None) -> str:
        """Write the pointer if its ETag is still `expected_etag` (None: if none exists yet).
        Return the new ETag; raise PointerConflict otherwise."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the store itself (directory, bucket) is there."""


def describe_pointer(state: PointerState) -> str:
    """The version a pointer state names, for messages."""
    return state.pointer.version if state.pointer else "nothing"


@dataclass(frozen=True)
class StoreTimeouts:
    """Bounds on one S3 call. The defaults bound a call to a store that accepts connections
    but never answers at (2 + 3) s x 2 attempts = 10 s, where botocore's own defaults waited
    4 x 10 s = 40 s in /reload."""

    connect_s: float = 2.0
    read_s: float = 3.0
    attempts: int = 2  # in all, the first included
    # One object's whole body, however slowly it trickles in (read_s bounds each socket read).
    total_s: float = 20.0


def open_store(uri: str, timeouts: StoreTimeouts | None = None) -> ArtifactStore:
    """`s3://bucket[/prefix]`, `file:///path`, or a plain path."""
    from ml.runtime.local_store import LocalStore  # the backends import this module
    from ml.runtime.s3_store import S3Store

    location = _location(uri)
    if isinstance(location, tuple):
        return S3Store(*location, timeouts=timeouts or StoreTimeouts())
    return LocalStore(location, max_object_bytes=WRITER_MAX_OBJECT_BYTES)


def open_reader(
    uri: str,
    timeouts: StoreTimeouts | None = None,
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
) -> ArtifactReader:
    """The same stores, read-only: S3 through `S3Reader` (no boto3 client in the service)."""
    from ml.runtime.local_store import LocalStore
    from ml.runtime.s3_reader import S3Reader

    location = _location(uri)
    if isinstance(location, tuple):
        timeouts = timeouts or StoreTimeouts()
        return S3Reader(*location, timeouts=timeouts, max_object_bytes=max_object_bytes)
    return LocalStore(location, max_object_bytes=max_object_bytes)


def s3_key_prefix(bucket: str, prefix: str) -> tuple[str, str]:
    """The key prefix of `s3://bucket/prefix` ('' or 'a/b/') and the store's URI, as both S3
    backends name their objects."""
    key_prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    return key_prefix, f"s3://{bucket}/{key_prefix}".rstrip("/")


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


# --- versions on top of the store ------------------------------------------------------------


def put_create_only(store: ArtifactStore, key: str, data: bytes) -> None:
    """Create `key`; the same bytes already there (an earlier, interrupted upload) are
    accepted, different bytes refused: what is under models/ is immutable."""
    try:
        store.put_if_absent(key, data)
    except ObjectExists:
        if store.get(key) != data:
            raise ObjectExists(
                f"{store.uri}/{key} already exists with different content; versions are immutable"
            ) from None


def publish_version(store: ArtifactStore, version: str, files: Mapping[str, bytes]) -> None:
    """Upload a version's files create-only, manifest last."""
    for name in BUNDLE_FILES:
        if name in files:
            put_create_only(store, version_key(version, name), files[name])


def fetch_version(
    store: ArtifactReader,
    version: str,
    names: tuple[str, ...] = BUNDLE_FILES,
    sizes: Mapping[str, int] | None = None,
) -> dict[str, bytes]:
    """The named files of a version (all of them by default); a missing one raises, and so
    does one larger than `sizes` says it is (the signed manifest's sizes, when known)."""
    sizes = sizes or {}
    return {name: store.get(version_key(version, name), sizes.get(name)) for name in names}


def fetch_signatures(
    store: ArtifactReader, version: str, trusted: frozenset[str] = frozenset()
) -> list[bytes]:
    """The signature files of a version: those of the `trusted` key ids, read by name; only
    when none of them is there, the first `MAX_SIGNATURE_FILES` listed (so a refusal can name
    the keys that did sign). Whatever else is under the prefix is neither listed nor read."""
    found = []
    for key_id in sorted(trusted):
        try:
            found.append(store.get(signature_key(version, key_id), SIGNATURE_MAX_BYTES))
        except ObjectNotFound:
            continue
    if found:
        return found
    prefix = version_key(version, SIGNATURES_DIR + "/")
    listed = store.list_keys(prefix, limit=MAX_SIGNATURE_FILES)
    return [store.get(key, SIGNATURE_MAX_BYTES) for key in listed if key.endswith(".json")]


def list_versions(store: ArtifactReader) -> list[str]:
    names = {key.split("/")[1] for key in store.list_keys(MODELS_PREFIX) if key.count("/") >= 2}
    return sorted(names)


def record_history(store: ArtifactStore, pointer: Pointer) -> str:
    """Append the pointer change to the promotion log (one create-only object per change)."""
    stamp = pointer.promoted_at.replace(":", "").replace("-", "")
    key = f"{HISTORY_PREFIX}{stamp}-{pointer.action}-{pointer.version}.json"
    store.put_if_absent(key, pointer.to_json())
    return key


def read_history(store: ArtifactReader) -> list[Pointer]:
    return [Pointer.from_json(store.get(key)) for key in store.list_keys(HISTORY_PREFIX)]
