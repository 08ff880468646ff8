"""Against a real `fraudctl serve`: Gunicorn master, 2 Uvicorn workers, moto server as S3."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ml.data import Dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.s3_store import S3Store
from ml.runtime.store import Pointer, utc_now
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN, API_KEY, AUTH
from ml.testing.server import (
    PREDICT_BODY,
    Http,
    ServiceProcess,
    metric_sum,
    once,
    scrape_counted,
    server_env,
    versions_seen,
)
from ml.train import train_bundle

pytestmark = pytest.mark.slow
LOAD_SECONDS = float(os.environ.get("FRAUD_TEST_LOAD_SECONDS", "20"))


@pytest.fixture(scope="module")
def third_bundle_files(small_dataset: Dataset) -> dict[str, bytes]:
    return train_bundle(small_dataset, model_name="hgb", seed=5)


def test_predicts_and_aggregates_metrics_over_both_workers(
    service: ServiceProcess, bundle_version: str
) -> None:
    assert versions_seen(service.port, 40) == Counter({bundle_version: 40})
    deadline = time.monotonic() + 5  # info lines are flushed every 0.2 s
    while True:
        lines = service.log().splitlines()
        loaded = [json.loads(line) for line in lines if '"model_loaded"' in line]
        if len(loaded) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len({entry["pid"] for entry in loaded}) == 2  # one line per worker, each its pid
    counted = 'fraud_http_requests_total{method="POST",route="/predict",status="200"}'
    text = scrape_counted(service, counted, 40.0)
    assert once(service.port, "GET", "/metrics")[0] == 404  # never through the API's port
    assert metric_sum(text, counted) == 40.0
    pids = {
        line.split('pid="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("fraud_model_info{") and line.endswith(" 1.0")
    }
    assert len(pids) == 2, text  # both workers loaded the model and report it


def test_reload_reaches_every_worker(
    service: ServiceProcess,
    s3_store: S3Store,
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
) -> None:
    v2 = promote_files(s3_store, other_bundle_files)
    status, body = once(service.port, "POST", "/reload", headers=ADMIN)
    assert status == 200, body
    assert body["previous_version"] == bundle_version
    assert body["version"] == v2
    assert body["workers_confirmed"] == body["workers_total"] == 2
    assert versions_seen(service.port, 60) == Counter({v2: 60})


@pytest.mark.parametrize("case", ["missing-version", "tampered-file", "canary-mismatch"])
def test_failed_reload_keeps_every_worker_serving(
    service: ServiceProcess,
    s3_store: S3Store,
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
    case: str,
) -> None:
    if case == "missing-version":
        state = s3_store.current_pointer()
        s3_store.swap_pointer(Pointer("v-missing", "0" * 64, bundle_version, utc_now()), state.etag)
        expected = (502, "bundle_not_found")
    elif case == "tampered-file":
        tampered = {
            **other_bundle_files,
            "model.npz": other_bundle_files["model.npz"][:100]
            + bytes([other_bundle_files["model.npz"][100] ^ 0xFF])
            + other_bundle_files["model.npz"][101:],
        }
        promote_files(s3_store, tampered)
        expected = (502, "checksum_mismatch")
    else:
        manifest = json.loads(other_bundle_files[MANIFEST_FILE])
        manifest["canary"]["fraud_probability"][0] += 1e-3
        manifest["version"] = "v-bad-canary"
        files = {**other_bundle_files, MANIFEST_FILE: json.dumps(manifest).encode()}
        promote_files(s3_store, files)
        expected = (502, "canary_mismatch")
    status, body = once(service.port, "POST", "/reload", headers=ADMIN)
    assert (status, body["error"]["code"]) == expected
    assert once(service.port, "GET", "/health/ready")[0] == 200
    assert versions_seen(service.port, 30) == Counter({bundle_version: 30})
    text = service.metrics()
    assert metric_sum(text, 'fraud_model_reloads_total{result="failure",trigger="api"}') == 1.0


def test_every_worker_converges_by_polling_alone(
    tmp_path: Path,
    s3_store: S3Store,
    bundle_files: dict[str, bytes],
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
) -> None:
    promote_files(s3_store, bundle_files)
    server = ServiceProcess(tmp_path, server_env(s3_store, FRAUD_MODEL_POLL_INTERVAL_S="0.5"))
    server.start()
    try:
        server.wait_ready()
        v2 = promote_files(s3_store, other_bundle_files)  # nobody calls /reload
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if versions_seen(server.port, 20) == Counter({v2: 20}):
                break
            time.sleep(0.2)
        assert versions_seen(server.port, 40) == Counter({v2: 40})
        text = server.metrics()
        assert metric_sum(text, 'fraud_model_reloads_total{result="success",trigger="poll"}') == 2.0
    finally:
        server.stop()


def test_no_failed_request_during_promote_and_reload_cycles_under_load(
    service: ServiceProcess,
    s3_store: S3Store,
    bundle_files: dict[str, bytes],
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
    third_bundle_files: dict[str, bytes],
) -> None:
    """16 clients for a bounded time on 127.0.0.1 while production changes every ~2 s."""
    bundles = [
        (bundle_version, bundle_files),
        (load_bundle(other_bundle_files).version, other_bundle_files),
        (load_bundle(third_bundle_files).version, third_bundle_files),
    ]
    promoted = {bundle_version}
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    errors: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client_loop() -> None:
        client = Http(service.port)
        while not stop.is_set():
            try:
                status, body = client.request("POST", "/predict", PREDICT_BODY, AUTH)
            except OSError as exc:
                with lock:
                    errors.append(repr(exc))
                continue
            with lock:
                statuses[status] += 1
                if status == 200:
                    versions[body["model_version"]] += 1
        client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(16)]
    for t in threads:
        t.start()
    reloads: list[dict[str, Any]] = []
    admin = Http(service.port)
    deadline = time.monotonic() + LOAD_SECONDS
    cycle = 0
    try:
        while time.monotonic() < deadline:
            time.sleep(2.0)
            cycle += 1
            version, files = bundles[cycle % 3]
            if cycle < 3:
                promote_files(s3_store, files)
            else:  # versions exist already: point production back at them (a rollback)
                state = s3_store.current_pointer()
                sha = load_bundle(files).manifest_sha256
                s3_store.swap_pointer(Pointer(version, sha, None, utc_now()), state.etag)
            promoted.add(version)
            status, body = admin.request("POST", "/reload", headers=ADMIN)
            assert status == 200, body
            assert body["workers_confirmed"] == body["workers_total"] == 2
            reloads.append(body)
    finally:
        admin.close()
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    assert set(statuses) == {200}, statuses
    assert set(versions) <= promoted
    assert len(reloads) >= 3
    assert sum(statuses.values()) > 1000
    assert len(set(versions)) == 3  # the load really saw every version


def test_sigterm_finishes_in_flight_requests_then_exits(service: ServiceProcess) -> None:
    body = PREDICT_BODY
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:10])  # the request is in flight: headers in, body not finished
    time.sleep(0.3)
    started = time.monotonic()
    service.terminate()
    time.sleep(0.5)
    sock.sendall(body[10:])
    response = b""
    while not response.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        response += chunk
    sock.close()
    assert response.startswith(b"HTTP/1.1 200"), response
    assert b'"model_version"' in response
    assert service.proc is not None
    assert service.proc.wait(timeout=25) == 0
    assert time.monotonic() - started < 20  # within FRAUD_GRACEFUL_TIMEOUT_S
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", service.port), timeout=2)


def test_json_logs_are_one_stream_and_access_lines_say_who_what_and_why(
    service: ServiceProcess,
) -> None:
    """FRAUD_LOG_FORMAT=json (the default): Gunicorn's and Uvicorn's own lines are JSON too,
    and an access line names the route template, status, error code, client and latency, also
    for a request refused before routing and for the docs."""
    oversized = json.dumps({"transactions": [[0.5] * 30] * 1001}).encode()
    assert once(service.port, "POST", "/predict/batch", oversized, AUTH)[0] == 413
    wrong_type = {**AUTH, "content-type": "text/plain"}
    assert once(service.port, "POST", "/predict", b"x=1", wrong_type)[0] == 415
    assert once(service.port, "GET", "/docs")[0] == 200
    assert once(service.port, "POST", "/predict", PREDICT_BODY, {})[0] == 401
    service.terminate()  # flushes every worker's buffered lines
    assert service.proc is not None
    assert service.proc.wait(timeout=25) == 0
    lines = [line for line in service.log().splitlines() if line.strip()]
    records = []
    for line in lines:
        records.append(json.loads(line))  # every line, Gunicorn's and Uvicorn's included
    events = {r["event"] for r in records}
    assert any(e.startswith("Starting gunicorn") for e in events)
    assert any(e.startswith("Booting worker") for e in events)
    assert "Application startup complete." in events
    assert all(
        "pid" in r for r in records if r.get("logger", "").startswith(("gunicorn", "uvicorn"))
    )
    access = [r for r in records if r["event"] == "request"]
    by_status = {r["status"]: r for r in access}
    assert by_status[413]["route"] == "/predict/batch"
    assert by_status[413]["error_code"] == "payload_too_large"
    assert by_status[415]["route"] == "/predict"
    assert by_status[415]["error_code"] == "unsupported_media_type"
    assert by_status[401]["error_code"] == "unauthorized"
    assert by_status[200]["route"] == "/docs"
    assert by_status[200]["error_code"] is None
    for record in access:
        assert record["client"] == "127.0.0.1"
        assert record["latency_ms"] >= 0
        assert record["route"] != "unmatched"
