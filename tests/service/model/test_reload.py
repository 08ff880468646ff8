"""POST /reload and the registry, in-process: every failure leaves the old bundle serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from ml.runtime.layout import MANIFEST_FILE, MODEL_FILE
from ml.runtime.local_store import LocalStore
from ml.runtime.s3_store import S3Store
from ml.runtime.store import Pointer, utc_now
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN, AUTH
from ml.testing.processes import AWS_ENV, free_port, stop_process, wait_for_port
from service.app import create_app
from tests.support.app import ROW, make_settings, metrics_text, served_version, wait_ready
from tests.support.bundle_edits import with_manifest


def reload_failures(client: TestClient) -> float:
    text = metrics_text(client)
    for line in text.splitlines():
        if line.startswith('fraud_model_reloads_total{result="failure",trigger="api"}'):
            return float(line.split()[-1])
    return 0.0


def promote_second(store: LocalStore, files: dict[str, bytes]) -> Path:
    """Promote the second bundle; return its directory in the store, to damage it."""
    return store.root / "models" / promote_files(store, files)


def test_reload_swaps_to_the_promoted_version(
    client: TestClient,
    local_store: LocalStore,
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
) -> None:
    v2 = promote_files(local_store, other_bundle_files)
    response = client.post("/reload", headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["previous_version"] == bundle_version
    assert body["version"] == v2
    assert body["changed"] is True
    assert body["took_ms"] > 0
    assert served_version(client) == v2
    assert client.get("/model", headers=AUTH).json()["version"] == v2
    again = client.post("/reload", headers=ADMIN).json()
    assert again["changed"] is False
    assert again["version"] == v2


def test_rollback_is_just_pointing_back(
    client: TestClient,
    local_store: LocalStore,
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
) -> None:
    from ml.rollback import rollback

    promote_files(local_store, other_bundle_files)
    client.post("/reload", headers=ADMIN)
    rollback(local_store)
    assert client.post("/reload", headers=ADMIN).json()["version"] == bundle_version
    assert served_version(client) == bundle_version


def _point_at(store: LocalStore, version: str, manifest_sha: str) -> None:
    state = store.current_pointer()
    store.swap_pointer(Pointer(version, manifest_sha, None, utc_now()), state.etag)


def _assert_failed_but_serving(
    client: TestClient, version: str, status: int, code: str, cause: str
) -> None:
    before = reload_failures(client)
    response = client.post("/reload", headers=ADMIN)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert cause in error["message"]
    assert client.get("/health/ready").status_code == 200
    assert served_version(client) == version
    assert reload_failures(client) == before + 1


def _missing_version(store: LocalStore, files: dict[str, bytes]) -> None:
    _point_at(store, "20990101T000000Z-missing", "0" * 64)


def _missing_file(store: LocalStore, files: dict[str, bytes]) -> None:
    (promote_second(store, files) / "preprocessor.json").unlink()


def _tampered_file(store: LocalStore, files: dict[str, bytes]) -> None:
    model = promote_second(store, files) / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte in the middle flipped
    model.write_bytes(bytes(data))


def _tampered_manifest(store: LocalStore, files: dict[str, bytes]) -> None:
    manifest = promote_second(store, files) / MANIFEST_FILE
    manifest.write_bytes(manifest.read_bytes().replace(b'"threshold"', b'"threshold" '))


def _old_format(store: LocalStore, files: dict[str, bytes]) -> None:
    promote_files(store, with_manifest(files, format_version=1, version="v-format-1"))


def _unsigned(store: LocalStore, files: dict[str, bytes]) -> None:
    promote_files(store, files, sign=False)


def _canary_mismatch(store: LocalStore, files: dict[str, bytes]) -> None:
    canary = json.loads(files[MANIFEST_FILE])["canary"]
    canary["fraud_probability"] = [p + 1e-6 for p in canary["fraud_probability"]]
    promote_files(store, with_manifest(files, canary=canary, version="v-bad-canary"))


@pytest.mark.parametrize(
    ("damage", "status", "code", "cause"),
    [
        (
            _missing_version,
            502,
            "bundle_not_found",
            "models/20990101T000000Z-missing/manifest.json does not exist",
        ),
        (_missing_file, 502, "bundle_not_found", "preprocessor.json does not exist"),
        (_tampered_file, 502, "checksum_mismatch", "model.npz has sha256"),
        (_tampered_manifest, 502, "checksum_mismatch", "the pointer expects"),
        (_old_format, 502, "needs_migration", "fraudctl migrate"),
        (_unsigned, 502, "unsigned", "has no signatures"),
        (_canary_mismatch, 502, "canary_mismatch", "canary rows scored via"),
    ],
    ids=lambda value: getattr(value, "__name__", "").strip("_") or None,
)
def test_a_damaged_production_bundle_is_refused_and_the_old_one_serves(
    client: TestClient,
    local_store: LocalStore,
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
    damage: Callable[[LocalStore, dict[str, bytes]], None],
    status: int,
    code: str,
    cause: str,
) -> None:
    damage(local_store, other_bundle_files)
    _assert_failed_but_serving(client, bundle_version, status, code, cause)


def test_concurrent_reloads_are_serialised(
    client: TestClient, local_store: LocalStore, other_bundle_files: dict[str, bytes]
) -> None:
    v2 = promote_files(local_store, other_bundle_files)
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(6)

    def call() -> None:
        barrier.wait()
        results.append(client.post("/reload", headers=ADMIN).json())

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["changed"] for r in results) == [False] * 5 + [True]
    assert {r["version"] for r in results} == {v2}


def test_not_ready_until_something_is_promoted(
    tmp_path: Path, bundle_files: dict[str, bytes], bundle_version: str
) -> None:
    store = LocalStore(tmp_path / "empty")
    app = create_app(make_settings(store.uri), store=store)
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "has no production.json" in ready.json()["error"]["message"]
        assert client.post("/predict", json={"features": ROW}, headers=AUTH).status_code == 503
        promote_files(store, bundle_files)
        wait_ready(client)  # the start-up loop retries with backoff and gets there
        assert served_version(client) == bundle_version


def test_unreachable_store_keeps_serving(
    tmp_path: Path,
    bundle_files: dict[str, bytes],
    bundle_version: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store of our own that we stop: the service keeps the bundle it has."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **AWS_ENV},
    )
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in (AWS_ENV | {"AWS_ENDPOINT_URL_S3": endpoint}).items():
            monkeypatch.setenv(key, value)
        bucket = f"b-{uuid.uuid4().hex[:10]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        store = S3Store(bucket, "fraud")
        promote_files(store, bundle_files)
        app = create_app(make_settings(store.uri), store=store)
        with TestClient(app) as client:
            wait_ready(client)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            _assert_failed_but_serving(
                client, bundle_version, 503, "store_unavailable", "artifact store unreachable"
            )
    finally:
        stop_process(proc)


def test_reload_publishes_nothing_on_failure(
    client: TestClient, local_store: LocalStore, bundle_version: str
) -> None:
    """A failed reload leaves the store as it was: reload only ever reads."""
    _point_at(local_store, "v-missing", "1" * 64)
    before = sorted(p.name for p in local_store.root.rglob("*"))
    client.post("/reload", headers=ADMIN)
    assert sorted(p.name for p in local_store.root.rglob("*")) == before
