"""`LocalStore`: a directory, the embedded default and what `file://` URIs open."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ml.runtime.layout import POINTER_KEY
from ml.runtime.store import (
    DEFAULT_MAX_OBJECT_BYTES,
    POINTER_MAX_BYTES,
    ArtifactStore,
    ObjectExists,
    ObjectNotFound,
    ObjectTooLarge,
    Pointer,
    PointerConflict,
    PointerState,
    StoreError,
    StoreUnavailable,
    describe_pointer,
)


class LocalStore(ArtifactStore):
    """A directory: the embedded default, and what `file://` URIs open."""

    def __init__(self, root: Path, *, max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES) -> None:
        self.root = root.resolve()
        self.uri = f"file://{self.root}"
        self.max_object_bytes = max_object_bytes

    def exists(self) -> bool:
        return self.root.is_dir()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StoreError(f"key {key!r} escapes the store root {self.root}")
        return path

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        return self._read(key, self._path(key), self.read_limit(max_bytes))

    def _read(self, key: str, path: Path, limit: int) -> bytes:
        """A regular file's bytes, at most `limit`. Opened without blocking and checked
        before any read: a FIFO in its place once held /reload forever."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri}/{key} does not exist") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {self.uri}/{key}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ObjectTooLarge(f"{self.uri}/{key} is not a regular file")
            if info.st_size > limit:
                raise self.too_large(key, info.st_size, limit)
            data = handle.read(limit + 1)  # it may have grown since
        if len(data) > limit:
            raise self.too_large(key, f"over {limit}", limit)
        return data

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

    def list_keys(self, prefix: str, limit: int | None = None) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        start = base if base.is_dir() else base.parent
        keys = (
            str(p.relative_to(self.root))
            for p in start.rglob("*")
            if p.is_file()
            and not p.name.startswith(".")
            and str(p.relative_to(self.root)).startswith(prefix)
        )
        return sorted(itertools.islice(keys, limit))

    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        try:
            data = self.get(POINTER_KEY, POINTER_MAX_BYTES)
        except ObjectNotFound:
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
                    f"found {current.etag}): now names {describe_pointer(current)}"
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
