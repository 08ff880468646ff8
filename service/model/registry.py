"""The model registry: holds the one current bundle and replaces it safely.

A new bundle is downloaded and fully verified (a trusted signature, checksums, the serving
form's contents, canary rows) in a
thread, off the event loop, while the old one keeps serving; then one reference is swapped.
A request holds the bundle it started with, so it sees the old bundle or the new one, never a
mix of model, preprocessor and threshold. Loads are serialised by a lock, so at most one extra
bundle is in memory. Any failure leaves the current bundle serving.

Triggers: `startup` (retried with backoff until it succeeds), `api` (POST /reload),
`peer` (another worker of this task reloaded), `poll` (production.json changed in the store).

The invariant: within one poll interval, every worker serves the version production.json
names, for any sequence of writes. The poll's conditional GET keeps it cheap, so the ETag it
sends must always be that of a pointer whose bundle this worker serves: it is set only where a
pointer read is installed, and forgotten when a peer's announcement installs a bundle without
one. (It once was kept then: a worker moved by a peer to version a still held c's ETag, and a
pointer written back to c's very bytes answered it 304 forever.)
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass

from ml.runtime.bundle import ModelBundle
from ml.runtime.bundle_cache import BundleCache
from ml.runtime.manifest import BundleError
from ml.runtime.signing import TrustedKeys
from ml.runtime.store import (
    ArtifactReader,
    NoProductionModel,
    PointerState,
    StoreError,
    StoreUnavailable,
)
from service.errors import NotReady
from service.model.coordination import PeerChannel
from service.model.loading import BundleLoader
from service.model.supervisor import supervise
from service.observe.logging import get_logger
from service.observe.metrics import Metrics

log = get_logger("service.model.registry")


@dataclass(frozen=True)
class ReloadOutcome:
    """What /reload answers (and documents in OpenAPI)."""

    previous_version: str | None
    version: str
    changed: bool
    took_ms: float
    workers_confirmed: int
    workers_total: int


class ModelRegistry:
    def __init__(
        self,
        store: ArtifactReader,
        metrics: Metrics,
        trusted_keys: TrustedKeys,
        *,
        peers: PeerChannel | None = None,
        cache: BundleCache | None = None,
        poll_interval_s: float = 30.0,
        peer_check_interval_s: float = 0.2,
        reload_wait_s: float = 5.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._peers = peers
        self._loader = BundleLoader(trusted_keys, cache)
        self._poll_interval_s = poll_interval_s
        self._peer_check_interval_s = peer_check_interval_s
        self._reload_wait_s = reload_wait_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._bundle: ModelBundle | None = None
        self._etag: str | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._first_load = asyncio.Event()
        self.not_ready_reason = "the model has not been loaded yet"

    # --- reading -------------------------------------------------------------------------

    @property
    def bundle(self) -> ModelBundle | None:
        return self._bundle

    @property
    def store(self) -> ArtifactReader:
        return self._store

    def require_bundle(self) -> ModelBundle:
        bundle = self._bundle
        if bundle is None:
            raise NotReady(f"no model loaded: {self.not_ready_reason}")
        return bundle

    # --- loading -------------------------------------------------------------------------

    async def reload(self, trigger: str = "api") -> ReloadOutcome:
        """Follow production.json now. Raises the cause on failure; the old bundle stays."""
        started = time.perf_counter()
        try:
            previous, changed = await self._follow_pointer(trigger)
        except (StoreError, BundleError) as exc:
            self._record_failure(trigger, exc)
            raise
        current = self.require_bundle()
        confirmed, total = 1, 1
        if self._peers is not None:
            if changed:
                self._peers.announce(current.version, current.manifest_sha256)
            confirmed, total = await self._peers.wait_for(current.version, self._reload_wait_s)
        return ReloadOutcome(
            previous_version=previous.version if previous else None,
            version=current.version,
            changed=changed,
            took_ms=round((time.perf_counter() - started) * 1000.0, 1),
            workers_confirmed=confirmed,
            workers_total=total,
        )

    async def _follow_pointer(
        self, trigger: str, state: PointerState | None = None, source: ArtifactReader | None = None
    ) -> tuple[ModelBundle | None, bool]:
        """Install what production.json names (read now unless `state` is given) from the
        store (or `source`), under the lock. Returns the bundle served before (read under the
        lock, so concurrent reloads each see the one they replaced) and whether it changed."""
        source = source or self._store
        async with self._lock:
            previous = self._bundle
            if state is None:
                state = await asyncio.to_thread(source.current_pointer)
            return previous, await self._install_from_pointer(state, trigger, source)

    async def _install_from_pointer(
        self, state: PointerState, trigger: str, source: ArtifactReader
    ) -> bool:
        pointer = state.pointer
        if pointer is None:
            raise NoProductionModel(f"{source.uri} has no production.json: nothing promoted")
        current = self._bundle
        etag = state.etag if source is self._store else None  # only the store's is polled
        if current is not None and current.manifest_sha256 == pointer.manifest_sha256:
            self._etag = etag
            self._metrics.reloads.labels(trigger, "unchanged").inc()
            return False
        await self._load_and_swap(pointer.version, pointer.manifest_sha256, trigger, source)
        self._etag = etag
        return True

    async def _load_and_swap(
        self,
        version: str,
        manifest_sha256: str,
        trigger: str,
        source: ArtifactReader | None = None,
    ) -> None:
        started = time.perf_counter()
        source = source or self._store
        bundle = await self._loader.load(
            source, version, manifest_sha256, remember=source is self._store
        )
        previous, self._bundle = self._bundle, bundle  # the swap: one reference
        self._metrics.set_model_version(bundle.version, previous.version if previous else None)
        self._metrics.reloads.labels(trigger, "success").inc()
        if self._peers is not None:
            self._peers.confirm(bundle.version)
        log.info(
            "model_loaded",
            pid=os.getpid(),
            trigger=trigger,
            model_version=bundle.version,
            previous_version=previous.version if previous else None,
            load_ms=round((time.perf_counter() - started) * 1000.0, 1),
            source=source.uri,
        )

    def _record_failure(self, trigger: str, exc: Exception) -> None:
        self._metrics.reloads.labels(trigger, "failure").inc()
        if isinstance(exc, BundleError):
            self._metrics.refusals.labels(exc.reason).inc()
        serving = self._bundle.version if self._bundle else None
        log.error(
            "model_load_failed",
            pid=os.getpid(),
            trigger=trigger,
            error=type(exc).__name__,
            reason=getattr(exc, "reason", None),
            cause=str(exc),
            still_serving=serving,
        )

    # --- background work -----------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="model-registry"))

    async def wait_first_load(self, timeout: float) -> bool:
        """True once a model is loaded; False if `timeout` passed first (loading goes on)."""
        try:
            await asyncio.wait_for(self._first_load.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._peers is not None:
            self._peers.leave()

    async def _run(self) -> None:
        await supervise("startup", self._load_at_startup, self._metrics)
        if self._peers is not None:
            watch = supervise("peer-watch", self._watch_peers, self._metrics)
            self._tasks.append(asyncio.create_task(watch, name="peer-watch"))
        if self._poll_interval_s > 0:
            await supervise("poll", self._poll_forever, self._metrics)

    async def _load_at_startup(self) -> None:
        delay = self._retry_initial_s
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._follow_pointer("startup")
                self._first_load.set()
                return
            except (StoreError, BundleError) as exc:
                self.not_ready_reason = f"{type(exc).__name__}: {exc}"
                self._record_failure("startup", exc)
                if isinstance(exc, StoreUnavailable) and await self._load_from_cache():
                    self._first_load.set()  # polling goes on, and follows the store once back
                    return
                log.warning("startup_load_retry", attempt=attempt, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311
                delay = min(delay * 2.0, self._retry_max_s)

    async def _load_from_cache(self) -> bool:
        """The last verified bundle from local disk, verified again as from the store."""
        cache = self._loader.cache
        if cache is None or self._bundle is not None:
            return False
        try:
            state = await asyncio.to_thread(cache.store.current_pointer)
            if state.pointer is None:
                return False  # nothing verified on this disk yet
            await self._follow_pointer("cache", state, source=cache.store)
        except (StoreError, BundleError) as exc:
            self._record_failure("cache", exc)
            return False
        return True

    async def _poll_forever(self) -> None:
        """Conditional GET of production.json: cheap when nothing changed (304)."""
        while True:
            await asyncio.sleep(self._poll_interval_s * random.uniform(0.9, 1.1))  # noqa: S311
            try:
                state = await asyncio.to_thread(self._store.read_pointer, self._etag)
                if state is None:
                    continue  # unchanged
                await self._follow_pointer("poll", state)
            except (StoreError, BundleError) as exc:
                self._record_failure("poll", exc)

    async def _watch_peers(self) -> None:
        assert self._peers is not None
        seen = self._peers.target()
        while True:
            await asyncio.sleep(self._peer_check_interval_s)
            target = self._peers.target()
            if target is None or (seen is not None and target.stamp == seen.stamp):
                continue
            seen = target
            current = self._bundle
            if current is not None and current.manifest_sha256 == target.manifest_sha256:
                self._peers.confirm(current.version)
                continue
            try:
                async with self._lock:
                    await self._load_and_swap(target.version, target.manifest_sha256, "peer")
                    self._etag = None  # no pointer read backs this bundle: the next poll reads
            except (StoreError, BundleError) as exc:
                self._record_failure("peer", exc)
