"""Against a real `fraudctl serve` (2 workers) on a `file://` store that an attacker writes:
whatever the bucket holds, a reload or poll fails with a named 502 that is counted, the old
model keeps serving, and no worker blocks or grows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ml.runtime.layout import MANIFEST_FILE, POINTER_KEY
from ml.runtime.local_store import LocalStore
from ml.testing.bundles import promote_files
from ml.testing.hostile import STORE_DAMAGE, worker_rss_mb, write_pointer_bytes
from ml.testing.keys import ADMIN, AUTH
from ml.testing.server import PREDICT_BODY, Http, ServiceProcess, metric_sum, server_env, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hostile_store(
    tmp_path_factory: pytest.TempPathFactory, bundle_files: dict[str, bytes]
) -> LocalStore:
    store = LocalStore(tmp_path_factory.mktemp("hostile") / "store")
    promote_files(store, bundle_files)
    return store


@pytest.fixture(scope="module")
def hostile_service(
    tmp_path_factory: pytest.TempPathFactory, hostile_store: LocalStore
) -> Iterator[ServiceProcess]:
    env = server_env(hostile_store, FRAUD_MODEL_POLL_INTERVAL_S="0.5")
    with serving(tmp_path_factory.mktemp("serve"), env) as server:
        yield server


def current_version(store: LocalStore) -> str:
    pointer = store.current_pointer().pointer
    assert pointer is not None
    return pointer.version


def failures(server: ServiceProcess, trigger: str) -> float:
    prefix = f'fraud_model_reloads_total{{result="failure",trigger="{trigger}"}}'
    return metric_sum(server.metrics(), prefix)


@pytest.mark.parametrize("case", list(STORE_DAMAGE))
def test_a_hostile_store_object_is_a_counted_502_and_the_old_model_serves(
    hostile_service: ServiceProcess,
    hostile_store: LocalStore,
    other_bundle_files: dict[str, bytes],
    case: str,
) -> None:
    damage, code = STORE_DAMAGE[case]
    good_pointer = hostile_store.get(POINTER_KEY)
    serving_version = current_version(hostile_store)
    api_failures, poll_failures = (
        failures(hostile_service, "api"),
        failures(hostile_service, "poll"),
    )
    damage(hostile_store, other_bundle_files[MANIFEST_FILE])
    try:
        with Http(hostile_service.port, timeout=30) as client:
            status, body = client.request("POST", "/reload", headers=ADMIN)
            assert (status, body["error"]["code"]) == (502, code), body
            status, body = client.request("POST", "/predict", PREDICT_BODY, AUTH)
            assert (status, body["model_version"]) == (200, serving_version)
        assert failures(hostile_service, "api") == api_failures + 1
        deadline = time.monotonic() + 10  # each worker's poll (every 0.5 s) fails and goes on
        while failures(hostile_service, "poll") < poll_failures + 2:
            assert time.monotonic() < deadline, hostile_service.log()[-3000:]
            time.sleep(0.1)
        assert max(worker_rss_mb(hostile_service)) < 150
    finally:
        write_pointer_bytes(hostile_store, good_pointer)
