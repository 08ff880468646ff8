"""The artifact store: immutable model versions and a compare-and-swap production pointer.

Layout, the same in every backend:

    models/<version>/manifest.json, model.joblib, preprocessor.joblib   (create-only)
    production.json                                                     (compare-and-swap)
    history/<time>-<version>.json                                       (create-only log)

A version's files are uploaded before the pointer names it, and the pointer carries the sha256
of that version's manifest, so a reader that follows the pointer never sees a half-written
version. Two writers of the pointer cannot silently overwrite each other: on S3 each write is
conditional (`If-None-Match: *` to create, `If-Match: <etag>` to replace); locally a file lock
plus an atomic rename does the same.

Imports neither pandas nor matplotlib: the serving process uses this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POINTER_KEY = "production.json"
MODELS_PREFIX = "models/"
HISTORY_PREFIX = "history/"
BUNDLE_FILES = ("model.joblib", "preprocessor.joblib", "manifest.json")  # manifest last


class StoreError(Exception):
    """The store could not do what was asked; the message says what and where."""


class StoreUnavailable(StoreError):
    """The store could not be reached (network, endpoint, credentials)."""


class ObjectNotFound(StoreError):
    pass


class ObjectExists(StoreError):
    pass


class NotModified(StoreError):
    """A conditional read found the object unchanged (HTTP 304)."""


class PointerConflict(StoreError):
    """Somebody else changed production.json since we read it."""


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
            return cls(**json.loads(data))
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{POINTER_KEY} is not a valid pointer: {exc}") from None


@dataclass(frozen=True)
class PointerState:
    """The pointer as read, with the ETag to compare-and-swap against (None: no pointer yet)."""

    pointer: Pointer | None
    etag: str | None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ArtifactStore(ABC):
    uri: str

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> None:
        """Create `key`; raise ObjectExists if it is already there."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]: ...

    @abstractmethod
    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        """The pointer and its ETag; None when `if_none_match` is given and still current."""

    @abstractmethod
    def swap_pointer(self, pointer: Pointer, expected_etag: str | None) -> str:
        """Write the pointer if its ETag is still `expected_etag` (None: if none exists yet).
        Return the new ETag; raise PointerConflict otherwise."""

    def current_pointer(self) -> PointerState:
        state = self.read_pointer()
        assert state is not None  # no if_none_match: always an answer
        return state


# --- local directory -----------------------------------------------------------------------


