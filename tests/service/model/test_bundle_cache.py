"""A worker that starts while the store is unreachable serves the last bundle verified on its
task's disk, verified again: against a real `fraudctl serve` (2 workers) and a moto server of
its own, stopped mid-test; and in-process, with the cache tampered with."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from ml.runtime.layout import MODEL_FILE, POINTER_KEY, version_key
from ml.runtime.local_store import LocalStore
from ml.runtime.s3_reader import S3Reader
from ml.runtime.s3_store import S3Store
from ml.runtime.store import StoreTimeouts
from ml.testing.bundles import promote_files
from ml.testing.keys import AUTH
from ml.testing.processes import AWS_ENV, free_port, start_moto, stop_process
from ml.testing.server import PREDICT_BODY, ServiceProcess, once, server_env
from service.app import create_app
from tests.support.app import make_settings, metrics_text, wait_ready


@pytest.mark.slow
def test_a_worker_restarted_during_a_store_outage_serves_from_its_cache(
    tmp_path: Path, bundle_files: dict[str, bytes]
) -> None:
    moto, endpoint = start_moto(tmp_path / "moto.log")
    server = None
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket="outage")
        store = S3Store("outage", "fraud", client=client)
        version = promote_files(store, bundle_files)
        env = server_env(
            store, **AWS_ENV, AWS_ENDPOINT_URL_S3=endpoint, FRAUD_MODEL_POLL_INTERVAL_S="1"
        )
        server = ServiceProcess(tmp_path, env).start()
        server.wait_ready()
        stop_process(moto)  # the store is gone from here on

        killed = server.worker_pids()[0]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while killed in server.worker_pids() or server.loaded_workers() < 2:
            assert time.monotonic() < deadline, server.log()[-4000:]
            time.sleep(0.1)

        answers: Counter[tuple[int, str | None]] = Counter()
        for _ in range(60):  # fresh connections: both workers answer
            status, body = once(server.port, "POST", "/predict", PREDICT_BODY, AUTH)
            answers[(status, body.get("model_version"))] += 1
        assert answers == Counter({(200, version): 60})
        loaded_from_cache = [
            line
            for line in server.metrics().splitlines()
            if line.startswith('fraud_model_reloads_total{result="success",trigger="cache"}')
        ]
        assert [float(line.split()[-1]) for line in loaded_from_cache] == [1.0]
    finally:
        if server is not None:
            server.stop()
        stop_process(moto)


# --- in-process: the cache is verified exactly as the store is ---------------------------------


def cached_once(local_store: LocalStore, cache: Path) -> str:
    """Serve from the store until the cache holds the bundle; return its version."""
    app = create_app(make_settings(local_store.uri, bundle_cache_dir=cache), store=local_store)
    with TestClient(app) as client:
        wait_ready(client)
        deadline = time.monotonic() + 10
        while not (cache / POINTER_KEY).exists():  # written off the load's path
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return str(
            client.post("/predict", json={"features": [0.5] * 30}, headers=AUTH).json()[
                "model_version"
            ]
        )


def unreachable_s3(monkeypatch: pytest.MonkeyPatch) -> S3Reader:
    for key, value in (
        AWS_ENV | {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"}
    ).items():
        monkeypatch.setenv(key, value)
    return S3Reader("bucket", "fraud", timeouts=StoreTimeouts(0.2, 0.2, 1))


def test_with_the_store_unreachable_the_cache_serves(
    tmp_path: Path, local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = cached_once(local_store, tmp_path / "cache")
    store = unreachable_s3(monkeypatch)
    settings = make_settings(store.uri, bundle_cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, store=store)) as client:
        wait_ready(client)
        assert client.get("/health/ready").json()["model_version"] == version
        assert 'fraud_model_reloads_total{result="success",trigger="cache"} 1.0' in metrics_text(
            client
        )


def test_a_tampered_cache_is_refused_as_a_tampered_store_would_be(
    tmp_path: Path, local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = cached_once(local_store, tmp_path / "cache")
    model = tmp_path / "cache" / version_key(version, MODEL_FILE)
    data = model.read_bytes()
    model.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    store = unreachable_s3(monkeypatch)
    settings = make_settings(store.uri, bundle_cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, store=store)) as client:
        assert client.get("/health/ready").status_code == 503
        counted = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics_text(client).splitlines()
            if line.startswith("fraud_model_re")
        }
        # Each start-up retry tries the cache again, and is refused again.
        assert counted['fraud_model_reloads_total{result="failure",trigger="cache"}'] >= 1
        assert counted['fraud_model_refusals_total{reason="checksum_mismatch"}'] >= 1
        assert counted['fraud_model_reloads_total{result="success",trigger="cache"}'] == 0
