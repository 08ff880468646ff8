"""Fetching and verifying one bundle off the event loop, and keeping its files on local disk.

The registry decides what to load and when, and swaps; this does the slow part in a thread:
read every object through a bounded reader, verify it (`ml.runtime.bundle.load_version`), and
afterwards write the verified files to the bundle cache without the load waiting on it.
"""

from __future__ import annotations

import asyncio

from ml.runtime.bundle import ModelBundle, load_version
from ml.runtime.bundle_cache import BundleCache, RecordingReader
from ml.runtime.manifest import BundleError
from ml.runtime.signing import TrustedKeys
from ml.runtime.store import ArtifactReader, Pointer, StoreError, utc_now
from service.observe.logging import get_logger

log = get_logger("service.model.loading")

# What a load could raise that no verification step turned into a BundleError.
UNEXPECTED_LOAD_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    OverflowError,
    MemoryError,
    RecursionError,
)


class BundleLoader:
    def __init__(self, trusted_keys: TrustedKeys, cache: BundleCache | None = None) -> None:
        self._trusted_keys = trusted_keys
        self.cache = cache
        self._remembering: set[asyncio.Task[None]] = set()

    async def load(
        self, source: ArtifactReader, version: str, manifest_sha256: str, *, remember: bool
    ) -> ModelBundle:
        """The verified bundle; with `remember`, its files then go to the cache in the
        background (readiness and /reload do not wait for the disk's fsyncs)."""
        reader = RecordingReader(source)
        bundle = await asyncio.to_thread(self._fetch_and_verify, reader, version, manifest_sha256)
        if remember and self.cache is not None:
            task = asyncio.create_task(
                asyncio.to_thread(self._remember, bundle, reader.objects), name="bundle-cache"
            )
            self._remembering.add(task)
            task.add_done_callback(self._remembering.discard)
        return bundle

    def _fetch_and_verify(
        self, reader: ArtifactReader, version: str, manifest_sha256: str
    ) -> ModelBundle:
        try:
            return load_version(
                reader,
                version,
                expected_manifest_sha256=manifest_sha256,
                trusted_keys=self._trusted_keys,
            )
        except UNEXPECTED_LOAD_ERRORS as exc:
            # Verification should have named the problem; it did not, so this is our bug as
            # much as the bundle's: keep the traceback, and still answer a named 502.
            log.exception("model_load_crashed", model_version=version)
            raise BundleError(
                "unreadable", f"bundle {version} could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc

    def _remember(self, bundle: ModelBundle, objects: dict[str, bytes]) -> None:
        """Keep the verified bundle's files on local disk; a cache that cannot be written costs
        only the fallback, never the load."""
        assert self.cache is not None
        pointer = Pointer(bundle.version, bundle.manifest_sha256, None, utc_now(), "cache")
        try:
            self.cache.remember(pointer, objects)
        except (OSError, StoreError) as exc:
            log.warning("bundle_cache_write_failed", error=f"{type(exc).__name__}: {exc}")
