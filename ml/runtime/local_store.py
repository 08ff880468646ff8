"""`LocalStore`: a directory, the embedded default and what `file://` URIs open."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ml.runtime.layout import POINTER_KEY
from ml.runtime.store import (
    ArtifactStore,
    ObjectExists,
    ObjectNotFound,
    Pointer,
    PointerConflict,
    PointerState,
    StoreError,
    StoreUnavailable,
    describe_pointer,
)


class LocalStore(ArtifactStore):
    """A directory: the embedded default, and what `file://` URIs open."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = f"file://{self.root}"

    def exists(self) -> bool:
        return self.root.is_dir()

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
