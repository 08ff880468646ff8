"""A store that is down, flaky or hung, in-process: the service starts live but not ready, polling
survives an unexpected error, and /reload answers 503 within its timeouts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml.runtime.local_store import LocalStore
from ml.runtime.s3_reader import S3Reader
from ml.runtime.s3_store import S3Store
from ml.runtime.store import StoreTimeouts
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN
from ml.testing.processes import AWS_ENV, free_port
from service.app import create_app
from tests.support.app import make_settings, metrics_text, served_version, wait_ready


def test_unreachable_store_at_start_up_is_live_but_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in (
        AWS_ENV | {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"}
    ).items():
        monkeypatch.setenv(key, value)
    store = S3Store("bucket", "fraud")
    app = create_app(make_settings(store.uri), store=store)
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "StoreUnavailable" in ready.json()["error"]["message"]
        assert "Could not connect to the endpoint URL" in ready.json()["error"]["message"]
        text = metrics_text(client)
        assert 'fraud_model_reloads_total{result="failure",trigger="startup"}' in text


class FlakyStore(LocalStore):
    """A local store whose pointer read fails once with an error nobody planned for."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failures_left = 1

    def read_pointer(self, if_none_match: str | None = None) -> Any:
        if if_none_match is not None and self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("injected: a failure no handler expected")
        return super().read_pointer(if_none_match)


def test_polling_survives_an_unexpected_exception(
    tmp_path: Path,
    bundle_files: dict[str, bytes],
    other_bundle_files: dict[str, bytes],
) -> None:
    store = FlakyStore(tmp_path / "store")
    promote_files(store, bundle_files)
    settings = make_settings(store.uri, model_poll_interval_s=0.05)
    with TestClient(create_app(settings, store=store)) as client:
        wait_ready(client)
        v2 = promote_files(store, other_bundle_files)
        deadline = time.monotonic() + 15
        while served_version(client) != v2:
            assert time.monotonic() < deadline, "polling died instead of going on"
            time.sleep(0.05)
        metrics = metrics_text(client)
    assert store.failures_left == 0
    assert 'fraud_background_errors_total{task="poll"} 1.0' in metrics


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """An 'S3 endpoint' on 127.0.0.1 that accepts connections and never answers: a store
    process that hangs. Its connections are held open until the test ends."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_reload_on_a_hung_store_answers_503_within_its_timeouts(
    hung_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (AWS_ENV | {"AWS_ENDPOINT_URL_S3": hung_endpoint}).items():
        monkeypatch.setenv(name, value)
    settings = make_settings(
        "s3://hung/fraud", store_read_timeout_s=0.5, store_connect_timeout_s=0.5, store_attempts=2
    )
    app = create_app(settings)
    with TestClient(app) as client:
        response = client.post("/reload", headers=ADMIN)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "store_unavailable"
    # The store took its bounds from the settings, not botocore's 4 x 10 s.
    store = app.state.service.dataplane.registry.store
    assert isinstance(store, S3Reader)
    assert store.timeouts == StoreTimeouts(connect_s=0.5, read_s=0.5, attempts=2)
