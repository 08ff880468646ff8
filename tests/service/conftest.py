from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ml.runtime.local_store import LocalStore
from ml.testing.bundles import promote_files
from service.app import create_app
from tests.support.app import make_settings, wait_ready


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
