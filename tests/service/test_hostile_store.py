"""Against a real `fraudctl serve` (2 workers) on a `file://` store that an attacker writes:
whatever the bucket holds, a reload or poll fails with a named 502 that is counted, the old
model keeps serving, and no worker blocks or grows.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ml.runtime.layout import MANIFEST_FILE, POINTER_KEY, signature_key, version_key
from ml.runtime.local_store import LocalStore
from ml.runtime.store import Pointer, utc_now
from tests.support.app import ADMIN, AUTH
from tests.support.bundles import promote_files
from tests.support.server import PREDICT_BODY, Http, ServiceProcess, server_env, serving

pytestmark = pytest.mark.slow
DEEP = b"[" * 20_000 + b"]" * 20_000  # 40 KB: under every size limit
GIB = 1024**3


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


def point_at(store: LocalStore, version: str, manifest_sha256: str) -> None:
    state = store.current_pointer()
    pointer = Pointer(version, manifest_sha256, None, utc_now())
    store.swap_pointer(pointer, state.etag)


def fake_version(store: LocalStore, name: str) -> Path:
    directory = store.root / version_key(name, "")
    directory.mkdir(parents=True)
    return directory


def nested_pointer(store: LocalStore) -> None:
    (store.root / POINTER_KEY).write_bytes(DEEP)


def wrongly_typed_pointer(store: LocalStore) -> None:
    (store.root / POINTER_KEY).write_bytes(
        b'{"version": ["x"], "manifest_sha256": 1, "previous_version": null, "promoted_at": 3}'
    )


def nested_manifest(store: LocalStore) -> None:
    fake_version(store, "v-nested").joinpath(MANIFEST_FILE).write_bytes(DEEP)
    point_at(store, "v-nested", hashlib.sha256(DEEP).hexdigest())


def nested_signature(store: LocalStore, manifest: bytes) -> None:
    directory = fake_version(store, "v-nested-signature")
    directory.joinpath(MANIFEST_FILE).write_bytes(manifest)
    signature = store.root / signature_key("v-nested-signature", "0000000000000000")
    signature.parent.mkdir()
    signature.write_bytes(DEEP)
    point_at(store, "v-nested-signature", hashlib.sha256(manifest).hexdigest())


def sparse_gib_manifest(store: LocalStore) -> None:
    path = fake_version(store, "v-huge").joinpath(MANIFEST_FILE)
    with open(path, "wb") as handle:
        handle.truncate(GIB)
    point_at(store, "v-huge", "0" * 64)


def fifo_manifest(store: LocalStore) -> None:
    os.mkfifo(fake_version(store, "v-fifo").joinpath(MANIFEST_FILE))
    point_at(store, "v-fifo", "0" * 64)


def current_version(store: LocalStore) -> str:
    pointer = store.current_pointer().pointer
    assert pointer is not None
    return pointer.version


CASES: dict[str, tuple[Callable[..., None], str]] = {
    "nested-pointer": (nested_pointer, "invalid_pointer"),
    "wrongly-typed-pointer": (wrongly_typed_pointer, "invalid_pointer"),
    "nested-manifest": (nested_manifest, "invalid_manifest"),
    "nested-signature": (nested_signature, "bad_signature"),
    "sparse-1-gib-manifest": (sparse_gib_manifest, "object_refused"),
    "fifo-manifest": (fifo_manifest, "object_refused"),
}


def failures(server: ServiceProcess, trigger: str) -> float:
    prefix = f'fraud_model_reloads_total{{result="failure",trigger="{trigger}"}}'
    return sum(
        float(line.split()[-1]) for line in server.metrics().splitlines() if line.startswith(prefix)
    )


def worker_rss_mb(server: ServiceProcess) -> list[float]:
    sizes = []
    for pid in server.worker_pids():
        status = Path(f"/proc/{pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        sizes.append(int(kib) / 1024)
    return sizes


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_store_object_is_a_counted_502_and_the_old_model_serves(
    hostile_service: ServiceProcess,
    hostile_store: LocalStore,
    other_bundle_files: dict[str, bytes],
    case: str,
) -> None:
    damage, code = CASES[case]
    good_pointer = hostile_store.get(POINTER_KEY)
    serving_version = current_version(hostile_store)
    api_failures, poll_failures = (
        failures(hostile_service, "api"),
        failures(hostile_service, "poll"),
    )
    if damage is nested_signature:  # another model's manifest, "signed" by a nested file
        nested_signature(hostile_store, other_bundle_files[MANIFEST_FILE])
    else:
        damage(hostile_store)
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
        (hostile_store.root / ".restore").write_bytes(good_pointer)
        (hostile_store.root / ".restore").replace(hostile_store.root / POINTER_KEY)
