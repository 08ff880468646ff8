"""Against a real `fraudctl serve` (2 workers): every worker follows production.json.

The invariant (docs/architecture.md): within one poll interval every worker serves the version
production.json names, whatever sequence of writes led there.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ml.runtime.layout import POINTER_KEY
from ml.runtime.store import ArtifactStore
from ml.testing.bundles import promote_files
from ml.testing.hostile import served_by_worker, write_pointer_bytes
from ml.testing.keys import ADMIN
from ml.testing.server import ServiceProcess, once, server_env

pytestmark = pytest.mark.slow
POLL_S = 1.0


def pointer_bytes(store: ArtifactStore) -> bytes:
    return store.get(POINTER_KEY)


def wait_until_all_serve(server: ServiceProcess, version: str, within_s: float) -> dict[str, str]:
    deadline = time.monotonic() + within_s
    while True:
        served = served_by_worker(server)
        if len(served) == server.workers and set(served.values()) == {version}:
            return served
        if time.monotonic() > deadline:
            return served
        time.sleep(0.05)


def test_a_pointer_written_back_byte_for_byte_reaches_every_worker(
    tmp_path: Path,
    store: ArtifactStore,
    bundle_files: dict[str, bytes],
    other_bundle_files: dict[str, bytes],
) -> None:
    """c, reload; a, reload (one worker moves by its peer's word); c's very bytes again. Every
    worker serves c within one poll interval, and stays there."""
    a = promote_files(store, bundle_files)
    pointer_a = pointer_bytes(store)
    server = ServiceProcess(tmp_path, server_env(store, FRAUD_MODEL_POLL_INTERVAL_S=str(POLL_S)))
    server.start()
    try:
        server.wait_ready()
        c = promote_files(store, other_bundle_files)
        pointer_c = pointer_bytes(store)
        status, body = once(server.port, "POST", "/reload", headers=ADMIN)
        assert (status, body["version"], body["workers_confirmed"]) == (200, c, 2), body
        time.sleep(2 * POLL_S * 1.1)  # two polls: each worker now holds c's ETag

        write_pointer_bytes(store, pointer_a)
        status, body = once(server.port, "POST", "/reload", headers=ADMIN)
        assert (status, body["version"], body["changed"]) == (200, a, True), body
        assert body["workers_confirmed"] == body["workers_total"] == 2
        write_pointer_bytes(store, pointer_c)  # within the same poll interval

        # One poll interval (+10 % jitter) and a load: every worker serves c ...
        served = wait_until_all_serve(server, c, POLL_S * 1.1 + 2.0)
        assert set(served.values()) == {c}, served
        assert len(served) == 2, served
        # ... and no later poll moves any of them.
        time.sleep(3 * POLL_S)
        assert served_by_worker(server) == served
    finally:
        server.stop()
