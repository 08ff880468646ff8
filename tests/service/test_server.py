"""Against a real `fraudctl serve`: Gunicorn master, 2 Uvicorn workers, moto server as S3."""

from __future__ import annotations

import http.client
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
from ml.train import train_bundle
from tests.support.app import ADMIN, API_KEY, AUTH
from tests.support.bundles import promote_files
from tests.support.server import (
    PREDICT_BODY,
    Http,
    ServiceProcess,
    once,
    server_env,
)

pytestmark = pytest.mark.slow
LOAD_SECONDS = float(os.environ.get("FRAUD_TEST_LOAD_SECONDS", "20"))


@pytest.fixture(scope="module")
def third_bundle_files(small_dataset: Dataset) -> dict[str, bytes]:
    return train_bundle(small_dataset, model_name="hgb", seed=5)


def versions_seen(port: int, n: int) -> Counter[str]:
    """n predictions, each on a fresh connection so the kernel spreads them over workers."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        status, body = once(port, "POST", "/predict", PREDICT_BODY, AUTH)
        assert status == 200, body
        seen[body["model_version"]] += 1
    return seen


def metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def scrape_counted(service: ServiceProcess, prefix: str, expected: float) -> str:
    """A scrape once `prefix` sums to `expected`, or the last one after 10 s. A worker counts
    a request after its response has been written, so a scrape can still miss the last one."""
    deadline = time.monotonic() + 10
    while True:
        text = service.metrics()
        if metric(text, prefix) == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


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
    assert metric(text, counted) == 40.0
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
    assert metric(text, 'fraud_model_reloads_total{result="failure",trigger="api"}') == 1.0


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
        assert metric(text, 'fraud_model_reloads_total{result="success",trigger="poll"}') == 2.0
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


KEEP_ALIVE_CLIENTS = 16


class KeepAliveClient(threading.Thread):
    """Sends /predict on one kept-alive connection until the server refuses new connections.
    A request the server accepted and then dropped (reset, EOF) is a failure; a refused (or,
    mid-handshake, reset) connect is not: the server had stopped listening, as it should once
    draining."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop_event = stop
        self.answered = 0
        self.closed_by_server = 0
        self.dropped: list[str] = []

    def run(self) -> None:
        headers = {**AUTH, "content-type": "application/json"}
        conn: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                try:
                    conn.connect()
                except (ConnectionRefusedError, ConnectionResetError):
                    # Reset: the listener closed while this handshake sat in its queue. No
                    # request was sent, so none was dropped: the server had stopped listening.
                    conn.close()
                    return
            try:
                conn.request("POST", "/predict", body=PREDICT_BODY, headers=headers)
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError) as exc:
                self.dropped.append(repr(exc))
                return
            assert response.status == 200
            self.answered += 1
            if response.getheader("connection", "").lower() == "close":
                self.closed_by_server += 1
                conn.close()
                conn = None


def test_sigterm_under_keep_alive_load_drops_no_accepted_request(
    service: ServiceProcess,
) -> None:
    stop = threading.Event()
    clients = [KeepAliveClient(service.port, stop) for _ in range(KEEP_ALIVE_CLIENTS)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 10
    while sum(c.answered for c in clients) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    service.terminate()
    assert service.proc is not None
    exit_code = service.proc.wait(timeout=25)
    stop.set()
    for client in clients:
        client.join(timeout=15)
    dropped = [reason for c in clients for reason in c.dropped]
    assert dropped == [], f"{len(dropped)} accepted requests dropped: {dropped[:5]}"
    assert exit_code == 0
    assert sum(c.answered for c in clients) >= 2000
    # Every connection was told to close: draining answers with `Connection: close`.
    assert sum(c.closed_by_server for c in clients) >= KEEP_ALIVE_CLIENTS


def test_missing_settings_stop_start_up_naming_the_variable(
    tmp_path: Path, s3_store: S3Store
) -> None:
    env = server_env(s3_store)
    del env["FRAUD_ADMIN_API_KEYS"]
    server = ServiceProcess(tmp_path, env)
    server.env.pop("FRAUD_ADMIN_API_KEYS", None)
    server.start()
    assert server.proc is not None
    assert server.proc.wait(timeout=30) == 2
    assert "FRAUD_ADMIN_API_KEYS: Field required" in server.log()


def test_a_taken_metrics_port_stops_start_up_naming_the_variable(
    tmp_path: Path, s3_store: S3Store
) -> None:
    server = ServiceProcess(tmp_path, server_env(s3_store))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.metrics_port))
        squatter.listen()
        server.start()
        assert server.proc is not None
        assert server.proc.wait(timeout=30) == 2
    assert f"cannot serve metrics on 127.0.0.1:{server.metrics_port}" in server.log()
    assert "FRAUD_METRICS_PORT" in server.log()


