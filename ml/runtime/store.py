"""The artifact store: immutable model versions and a compare-and-swap production pointer.

The layout (which keys a version holds) is in `ml.runtime.layout`; the backends are
`LocalStore` (`ml.runtime.local_store`) and `S3Store` (`ml.runtime.s3_store`), chosen by a
store URI's scheme in `ml.runtime.store_uri`; versions and the promotion log are written and
read on top of any of them (`ml.runtime.versions`, `ml.runtime.history`).

A version's files are uploaded before the pointer names it, and the pointer
carries the sha256 of that version's manifest, so a reader that follows the pointer never sees a
half-written version. Two writers of the pointer cannot silently overwrite each other: on S3 each
write is conditional (`If-None-Match: *` to create, `If-Match: <etag>` to replace); locally a
file lock plus an atomic rename does the same.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ml.runtime.layout import (
    POINTER_KEY,
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


def s3_key_prefix(bucket: str, prefix: str) -> tuple[str, str]:
    """The key prefix of `s3://bucket/prefix` ('' or 'a/b/') and the store's URI, as both S3
    backends name their objects."""
    key_prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    return key_prefix, f"s3://{bucket}/{key_prefix}".rstrip("/")