class LocalStore(ArtifactStore):
    """A directory: the embedded default, and what `file://` URIs open."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StoreError(f"key {key!r} escapes the store root {self.root}")
        return path

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri}/{key} does not exist") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {self.uri}/{key}: {exc.strerror}") from None

    def put_if_absent(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(path.parent, data)
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists
        except FileExistsError:
            raise ObjectExists(f"{self.uri}/{key} already exists") from None
        finally:
            os.unlink(tmp)

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        start = base if base.is_dir() else base.parent
        return sorted(
            str(p.relative_to(self.root))
            for p in start.rglob("*")
            if p.is_file()
            and not p.name.startswith(".")
            and str(p.relative_to(self.root)).startswith(prefix)
        )

    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        try:
            data = self._path(POINTER_KEY).read_bytes()
        except FileNotFoundError:
            return PointerState(None, None)
        etag = hashlib.sha256(data).hexdigest()
        if if_none_match == etag:
            return None
        return PointerState(Pointer.from_json(data), etag)

    def swap_pointer(self, pointer: Pointer, expected_etag: str | None) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._pointer_lock():
            current = self.current_pointer()
            if current.etag != expected_etag:
                raise PointerConflict(
                    f"{POINTER_KEY} changed since it was read (expected ETag {expected_etag}, "
                    f"found {current.etag}): now names {_named(current)}"
                )
            data = pointer.to_json()
            tmp = self._write_temp(self.root, data)
            os.replace(tmp, self._path(POINTER_KEY))  # readers see the old or the new file
            return hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def _pointer_lock(self) -> Iterator[None]:
        with open(self.root / ".production.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _write_temp(directory: Path, data: bytes) -> str:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return tmp


# --- S3 --------------------------------------------------------------------------------------


class S3Store(ArtifactStore):
    """`s3://bucket/prefix`. One boto3 client, made once and reused (it is thread-safe).
    Honours `AWS_ENDPOINT_URL_S3` (moto, MinIO) through boto3's own configuration."""

    def __init__(self, bucket: str, prefix: str = "", client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client if client is not None else _make_s3_client()

    def _key(self, key: str) -> str:
        return self.prefix + key

    def get(self, key: str) -> bytes:
        with self._errors(key):
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def put_if_absent(self, key: str, data: bytes) -> None:
        try:
            with self._errors(key):
                self._client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
                )
        except PointerConflict:
            raise ObjectExists(f"{self.uri}/{key} already exists") from None

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with self._errors(prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        return sorted(keys)

    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(POINTER_KEY)}
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            with self._errors(POINTER_KEY):
                response = self._client.get_object(**kwargs)
        except ObjectNotFound:
            return PointerState(None, None)
        except NotModified:
            return None
        return PointerState(Pointer.from_json(response["Body"].read()), response["ETag"])

    def swap_pointer(self, pointer: Pointer, expected_etag: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if expected_etag is None else {"IfMatch": expected_etag}
        with self._errors(POINTER_KEY):
            response = self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(POINTER_KEY),
                Body=pointer.to_json(),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        return response["ETag"]

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Translate botocore's exceptions into the store's, naming the object."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"{self.uri}/{key}"
        try:
            yield
        except ClientError as exc:
            status = _status(exc)
            code = exc.response.get("Error", {}).get("Code", "")
            if status == 304:
                raise NotModified(f"{where} not modified") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(f"{where} does not exist") from None
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise PointerConflict(f"{where} changed since it was read ({code})") from None
            if code == "NoSuchBucket":
                raise StoreError(f"bucket {self.bucket!r} does not exist") from None
            raise StoreError(f"{where}: {code or status}: {exc}") from None
        except NoCredentialsError:
            raise StoreUnavailable(f"{where}: no AWS credentials configured") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"{where}: {exc}") from None


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _make_s3_client() -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=2,
        read_timeout=10,
        max_pool_connections=16,
    )
    return boto3.session.Session().client("s3", config=config)


def _named(state: PointerState) -> str:
    return state.pointer.version if state.pointer else "nothing"


def open_store(uri: str) -> ArtifactStore:
    """`s3://bucket[/prefix]`, `file:///path`, or a plain path."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"store URI {uri!r} has no bucket; expected s3://bucket/prefix")
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme == "":
        return LocalStore(Path(uri))
    raise StoreError(f"store URI {uri!r}: scheme {parsed.scheme!r} is not s3:// or file://")


# --- versions on top of the store ------------------------------------------------------------


def version_key(version: str, name: str) -> str:
    return f"{MODELS_PREFIX}{version}/{name}"


def publish_version(store: ArtifactStore, version: str, files: Mapping[str, bytes]) -> None:
    """Upload a version's files create-only, manifest last. A file already there with the same
    bytes (an earlier, interrupted upload) is accepted; different bytes are refused."""
    for name in BUNDLE_FILES:
        key = version_key(version, name)
        try:
            store.put_if_absent(key, files[name])
        except ObjectExists:
            if store.get(key) != files[name]:
                raise ObjectExists(
                    f"{store.uri}/{key} already exists with different content; versions are "
                    "immutable"
                ) from None


def fetch_version(store: ArtifactStore, version: str) -> dict[str, bytes]:
    return {name: store.get(version_key(version, name)) for name in BUNDLE_FILES}


def list_versions(store: ArtifactStore) -> list[str]:
    names = {key.split("/")[1] for key in store.list_keys(MODELS_PREFIX) if key.count("/") >= 2}
    return sorted(names)


def record_history(store: ArtifactStore, pointer: Pointer) -> str:
    """Append the pointer change to the promotion log (one create-only object per change)."""
    stamp = pointer.promoted_at.replace(":", "").replace("-", "")
    key = f"{HISTORY_PREFIX}{stamp}-{pointer.action}-{pointer.version}.json"
    store.put_if_absent(key, pointer.to_json())
    return key


def read_history(store: ArtifactStore) -> list[Pointer]:
    return [Pointer.from_json(store.get(key)) for key in store.list_keys(HISTORY_PREFIX)]
