from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml.bundle import MANIFEST_FILE, Manifest, sha256_hex
from ml.store import ArtifactStore, LocalStore, Pointer, publish_version, utc_now
from service.app import create_app
from service.settings import Settings

API_KEY = "predict-key-1"
API_KEY_2 = "predict-key-2"
ADMIN_KEY = "admin-key-1"
AUTH = {"X-API-Key": API_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


def make_settings(store_uri: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "store_uri": store_uri,
        "api_keys": f"{API_KEY},{API_KEY_2}",
        "admin_api_keys": ADMIN_KEY,
        "model_poll_interval_s": 0,
        "startup_retry_initial_s": 0.05,
        "startup_retry_max_s": 0.2,
        "startup_load_wait_s": 0.3,
    }
    return Settings(**(values | overrides))


def promote_files(store: ArtifactStore, files: dict[str, bytes]) -> str:
    """Publish a bundle under the version its manifest names and point production at it, as
    `fraudctl promote` would; return the version. The manifest is read, not verified: tests
    promote deliberately broken bundles too."""
    version = Manifest.from_json(files[MANIFEST_FILE]).version
    publish_version(store, version, files)
    state = store.current_pointer()
    store.swap_pointer(
        Pointer(
            version=version,
            manifest_sha256=sha256_hex(files[MANIFEST_FILE]),
            previous_version=state.pointer.version if state.pointer else None,
            promoted_at=utc_now(),
        ),
        expected_etag=state.etag,
    )
    return version


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise TimeoutError("the app did not become ready")


@pytest.fixture
def local_store(tmp_path: Path, bundle_files: dict[str, bytes], bundle_version: str) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    promote_files(store, bundle_files)
    return store


@pytest.fixture
def client(local_store: LocalStore) -> Iterator[TestClient]:
    app = create_app(make_settings(local_store.uri), store=local_store)
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client
