"""`ModelRegistry` built in-process: two registries sharing one peer directory stand for two
workers of a task, on a real local store. The convergence invariant (docs/architecture.md),
checked without processes, for many orders of writes; the real-server test is
tests/service/model/test_convergence.py."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ml.runtime.layout import POINTER_KEY
from ml.runtime.local_store import LocalStore
from ml.runtime.signing import TrustedKeys
from ml.testing.bundles import promote_files
from ml.testing.hostile import write_pointer_bytes
from service.model.coordination import PeerChannel
from service.model.registry import ModelRegistry
from service.observe.metrics import Metrics

POLL_S = 0.2
PEER_CHECK_S = 0.02


@asynccontextmanager
async def two_workers(store: LocalStore, peers: Path) -> AsyncIterator[list[ModelRegistry]]:
    """Two started registries, as two workers of one task (their own pids in the channel)."""
    trusted = TrustedKeys.parse(os.environ["FRAUD_TRUSTED_KEYS"])
    workers = [
        ModelRegistry(
            store,
            Metrics(),
            trusted,
            peers=PeerChannel(peers, pid=pid),
            poll_interval_s=POLL_S,
            peer_check_interval_s=PEER_CHECK_S,
            reload_wait_s=1.0,
        )
        # Two live pids, so that a reload waits for both (the channel skips dead workers).
        for pid in (os.getpid(), os.getppid())
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            assert await worker.wait_first_load(10)
        yield workers
    finally:
        for worker in workers:
            await worker.stop()


async def all_serve(workers: list[ModelRegistry], version: str, within_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        if all(w.bundle is not None and w.bundle.version == version for w in workers):
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.parametrize("sequence", list(itertools.product("ac", repeat=3)), ids="".join)
def test_every_worker_follows_the_pointer_whatever_was_written_before(
    tmp_path: Path,
    bundle_files: dict[str, bytes],
    other_bundle_files: dict[str, bytes],
    sequence: tuple[str, ...],
) -> None:
    """Three pointer writes, each followed by a reload on the first worker; then the last
    pointer's bytes written once more, unannounced. Within one poll interval (+10 % jitter
    and a load) both serve what it names."""
    store = LocalStore(tmp_path / "store")
    versions = {"a": promote_files(store, bundle_files)}
    pointers = {"a": store.get(POINTER_KEY)}
    versions["c"] = promote_files(store, other_bundle_files)
    pointers["c"] = store.get(POINTER_KEY)

    async def scenario() -> None:
        async with two_workers(store, tmp_path / "peers") as workers:
            for name in sequence:
                write_pointer_bytes(store, pointers[name])
                await workers[0].reload()
            last = "a" if sequence[-1] == "c" else "c"
            write_pointer_bytes(store, pointers[last])
            assert await all_serve(workers, versions[last], POLL_S * 1.1 + 1.0)

    asyncio.run(scenario())
