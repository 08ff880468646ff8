"""The last verified bundle's files on local disk, for a worker that starts while the store
is unreachable.

A worker that (re)starts during a store outage could only answer 503 while its peers serve a
verified model (one worker restart under an outage once made 22 % of requests fail). After
every verified load, the objects that load read (manifest, signatures, serving files) are
copied here with a pointer naming them, in the store's own layout, so the cache is a
`LocalStore`. A starting worker that cannot reach the store loads from it through the very
same `load_version`: signature, checksums and canary rows are checked exactly as from the
store, so the cache adds no trust (anyone who can write it could as well write the bucket).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ml.runtime.layout import MODELS_PREFIX, POINTER_KEY
from ml.runtime.local_store import LocalStore
from ml.runtime.store import ArtifactReader, ObjectExists, Pointer, PointerState
from ml.runtime.versions import put_create_only

# Versions kept: the one written last and the two before it (a peer may still be copying
# its own, older load while the newest is written). A bundle here is ~250 KB.
KEEP_VERSIONS = 3


class RecordingReader(ArtifactReader):
    """A reader that keeps a copy of every object it returned, for one load."""

    def __init__(self, store: ArtifactReader) -> None:
        self._store = store
        self.uri = store.uri
        self.max_object_bytes = store.max_object_bytes
        self.objects: dict[str, bytes] = {}

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        data = self._store.get(key, max_bytes)
        self.objects[key] = data
        return data

    def list_keys(self, prefix: str, limit: int | None = None) -> list[str]:
        return self._store.list_keys(prefix, limit)

    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        return self._store.read_pointer(if_none_match)


class BundleCache:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.store = LocalStore(directory)

    def remember(self, pointer: Pointer, objects: dict[str, bytes]) -> None:
        """Keep a verified load's objects and point at them. Several workers may write the
        same version at once: objects are create-only (the same bytes accepted), the pointer
        replaced atomically."""
        try:
            self._write(objects)
        except ObjectExists:
            # Different bytes under the version's keys: a copy cached before the version was
            # rewritten in the store (only a forced rewrite does that). Start it over, whole.
            shutil.rmtree(self.store.root / MODELS_PREFIX / pointer.version, ignore_errors=True)
            self._write(objects)
        fd, temporary = tempfile.mkstemp(dir=self.store.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(pointer.to_json())
        os.replace(temporary, self.store.root / POINTER_KEY)
        self._forget_older_than(pointer.version)

    def _write(self, objects: dict[str, bytes]) -> None:
        for key, data in objects.items():
            put_create_only(self.store, key, data)

    def _forget_older_than(self, keep: str) -> None:
        ages = {}
        for path in (self.store.root / MODELS_PREFIX).iterdir():
            with contextlib.suppress(FileNotFoundError):  # a peer forgot it meanwhile
                if path.name != keep:
                    ages[path] = path.stat().st_mtime
        older = sorted(ages, key=ages.__getitem__)
        for path in older[: max(0, len(older) - (KEEP_VERSIONS - 1))]:
            shutil.rmtree(path, ignore_errors=True)