@pytest.mark.parametrize(
    ("path", "body", "received"),
    [
        ("/predict", b"18446744073709551616", "18446744073709551616"),
        ("/predict", b'{"features": [1e400' + b", 0.5" * 29 + b"]}", "inf"),
        ("/predict", b'{"features": [-1e400' + b", 0.5" * 29 + b"]}", "-inf"),
        ("/predict", b'{"features": [' + b"9" * 400 + b", 0.5" * 29 + b"]}", "(400 characters)"),
        (
            "/predict/batch",
            b'{"transactions": [[1e400' + b", 0.5" * 29 + b"]]}",
            "inf",
        ),
        ("/predict/batch", b"[18446744073709551616]", "list"),
    ],
    ids=["bigint-body", "1e400", "-1e400", "400-digit-int", "1e400-in-batch", "bigint-batch"],
)
def test_numbers_json_cannot_carry_back_are_a_422_not_a_500(
    service: ServiceProcess, path: str, body: bytes, received: str
) -> None:
    """The error body echoes what was received: values JSON cannot encode are shown as text."""
    status, answer = once(service.port, "POST", path, body, AUTH)
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_input"
    shown = [str(d.get("received")) for d in answer["error"]["details"]]
    assert any(received in s for s in shown), shown


def test_error_work_is_bounded_for_a_large_batch_of_bad_rows(service: ServiceProcess) -> None:
    """~2 MiB of rows of `true`: refused on the row count before any row is validated; at the
    row limit, validation stops at the first bad row, whose problems (at most 25 itemised)
    are all the answer describes."""
    bad_row = b"[" + b",".join([b"true"] * 30) + b"]"
    too_many = b'{"transactions": [' + b",".join([bad_row] * 11_700) + b"]}"
    assert len(too_many) < 2 * 1024 * 1024
    status, body = once(service.port, "POST", "/predict/batch", too_many, AUTH)
    assert status == 413, body
    assert "11700 rows; the limit is FRAUD_MAX_BATCH_ROWS=1000" in body["error"]["message"]
    at_limit = b'{"transactions": [' + b",".join([bad_row] * 1000) + b"]}"
    client = Http(service.port)
    try:
        status, answer = client.request("POST", "/predict/batch", at_limit, AUTH)
    finally:
        client.close()
    assert status == 422
    assert len(json.dumps(answer)) < 64 * 1024
    assert len(answer["error"]["details"]) == 25
    assert {d["field"].split("[")[1] for d in answer["error"]["details"]} == {"0]"}
    assert "(and 5 more problems; 30 in all)" in answer["error"]["message"]
    assert "rows after the first invalid one are not checked" in answer["error"]["message"]


def test_a_client_that_leaves_mid_body_is_recorded_as_499_not_a_500(
    service: ServiceProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + API_KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            + b'{"features": [1'
        )
    counted = 'fraud_http_requests_total{method="POST",route="/predict",status="499"}'
    text = scrape_counted(service, counted, 1.0)
    assert metric(text, counted) == 1.0
    assert 'status="500"' not in text
    assert "unhandled_error" not in service.log()
